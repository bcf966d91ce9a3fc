"""rawproto.engine.registry: what every connection of one server shares.

Connections are made on a mock transport (``mock_transport.py``); the
registry is the one they report to.
"""

from __future__ import annotations

import asyncio

from dataserve.core.limits import DEFAULT_LIMITS, Limits
from rawproto.engine.registry import READ_SIZE, Registry

from .lines import LineService
from .mock_transport import VirtualClockLoop, connect, run_virtual


class Counter:
    def __init__(self) -> None:
        self.opened = self.closed = 0

    def connection_opened(self) -> None:
        self.opened += 1

    def connection_closed(self) -> None:
        self.closed += 1


def test_a_new_registry_is_empty_and_open() -> None:
    registry = Registry(DEFAULT_LIMITS)
    assert registry.limits is DEFAULT_LIMITS
    assert registry.connections == set()
    assert registry.max_connections is None and registry.counter is None
    assert not registry.closing and registry.all_closed is None


def test_the_read_buffer_is_one_buffer_of_read_size_made_on_first_use() -> None:
    registry = Registry(DEFAULT_LIMITS)
    assert registry._read is None
    first = registry.read_buffer()
    assert isinstance(first, memoryview) and len(first) == READ_SIZE
    assert registry.read_buffer() is first


def test_removed_sets_all_closed_only_once_no_connection_is_left() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        registry = Registry(DEFAULT_LIMITS)
        registry.removed()  # nobody waits: nothing happens
        registry.all_closed = asyncio.Event()
        a, ta = connect(LineService().session, registry=registry)
        b, tb = connect(LineService().session, registry=registry)
        assert registry.connections == {a, b}
        ta.close()
        await loop.advance(0)
        assert registry.connections == {b} and not registry.all_closed.is_set()
        tb.close()
        await loop.advance(0)
        assert registry.connections == set() and registry.all_closed.is_set()

    run_virtual(main)


def test_the_counter_hears_of_each_connection_opened_and_closed() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        counter = Counter()
        registry = Registry(DEFAULT_LIMITS, counter=counter)
        _, t = connect(LineService().session, registry=registry)
        assert (counter.opened, counter.closed) == (1, 0)
        t.close()
        await loop.advance(0)
        assert (counter.opened, counter.closed) == (1, 1)

    run_virtual(main)


def test_over_max_connections_a_connection_is_refused_and_not_counted() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        counter = Counter()
        registry = Registry(Limits(), max_connections=1, counter=counter)
        connect(LineService().session, registry=registry)
        extra, t = connect(LineService().session, registry=registry)
        assert extra not in registry.connections and len(registry.connections) == 1
        assert counter.opened == 1
        assert t.closed or t.eof_written

    run_virtual(main)


def test_a_closing_registry_refuses_new_connections() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        registry = Registry(DEFAULT_LIMITS)
        registry.closing = True
        conn, t = connect(LineService().session, registry=registry)
        assert conn not in registry.connections
        assert t.closed or t.eof_written

    run_virtual(main)
