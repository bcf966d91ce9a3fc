"""A probe client: keeps sending small requests and records how long each took.

Used while a test attacks a server, to show that everyone else keeps being
served: ``with Probe(port) as probe: ...attack...`` then ``probe.p99``.
Each probe request is a round trip, so the probe paces itself; nothing sleeps.
By default it PUTs to the handler; ``Probe(port, health=True)`` GETs the
liveness route instead, which the event loop answers by itself: what it
measures is then the loop's own responsiveness, whatever the handler threads
are doing.
"""

from __future__ import annotations

import statistics
import threading
import time
from types import TracebackType

from dataserve import HTTPDataClient

__all__ = ["Probe"]


class Probe:
    def __init__(
        self,
        port: int,
        resource: str = "/echo",
        payload: object = "probe",
        *,
        health: bool = False,
    ) -> None:
        self.port = port
        self.health = health
        self.resource = resource
        self.payload = payload
        self.latencies: list[float] = []
        self.failures: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with HTTPDataClient(self.port, "http://127.0.0.1:", timeout=30) as client:
            http = client._client  # the same connection pool, for the GET
            url = f"http://127.0.0.1:{self.port}/_dataserve/health"
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    if self.health:
                        http.get(url).raise_for_status()
                    else:
                        client.send(self.resource, self.payload)
                except Exception as exc:  # recorded: the test asserts there are none
                    self.failures.append(exc)
                    continue
                self.latencies.append(time.perf_counter() - started)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(60)

    @property
    def p99(self) -> float:
        """The 99th percentile latency, in seconds."""
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]

    def summary(self) -> str:
        if not self.latencies:
            return "no probe request completed"
        return (
            f"{len(self.latencies)} probe requests, p50 "
            f"{statistics.median(self.latencies) * 1000:.1f} ms, p99 {self.p99 * 1000:.1f} ms, "
            f"max {max(self.latencies) * 1000:.1f} ms"
        )
