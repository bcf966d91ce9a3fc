"""``TCPHandler``: the base class of tcpy command handlers, and its channel to the client."""

from __future__ import annotations

from typing import Any

__all__ = ["UNCONNECTED", "Channel", "TCPHandler"]


class Channel:
    """How a running handler talks to its client (the server sets one per request)."""

    def send(self, data: Any) -> None:
        raise RuntimeError("this handler is not running on a TCPServer connection")

    def recv(self) -> Any:
        raise RuntimeError("this handler is not running on a TCPServer connection")

    def close(self) -> None:
        """The exchange is over: no more ``send``/``recv``."""


UNCONNECTED = Channel()


class TCPHandler:
    """Base class of tcpy handlers: subclass it and define ``execute()``.

    The request's parameters are passed to ``__init__`` as keyword
    arguments; ``execute()`` runs on one of the server's handler threads and
    returns the reply, usually ``self.success(...)`` or ``self.error(...)``.
    During ``execute()``, ``send(data)`` and ``recv()`` converse with the
    client on the same connection. Calling ``super().__init__()`` is
    optional: the server connects every handler it makes.
    """

    _channel: Channel = UNCONNECTED

    def __init__(self, **params: Any) -> None:
        self.params = params

    def execute(self) -> dict[str, Any]:
        """Carry out the command and return the reply map."""
        raise TypeError(f"{type(self).__name__} must define execute()")

    def success(self, **kwargs: Any) -> dict[str, Any]:
        """``{"success": True, **kwargs}``."""
        return {"success": True, **kwargs}

    def error(self, message: str, **kwargs: Any) -> dict[str, Any]:
        """``{"error": True, "message": message, **kwargs}``."""
        return {"error": True, "message": message, **kwargs}

    def send(self, data: Any) -> None:
        """Send ``data`` (a dict) to the client now, before the reply."""
        self._channel.send(data)

    def recv(self) -> Any:
        """Wait for the client's next message and return it.

        Raises ``dataserve.core.errors.TimeoutError`` if the client sends
        nothing for ``Limits.idle_timeout`` seconds and ``ConnectionClosed``
        if it goes away.
        """
        return self._channel.recv()
