"""Sans-IO wire protocols: bytes in, events out, ``send(event) -> bytes``.

One module per framing, each importable on its own (``rawproto.proto.native``,
``rawproto.proto.tinyproto``, ``rawproto.proto.tcpy``, ``rawproto.proto.pyts``);
``rawproto.proto.base`` holds what they share. No module here imports
``socket``, ``asyncio`` or ``threading``.
"""

from __future__ import annotations

from .base import NEED_DATA as NEED_DATA
from .base import ConnectionClosed as ConnectionClosed
from .base import Event as Event
from .base import FrameError as FrameError
from .base import NeedData as NeedData
from .base import ProtocolConnection as ProtocolConnection
from .base import ReceiveBuffer as ReceiveBuffer
from .base import Role as Role

__all__ = [
    "NEED_DATA",
    "ConnectionClosed",
    "Event",
    "FrameError",
    "NeedData",
    "ProtocolConnection",
    "ReceiveBuffer",
    "Role",
]
