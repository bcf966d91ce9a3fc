"""rawproto.tinyproto.sockview: ``socket_o``, a socket's calls for an engine connection.

On a mock transport's connection (``mock_transport.py``); ``wait`` runs on a
thread, as a hook does, and asks the running loop how long nothing moved.
"""

from __future__ import annotations

import asyncio
import errno
import math

import pytest

from rawproto.tinyproto.sockview import SocketView

from .lines import LineService
from .mock_transport import connect


def run(test: object) -> None:
    async def main() -> None:
        conn, _ = connect(LineService().session)
        await test(conn)  # type: ignore[operator]

    asyncio.run(main())


@pytest.mark.parametrize("value", [None, 0, 2, 0.5])
def test_settimeout_takes_none_or_a_non_negative_number(value: float | None) -> None:
    async def test(conn: object) -> None:
        view = SocketView(conn)  # type: ignore[arg-type]
        view.settimeout(value)
        assert view.gettimeout() == (None if value is None else float(value))

    run(test)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("1", TypeError),
        (b"1", TypeError),
        (object(), TypeError),
        (-1, ValueError),
        (math.nan, ValueError),
    ],
)
def test_settimeout_refuses_the_rest(value: object, error: type[Exception]) -> None:
    async def test(conn: object) -> None:
        with pytest.raises(error):
            SocketView(conn).settimeout(value)  # type: ignore[arg-type]

    run(test)


def test_blocking_is_no_timeout_and_non_blocking_a_timeout_of_0() -> None:
    async def test(conn: object) -> None:
        view = SocketView(conn, timeout=3)  # type: ignore[arg-type]
        view.setblocking(False)
        assert view.gettimeout() == 0.0 and not view.getblocking()
        view.setblocking(True)
        assert view.gettimeout() is None and view.getblocking()

    run(test)


def test_addresses_come_from_the_connection_and_outlive_it() -> None:
    async def test(conn: object) -> None:
        view = SocketView(conn)  # type: ignore[arg-type]
        assert view.getpeername() == ("127.0.0.1", 50000)
        assert view.getsockname() == ("127.0.0.1", 7000)
        conn.abort()  # type: ignore[attr-defined]
        assert view.getpeername() == ("127.0.0.1", 50000)
        assert view.fileno() == -1
        with pytest.raises(OSError) as info:
            view.setsockopt(1, 2, 3)
        assert info.value.errno == errno.EBADF
        assert "fd=-1" in repr(view)

    run(test)


def test_without_a_timeout_wait_is_the_attempt_itself() -> None:
    async def test(conn: object) -> None:
        view = SocketView(conn)  # type: ignore[arg-type]
        seen: list[float | None] = []
        assert view.wait(lambda seconds: seen.append(seconds) or True) is True
        assert seen == [None]

    run(test)


def test_wait_gives_up_once_nothing_moved_for_the_timeout() -> None:
    async def test(conn: object) -> None:
        view = SocketView(conn, timeout=0.05)  # type: ignore[arg-type]
        steps: list[float | None] = []

        def never(seconds: float | None) -> bool:
            steps.append(seconds)
            return False

        assert await asyncio.to_thread(view.wait, never) is False
        assert steps and all(s is not None and s <= 0.05 for s in steps)

    run(test)


def test_wait_returns_as_soon_as_the_attempt_succeeds() -> None:
    async def test(conn: object) -> None:
        view = SocketView(conn, timeout=10)  # type: ignore[arg-type]
        tries: list[float | None] = []

        def second_time(seconds: float | None) -> bool:
            tries.append(seconds)
            return len(tries) == 2

        assert await asyncio.to_thread(view.wait, second_time) is True
        assert tries == [2.5, 2.5]  # a quarter of the timeout at a time

    run(test)
