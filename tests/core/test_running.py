"""The one loop thread and the one "serve until signalled" that every runner uses.

Real threads, real processes and real signals; nothing sleeps to
synchronise: the tests wait on events and on the lines a child prints.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from dataserve.core.running import (
    LoopThread,
    catch_signals,
    serve_until_signalled,
)
from tests.conftest import ROOT

WAIT = 30  # seconds: a bound for what should take milliseconds


# --- the loop thread -----------------------------------------------------------


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread(name="test-loop")
    yield thread
    thread.stop(WAIT)


def test_submit_is_thread_safe_and_runs_on_the_loop_thread(loop_thread: LoopThread) -> None:
    ran_on: set[int] = set()

    async def double(n: int) -> int:
        ran_on.add(threading.get_ident())
        await asyncio.sleep(0)
        return 2 * n

    results: dict[int, int] = {}
    go = threading.Barrier(8)

    def caller(n: int) -> None:
        go.wait(WAIT)
        results[n] = loop_thread.submit(double(n)).result(WAIT)

    callers = [threading.Thread(target=caller, args=(n,)) for n in range(8)]
    for t in callers:
        t.start()
    for t in callers:
        t.join(WAIT)
    assert results == {n: 2 * n for n in range(8)}
    assert ran_on == {loop_thread._thread.ident}


def test_run_returns_the_result_and_raises_what_the_coroutine_raised(
    loop_thread: LoopThread,
) -> None:
    async def answer() -> str:
        return "ok"

    async def fail() -> None:
        raise ValueError("from the loop")

    assert loop_thread.run(answer(), timeout=WAIT) == "ok"
    with pytest.raises(ValueError, match="from the loop"):
        loop_thread.run(fail(), timeout=WAIT)
    assert loop_thread.is_alive()  # an exception does not end the loop


def test_run_from_the_loop_thread_itself_is_refused(loop_thread: LoopThread) -> None:
    async def nested() -> str:
        async def inner() -> None:
            pass

        try:
            loop_thread.run(inner())
        except RuntimeError as exc:
            return str(exc)
        return "ran"

    assert loop_thread.run(nested(), timeout=WAIT) == (
        "LoopThread.run called from the loop's own thread"
    )


def test_run_times_out_while_the_coroutine_goes_on(loop_thread: LoopThread) -> None:
    release = threading.Event()
    finished = threading.Event()

    async def slow() -> None:
        await asyncio.get_running_loop().run_in_executor(None, release.wait)
        finished.set()

    with pytest.raises(TimeoutError):
        loop_thread.run(slow(), timeout=0.01)
    release.set()
    assert finished.wait(WAIT)


def test_call_soon_calls_on_the_loop(loop_thread: LoopThread) -> None:
    called = threading.Event()
    where: list[bool] = []

    def callback() -> None:
        where.append(loop_thread.in_loop_thread)
        called.set()

    loop_thread.call_soon(callback)
    assert called.wait(WAIT)
    assert where == [True]
    assert not loop_thread.in_loop_thread


def test_stop_cancels_what_runs_joins_and_closes() -> None:
    thread = LoopThread(name="test-stop")
    started, cancelled = threading.Event(), threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    future = thread.submit(forever())
    assert started.wait(WAIT)
    thread.stop(WAIT)
    assert cancelled.is_set()
    assert not thread.is_alive()
    assert thread.loop.is_closed()
    assert future.cancelled()
    thread.stop(WAIT)  # stopping twice is harmless


def test_one_shared_loop_thread_under_every_name() -> None:
    from dataserve.http.server import BackgroundLoop
    from rawproto.engine.loop import LoopThread as RawLoopThread

    assert BackgroundLoop is LoopThread
    assert RawLoopThread is LoopThread
    shared = LoopThread.shared()
    assert LoopThread.shared() is shared
    assert shared.is_alive()
    assert shared._thread.daemon
    assert shared._thread.name == "dataserve-background-loop"


def test_in_shared_thread_answers_from_the_thread_it_asks_about() -> None:
    shared = LoopThread.shared()
    assert not LoopThread.in_shared_thread()
    assert shared.submit(_ask_in_shared_thread()).result(timeout=10)


async def _ask_in_shared_thread() -> bool:
    return LoopThread.in_shared_thread()


# --- signals, in this process (pytest runs tests in the main thread) ------------


def test_catch_signals_routes_and_the_undo_restores() -> None:
    before = signal.getsignal(signal.SIGUSR1)
    caught: list[int] = []
    undo = catch_signals(lambda signum, frame: caught.append(signum), (signal.SIGUSR1,))
    try:
        signal.raise_signal(signal.SIGUSR1)
        assert caught == [signal.SIGUSR1]
    finally:
        undo()
    assert signal.getsignal(signal.SIGUSR1) == before


def test_keep_later_leaves_a_handler_set_after_ours() -> None:
    before = signal.getsignal(signal.SIGUSR1)

    def later(signum: int, frame: Any) -> None:
        pass

    undo = catch_signals(lambda signum, frame: None, (signal.SIGUSR1,), keep_later=True)
    try:
        signal.signal(signal.SIGUSR1, later)
        undo()
        assert signal.getsignal(signal.SIGUSR1) is later
    finally:
        signal.signal(signal.SIGUSR1, before)


def test_outside_the_main_thread_nothing_is_installed() -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    out: dict[str, Any] = {}

    async def serve(stop: asyncio.Event) -> None:
        out["during"] = {sig: signal.getsignal(sig) for sig in before}

    def runner() -> None:
        out["returned"] = serve_until_signalled(serve)

    thread = threading.Thread(target=runner)
    thread.start()
    thread.join(WAIT)
    assert out == {"during": before, "returned": None}


def test_an_exception_from_serve_is_raised_and_the_handlers_are_back() -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    async def serve(stop: asyncio.Event) -> None:
        assert signal.getsignal(signal.SIGTERM) != before[signal.SIGTERM]
        raise OSError("cannot listen")

    with pytest.raises(OSError, match="cannot listen"):
        serve_until_signalled(serve)
    assert {sig: signal.getsignal(sig) for sig in before} == before


# --- signals, in a child process ---------------------------------------------------


class Child:
    """A Python child whose stdout lines the test waits on."""

    def __init__(self, code: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=str(ROOT),
        )

    def line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def finish(self) -> tuple[int, str, str]:
        """Wait for the exit; the rest of stdout (after the lines read) and stderr."""
        # Not communicate(): it reads the pipe itself, and would miss what
        # readline() has already buffered.
        status = self.proc.wait(WAIT)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        return status, self.proc.stdout.read(), self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


SERVE = """
    import asyncio, signal
    from dataserve.core.running import serve_until_signalled

    seen = []
    second = asyncio.Event()
    # what the process had before (a shell's background job ignores SIGINT)
    before = (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))

    def on_signal(signum):
        seen.append(signal.Signals(signum).name)
        if len(seen) == 2:
            second.set()

    async def serve(stop):
        print("ready", flush=True)
        await stop.wait()
        print("draining", flush=True)
        if HOLD:
            await second.wait()  # in flight until a second signal
        return "served"

    caught = serve_until_signalled(serve, on_signal=on_signal)
    restored = (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    print("caught", signal.Signals(caught).name, seen, restored, flush=True)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_signal_stops_gracefully_and_the_process_exits_0(sig: signal.Signals) -> None:
    child = Child("HOLD = False\n" + textwrap.dedent(SERVE))
    try:
        assert child.line() == "ready"
        child.proc.send_signal(sig)
        assert child.line() == "draining"
        status, out, err = child.finish()
        assert status == 0, err
        assert out.strip() == f"caught {sig.name} ['{sig.name}'] True"
        assert "Traceback" not in err
    finally:
        child.kill()


def test_every_signal_reaches_on_signal_while_draining() -> None:
    child = Child("HOLD = True\n" + textwrap.dedent(SERVE))
    try:
        assert child.line() == "ready"
        child.proc.send_signal(signal.SIGINT)
        assert child.line() == "draining"
        child.proc.send_signal(signal.SIGINT)  # uvicorn: the second Ctrl-C forces the exit
        status, out, err = child.finish()
        assert status == 0, err
        assert out.strip() == "caught SIGINT ['SIGINT', 'SIGINT'] True"
    finally:
        child.kill()


def test_exit_quietly_on_signals_turns_sigterm_into_a_normal_exit() -> None:
    child = Child(
        """
        import signal
        from dataserve.core.running import exit_quietly_on_signals

        before = signal.getsignal(signal.SIGTERM)
        with exit_quietly_on_signals():
            print("ready", flush=True)
            signal.pause()
        print("after", signal.getsignal(signal.SIGTERM) is before, flush=True)
        """
    )
    try:
        assert child.line() == "ready"
        child.proc.send_signal(signal.SIGTERM)
        status, out, err = child.finish()
        assert status == 0, err
        assert out.strip() == "after True"
    finally:
        child.kill()


def test_a_signal_while_the_loop_is_being_made_is_not_lost() -> None:
    child = Child(
        """
        import asyncio, os, signal
        from dataserve.core.running import serve_until_signalled

        def loop_factory():
            os.kill(os.getpid(), signal.SIGTERM)  # our handler runs before kill returns
            return asyncio.new_event_loop()

        async def serve(stop):
            await stop.wait()  # set at once: the signal came before the loop
            return "served"

        caught = serve_until_signalled(serve, loop_factory=loop_factory)
        print("caught", signal.Signals(caught).name, flush=True)
        """
    )
    try:
        status, out, err = child.finish()
        assert status == 0, err
        assert out.strip() == "caught SIGTERM"
    finally:
        child.kill()
