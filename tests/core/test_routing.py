from __future__ import annotations

import pytest

from dataserve.core.routing import Router


def test_exact_and_template_routes() -> None:
    router: Router[str] = Router({"/xdata": "x", "add": "add-command"})
    router.add("/items/{item_id}", "item")
    router.add("/files/{rest:path}", "file")
    assert router.match("/xdata").endpoint == "x"  # type: ignore[union-attr]
    assert router.match("add").endpoint == "add-command"  # type: ignore[union-attr]
    m = router.match("/items/42")
    assert m is not None and m.endpoint == "item" and m.params == {"item_id": "42"}
    m = router.match("/files/a/b/c.txt")
    assert m is not None and m.params == {"rest": "a/b/c.txt"}
    assert router.match("/items/42/more") is None
    assert router.match("/items/") is None
    assert router.match("/nope") is None
    assert "/xdata" in router and "/nope" not in router
    assert len(router) == 4
    assert set(router) == {"/xdata", "add", "/items/{item_id}", "/files/{rest:path}"}


def test_template_metacharacters_are_literal() -> None:
    router: Router[int] = Router()
    router.add("/a.b/{x}", 1)
    assert router.match("/a.b/1") is not None
    assert router.match("/aXb/1") is None


def test_duplicates_are_refused() -> None:
    router: Router[int] = Router({"/a": 1})
    with pytest.raises(ValueError, match="already defined"):
        router.add("/a", 2)
    with pytest.raises(ValueError, match="appears twice"):
        router.add("/{x}/{x}", 3)


def test_decorator() -> None:
    router: Router[object] = Router()

    @router.route("/double/{n}")
    def double(payload: object, n: str) -> int:
        return int(n) * 2

    m = router.match("/double/4")
    assert m is not None and m.endpoint(None, **m.params) == 8
