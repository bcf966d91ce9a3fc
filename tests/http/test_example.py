"""dataserve.example: seed 001's example handler, what ``dataserve serve`` serves by default."""

from __future__ import annotations

import pytest

from dataserve import example
from dataserve.core.handler import HTTPDataHandler
from dataserve.example import ExampleHandler


def test_it_is_a_data_handler() -> None:
    assert issubclass(ExampleHandler, HTTPDataHandler)


@pytest.mark.parametrize(
    ("payload", "answer"),
    [([4, 5, 6], [1, 2, 3, 4, 5, 6]), ([], [1, 2, 3]), (7, [1, 2, 3, 7]), ("s", [1, 2, 3, "s"])],
)
def test_xdata_appends_the_payload(payload: object, answer: list[object]) -> None:
    assert ExampleHandler().handle_request("/xdata", payload) == answer
    assert example.xdata == [1, 2, 3]  # never changed


def test_ydata_and_echo() -> None:
    h = ExampleHandler()
    assert h.handle_request("/ydata", None) == 2
    assert h.handle_request("/echo", {"a": b"b"}) == {"a": b"b"}
    assert h.handle_request("/echo", None) is None


def test_any_other_resource_is_not_handled() -> None:
    assert ExampleHandler().handle_request("/other", [1]) is None
    assert ExampleHandler().handle_request("/xdata/", [1]) is None
