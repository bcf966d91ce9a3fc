"""Callbacks run off the loop, in parallel when asked; servers start and stop cleanly."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import httpx
import pytest

from dataserve.callback import httpserver_registercallback, httpserver_stopcallback
from dataserve.core.limits import Limits

from .conftest import Register, ok, register_on_port_0

SLOW = 0.5


def test_50_slow_callbacks_with_threads_50_run_at_once(register: Register) -> None:
    # All 50 must be inside the callback together to pass the barrier.
    barrier = threading.Barrier(50, timeout=20)

    def callback(request: dict[str, Any]) -> dict[str, Any]:
        barrier.wait()
        time.sleep(SLOW)  # sleep-ok: the slow callback of the scenario
        return ok(request["path"])

    _, port = register(callback, threads=50)

    async def main() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            return await asyncio.gather(
                *(client.get(f"http://127.0.0.1:{port}/{i}") for i in range(50))
            )

    start = time.monotonic()
    replies = asyncio.run(main())
    elapsed = time.monotonic() - start
    assert [r.text for r in replies] == [f"/{i}" for i in range(50)]
    # In series they would take 50 x 0.5 s = 25 s; together about 0.5 s.
    assert elapsed < 10 * SLOW, f"{elapsed:.1f} s"


def test_a_slow_callback_does_not_hold_up_another_server(register: Register) -> None:
    entered, release = threading.Event(), threading.Event()

    def slow(request: dict[str, Any]) -> dict[str, Any]:
        entered.set()
        assert release.wait(30)
        return ok("slow")

    async def quick_async(request: dict[str, Any]) -> dict[str, Any]:
        return ok("async")

    _, slow_port = register(slow)  # default: one thread
    _, quick_port = register(lambda request: ok("quick"))
    _, async_port = register(quick_async)
    with ThreadPoolExecutor(1) as pool:
        pending: Future[httpx.Response] = pool.submit(
            httpx.get, f"http://127.0.0.1:{slow_port}/", timeout=30
        )
        assert entered.wait(10)
        # The slow callback holds its server's only handler thread; the other
        # servers on the same event loop answer at once.
        assert httpx.get(f"http://127.0.0.1:{quick_port}/", timeout=10).text == "quick"
        assert httpx.get(f"http://127.0.0.1:{async_port}/", timeout=10).text == "async"
        assert not pending.done()
        release.set()
        assert pending.result(timeout=30).text == "slow"


def test_default_threads_serialise_a_servers_callbacks(register: Register) -> None:
    running = 0
    most = 0
    lock = threading.Lock()

    def callback(request: dict[str, Any]) -> dict[str, Any]:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)  # sleep-ok: gives overlapping calls the chance to overlap
        with lock:
            running -= 1
        return ok()

    _, port = register(callback)

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(
                *(client.get(f"http://127.0.0.1:{port}/") for _ in range(10))
            )

    assert all(r.status_code == 200 for r in asyncio.run(main()))
    assert most == 1


def test_stop_lets_an_in_flight_request_finish(register: Register) -> None:
    entered, release = threading.Event(), threading.Event()

    def callback(request: dict[str, Any]) -> dict[str, Any]:
        entered.set()
        assert release.wait(30)
        return ok("finished")

    httpdid, port = register(callback)
    with ThreadPoolExecutor(2) as pool:
        pending = pool.submit(httpx.get, f"http://127.0.0.1:{port}/", timeout=30)
        assert entered.wait(10)
        stopping = pool.submit(httpserver_stopcallback, httpdid)
        # Wait until the server has stopped accepting (the stop has begun).
        deadline = time.monotonic() + 10
        while _accepts(port):
            assert time.monotonic() < deadline, "the server kept accepting"
            with pytest.raises(FutureTimeout):
                stopping.result(timeout=0.02)  # it cannot finish while a request is in flight
        assert not stopping.done()
        release.set()
        reply = pending.result(timeout=30)
        stopping.result(timeout=30)
    assert (reply.status_code, reply.text) == (200, "finished")
    assert not _accepts(port)
    # The server's handler thread has ended too.
    prefix = f"dataserve-callback-{httpdid}-"
    assert not [t for t in threading.enumerate() if t.name.startswith(prefix)]


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            return True
    except ConnectionRefusedError:
        return False


@pytest.mark.slow
def test_register_request_stop_on_the_same_port_20_times() -> None:
    httpdid, port = register_on_port_0(lambda request: ok(str(request["httpdid"])))
    httpserver_stopcallback(httpdid)
    ids = set()
    for _ in range(20):
        httpdid = httpserver_registercallback(("127.0.0.1", port), _echo_id)
        try:
            r = httpx.get(f"http://127.0.0.1:{port}/")
            assert (r.status_code, r.text) == (200, str(httpdid))
        finally:
            httpserver_stopcallback(httpdid)
        assert not _accepts(port)  # released before stop returned
        ids.add(httpdid)
    assert len(ids) == 20  # ids are never reused


def _echo_id(request: dict[str, Any]) -> dict[str, Any]:
    return ok(str(request["httpdid"]))


def test_several_servers_share_one_event_loop_thread(register: Register) -> None:
    loops: set[int] = set()

    async def callback(request: dict[str, Any]) -> dict[str, Any]:
        loops.add(threading.get_ident())
        return ok()

    ports = [register(callback)[1] for _ in range(3)]
    for port in ports:
        assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
    assert len(loops) == 1
    [loop_thread] = [t for t in threading.enumerate() if t.ident in loops]
    assert loop_thread.name == "dataserve-background-loop"


def test_register_and_stop_from_an_async_callback_are_refused(register: Register) -> None:
    errors: list[str] = []
    httpdids: list[int] = []

    async def callback(request: dict[str, Any]) -> dict[str, Any]:
        for call in (
            lambda: httpserver_stopcallback(httpdids[0]),
            lambda: httpserver_registercallback(("127.0.0.1", 1), callback),
        ):
            try:
                call()
            except RuntimeError as exc:
                errors.append(str(exc))
        return ok()

    httpdid, port = register(callback)
    httpdids.append(httpdid)
    assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
    assert errors == [
        "httpserver_stopcallback waits for the servers' event loop, so it cannot run on it: "
        "call it from another thread (await asyncio.to_thread(httpserver_stopcallback, ...))",
        "httpserver_registercallback waits for the servers' event loop, so it cannot run on "
        "it: call it from another thread "
        "(await asyncio.to_thread(httpserver_registercallback, ...))",
    ]
    assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200  # still registered


def test_stop_gives_up_on_a_hung_callback_after_shutdown_timeout(register: Register) -> None:
    entered, release = threading.Event(), threading.Event()

    def hung(request: dict[str, Any]) -> dict[str, Any]:
        entered.set()
        release.wait(60)
        return ok()

    httpdid, port = register(hung, limits=Limits(shutdown_timeout=1))
    try:
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(httpx.get, f"http://127.0.0.1:{port}/", timeout=30)
            assert entered.wait(10)
            start = time.monotonic()
            httpserver_stopcallback(httpdid)
            elapsed = time.monotonic() - start
            reply = pending.result(timeout=30)
        # The server cancels the request and answers for it: 503, as every
        # transport answers a request the shutdown cut short.
        assert (reply.status_code, reply.headers["connection"]) == (503, "close")
        assert reply.text == "the server shut down before the callback answered"
        assert "retry-after" not in reply.headers  # it had begun: not safe to resend
        assert not _accepts(port)
        assert elapsed < 10, f"{elapsed:.1f} s"  # not 60: the callback is abandoned
    finally:
        release.set()
