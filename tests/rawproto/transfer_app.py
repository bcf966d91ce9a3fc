"""A file transfer over tinyproto, written the way tpft (seed 004's advanced example) is.

Standard library only: the same classes run on this project's tinyproto and,
in a subprocess, on the original tinyproto 2.0.1 and 3.0 from PyPI.
``connection_classes(TinyProtoConnection)`` returns the two ends:

* ``Uploader`` (the client's connection): ``pre_loop`` sets
  ``socket_o.settimeout(90)``, as tpft does; once ``job`` is set, its
  ``loop_pass`` announces the upload, waits for the answer, sends the file as
  a sequence of messages reading an answer after each, reads the receiver's
  digest into ``report``, says goodbye and shuts down.
* ``Receiver`` (the server's connection): the same timeout; on an upload
  request it confirms, then ``receive()``s chunks in its
  ``transmission_received`` until the announced size, answering each, and
  reports the SHA-256 of what it wrote.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

CHUNK = 256 * 1024


def letter(kind: str, **fields: Any) -> bytes:
    return json.dumps({"type": kind, **fields}).encode()


def read(msg: Any) -> Any:
    return json.loads(bytes(msg).decode()) if msg else {"type": "nothing"}


def connection_classes(base: type) -> tuple[type, type]:
    class Uploader(base):  # type: ignore[valid-type, misc]
        job: tuple[str, str] | None = None  # (source, destination), set by the program
        report: Any = None

        def pre_loop(self) -> None:
            self.socket_o.settimeout(90)
            self.begun = False

        def loop_pass(self) -> None:
            job = self.job
            if job is None or self.begun:
                return
            self.begun = True
            self.report = self.upload(*job)
            self.transmit(letter("close"))
            self.shutdown = True

        def upload(self, source: str, destination: str) -> Any:
            size = os.path.getsize(source)
            self.transmit(letter("upload", size=size, destination=destination))
            answer = read(self.receive())
            if answer["type"] != "confirmed":
                return answer
            sent = 0
            with open(source, "rb") as f:
                while True:
                    chunk = f.read(CHUNK)
                    if not chunk:
                        break
                    self.transmit(chunk)
                    sent += len(chunk)
                    ack = read(self.receive())
                    if ack != {"type": "ok", "received": sent}:
                        return {"type": "broken", "after": sent, "ack": ack}
            return read(self.receive())

    class Receiver(base):  # type: ignore[valid-type, misc]
        def pre_loop(self) -> None:
            self.socket_o.settimeout(90)

        def transmission_received(self, msg: Any) -> None:
            request = read(msg)
            if request["type"] == "close":
                self.shutdown = True
            elif request["type"] == "upload":
                self.take(request["size"], request["destination"])

        def take(self, size: int, destination: str) -> None:
            digest = hashlib.sha256()
            received = 0
            with open(destination, "wb") as f:
                self.transmit(letter("confirmed"))
                while received < size:
                    chunk = self.receive()
                    if not chunk:  # the connection ended
                        return
                    f.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    self.transmit(letter("ok", received=received))
            self.transmit(letter("saved", size=received, sha256=digest.hexdigest()))

    return Uploader, Receiver
