"""The metrics' running totals and history: what the console's figures are read from."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from dataserve.core.dispatch import HandlerPool
from dataserve.core.metrics import BUCKETS, OTHER, Metrics, totals_from_samples


def recorded() -> tuple[Metrics, CollectorRegistry]:
    registry = CollectorRegistry()
    m = Metrics(registry, max_resource_labels=10)
    http, native = m.transport("http"), m.transport("native")
    http.connection_opened()
    http.connection_opened()
    native.connection_opened()
    http.observe("/xdata", 200, 0.0003, 10, 20)  # first bucket (<= 0.5 ms)
    http.observe("/xdata", 200, 0.003, 10, 20)  # <= 5 ms
    http.observe("/nope", 404, 0.0004, 0, 30)  # not answered: "other"
    native.observe("/xdata", 500, 2.0, 5, 7)  # <= 2.5 s
    return m, registry


def test_totals_add_up_every_transport_after_a_flush() -> None:
    m, _ = recorded()
    before = m.totals(breakdown=False)  # totals() flushes the tallies first
    assert (before.requests, before.errors) == (4, 2)
    assert (before.bytes_in, before.bytes_out) == (25, 77)
    assert before.by_status == before.by_resource == {}  # no breakdown asked
    t = m.totals()
    assert t.by_status == {200: 2, 404: 1, 500: 1}
    assert t.by_resource == {"/xdata": 3, OTHER: 1}
    assert t.by_transport == {"http": 3, "native": 1}
    assert t.open_connections == {"http": 2, "native": 1}
    assert t.seconds == 0.0003 + 0.003 + 0.0004 + 2.0
    expected = [0] * len(BUCKETS)
    for seconds in (0.0003, 0.003, 0.0004, 2.0):
        expected[next(i for i, bound in enumerate(BUCKETS) if seconds <= bound)] += 1
    assert list(t.buckets) == expected
    assert t.time >= before.time and t.wall >= before.wall


def test_totals_keep_growing_across_flushes() -> None:
    m, _ = recorded()
    assert m.totals().requests == 4
    m.transport("http").observe("/xdata", 200, 0.001, 1, 1)
    m.flush()  # as the flusher thread or a scrape would
    m.transport("http").observe("/xdata", 200, 0.001, 1, 1)
    t = m.totals()
    assert t.requests == 6 and t.by_resource["/xdata"] == 5


def test_the_samples_of_a_registry_give_the_same_totals() -> None:
    # The path several workers take: their metrics read back from Prometheus
    # samples (cumulative buckets), here one process's registry.
    m, registry = recorded()
    local = m.totals()
    read = totals_from_samples(s for family in registry.collect() for s in family.samples)
    for name in ("requests", "errors", "bytes_in", "bytes_out", "buckets", "by_status"):
        assert getattr(read, name) == getattr(local, name), name
    assert read.by_resource == local.by_resource
    assert read.by_transport == local.by_transport
    assert read.open_connections == local.open_connections
    assert abs(read.seconds - local.seconds) < 1e-9


def test_each_tick_flushes_and_history_takes_one_entry_a_second() -> None:
    m, _ = recorded()
    assert not m.history
    m.tick()
    assert len(m.history) == 1 and m.history[0].requests == 4
    m.transport("http").observe("/xdata", 200, 0.001, 1, 1)
    m.tick()  # flushed, but less than a second after the last entry: none taken
    assert len(m.history) == 1
    assert m.totals().requests == 5


def test_the_pool_says_how_many_threads_are_busy_and_calls_queued() -> None:
    pool = HandlerPool(threads=1)
    assert pool.activity == (0, 0)
    release = asyncio.Event()

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        started = asyncio.Event()

        def blocking() -> str:
            loop.call_soon_threadsafe(started.set)
            fut = asyncio.run_coroutine_threadsafe(release.wait(), loop)
            fut.result(30)
            return "done"

        first = pool.submit(blocking)
        await started.wait()
        queued = pool.submit(lambda: "next")
        assert pool.activity == (1, 1)
        release.set()
        assert await first == "done"
        assert await queued == "next"

    asyncio.run(scenario())
    pool.close(wait=5)
