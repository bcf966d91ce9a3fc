"""Stand-ins for a connection's transport and deadlines, for the HTTP protocol's unit tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Transport:
    """Records reading paused and resumed, writes and closing."""

    def __init__(self) -> None:
        self.reading = True
        self.closing = False
        self.written: list[bytes] = []

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closing

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def close(self) -> None:
        self.closing = True


class Deadline:
    """A deadline that fires only when a test calls ``fire()``."""

    def __init__(self, delay: float, callback: Callable[[], object]) -> None:
        self.delay = delay
        self.callback = callback
        self.stopped = False
        self.restarts = 0

    def restart(self, delay: float) -> None:
        self.restarts += 1

    def stop(self) -> None:
        self.stopped = True

    def fire(self) -> None:
        self.stopped = True  # a deadline fires once
        self.callback()


class Watchdog:
    """Hands out ``Deadline``s and keeps them, newest last."""

    def __init__(self) -> None:
        self.deadlines: list[Deadline] = []

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Deadline:
        deadline = Deadline(delay, lambda: callback(*args))
        self.deadlines.append(deadline)
        return deadline

    def live(self) -> list[Deadline]:
        return [d for d in self.deadlines if not d.stopped]
