"""Round trips for a while: ``raw_client.py MODE HOST PORT SECONDS SIZE [INFLIGHT]``.

Prints one JSON line: calls, seconds, and the p50/p99 of the call times (µs).
HOST ``unix:PATH`` connects to a Unix domain socket (PORT is then ignored).
Every answer is checked: whole up to 1 MiB; above that, the first answer
whole and the others by length and samples, so that a 64 MiB comparison on
the client's CPU does not weigh on the figure it measures. MODE picks the
wire and client:

* ``lenprefix``: 4-byte length + payload on a blocking socket (the ceiling's client)
* ``native`` / ``native-async``: this project's RawDataClient / AsyncRawDataClient
  (INFLIGHT requests pipelined on its one connection)
* ``tinywire``: tinyproto's framing spoken on a blocking socket
* ``zmq``: a pyzmq REQ socket; ``mpconn``: multiprocessing.connection.Client
* ``http``: http.client keep-alive PUT /echo, application/octet-stream
* ``tcpy-call`` / ``tcpy-persistent``: tcpy's wire, a connection per call / one for all
* ``pyts-call``: pyts's wire, a connection per call (read to EOF)
"""

from __future__ import annotations

import json
import resource
import socket
import struct
import sys
import time


def recv_exactly(sock: socket.socket, n: int) -> bytearray:
    data = bytearray(n)
    with memoryview(data) as view:
        got = 0
        while got < n:
            k = sock.recv_into(view[got:], n - got)
            if not k:
                raise ConnectionError("the server closed the connection")
            got += k
    return data


def connect(host: str, port: int) -> socket.socket:
    if host.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(host.removeprefix("unix:"))
        return sock
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def uds(host: str) -> str | None:
    return host.removeprefix("unix:") if host.startswith("unix:") else None


class Same:
    """``answer == payload``, checked whole the first time, then cheaply above 1 MiB."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.whole = len(payload) <= 1 << 20  # every answer compared whole
        self.first = True

    def __call__(self, answer: object) -> bool:
        payload = self.payload
        if self.whole or self.first:
            self.first = False
            return answer == payload
        if not isinstance(answer, (bytes, bytearray, memoryview)) or len(answer) != len(payload):
            return False
        n = len(payload)
        return all(answer[i : i + 4096] == payload[i : i + 4096] for i in (0, n // 2, n - 4096))


def blocking_call(mode: str, host: str, port: int, payload: bytes):
    """A function doing one round trip, checked; and a closer."""
    same = Same(payload)
    if mode == "lenprefix":
        sock = connect(host, port)
        frame = struct.pack(">I", len(payload)) + payload

        def call() -> None:
            sock.sendall(frame)
            (n,) = struct.unpack(">I", recv_exactly(sock, 4))
            assert same(recv_exactly(sock, n))

        return call, sock.close
    if mode == "native":
        from rawproto import RawDataClient

        client = RawDataClient(port, host, uds=uds(host))

        def call() -> None:
            assert same(client.send("/echo", payload))

        return call, client.close
    if mode == "tinywire":
        sock = connect(host, port)
        sock.sendall(b"\xff")
        assert recv_exactly(sock, 1) == b"\xff"
        head = struct.pack(">I", len(payload))

        def call() -> None:
            sock.sendall(head)
            assert recv_exactly(sock, 1) == b"\xff"
            sock.sendall(payload)
            (n,) = struct.unpack(">I", recv_exactly(sock, 4))
            sock.sendall(b"\xff")
            assert recv_exactly(sock, n) == payload

        return call, sock.close
    if mode == "zmq":
        import zmq

        ctx = zmq.Context()
        req = ctx.socket(zmq.REQ)
        path = uds(host)
        req.connect(f"ipc://{path}" if path else f"tcp://{host}:{port}")

        def call() -> None:
            req.send(payload, copy=len(payload) < 65536)
            assert same(req.recv())

        return call, lambda: (req.close(0), ctx.term())
    if mode == "mpconn":
        from multiprocessing.connection import Client

        conn = Client((host, port))

        def call() -> None:
            conn.send_bytes(payload)
            assert conn.recv_bytes() == payload

        return call, conn.close
    if mode == "http":
        import http.client

        conn = http.client.HTTPConnection(host, port)
        headers = {"Content-Type": "application/octet-stream"}

        def call() -> None:
            conn.request("PUT", "/echo", body=payload, headers=headers)
            response = conn.getresponse()
            assert response.status == 200 and response.read() == payload

        return call, conn.close
    if mode in ("tcpy-call", "tcpy-persistent"):
        import msgpack

        message = msgpack.packb({"cmd": "add", "x": 1, "y": 2})
        frame = struct.pack(">I", len(message)) + message
        expected = {"success": True, "solution": 3}

        def exchange(sock: socket.socket) -> None:
            sock.sendall(frame)
            (n,) = struct.unpack(">I", recv_exactly(sock, 4))
            assert msgpack.unpackb(recv_exactly(sock, n)) == expected

        if mode == "tcpy-persistent":
            sock = connect(host, port)
            return (lambda: exchange(sock)), sock.close

        def per_call() -> None:
            with connect(host, port) as sock:
                exchange(sock)

        return per_call, lambda: None
    if mode == "pyts-call":
        document = json.dumps(
            {
                "headers": {
                    "VERSION": "PYTS/1.0.0",
                    "type": "REQUEST",
                    "REQUEST-URL": f"pytf://{host}:{port}/",
                    "HOST": host,
                    "PORT": port,
                    "ENDPOINT": "/",
                },
                "body": None,
            }
        ).encode()

        def pyts() -> None:
            with connect(host, port) as sock:
                sock.sendall(document)
                chunks = []
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
            answer = json.loads(b"".join(chunks))
            assert answer["headers"]["STATUS-CODE"] == 200, answer

        return pyts, lambda: None
    raise SystemExit(f"unknown mode {mode}")


def run_blocking(
    mode: str, host: str, port: int, seconds: float, payload: bytes
) -> tuple[list[float], float]:
    call, close = blocking_call(mode, host, port, payload)
    call()  # warm: connection, imports, first allocation
    times: list[float] = []
    clock = time.perf_counter
    start = now = clock()
    end = start + seconds
    while now < end:
        call()
        after = clock()
        times.append(after - now)
        now = after
    close()
    return times, now - start


def run_async(
    host: str, port: int, seconds: float, payload: bytes, inflight: int
) -> tuple[list[float], float]:
    import asyncio

    from rawproto import AsyncRawDataClient

    try:
        import uvloop
    except ImportError:  # pragma: no cover
        uvloop = None

    same = Same(payload)

    async def main() -> tuple[list[float], float]:
        times: list[float] = []
        async with AsyncRawDataClient(port, host, uds=uds(host)) as client:
            assert same(await client.send("/echo", payload))
            clock = time.perf_counter
            start = clock()
            end = start + seconds

            async def worker() -> None:
                while True:
                    start = clock()
                    if start >= end:
                        return
                    answer = await client.send("/echo", payload)
                    times.append(clock() - start)
                    assert same(answer)

            await asyncio.gather(*(worker() for _ in range(inflight)))
            wall = clock() - start
        return times, wall

    if uvloop is not None:
        return uvloop.run(main())
    return asyncio.run(main())


def main() -> None:
    mode, host, port, seconds, size = sys.argv[1:6]
    inflight = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    n = int(size)
    payload = (bytes(range(251)) * (n // 251 + 1))[:n]  # bytes(i % 251 for i in range(n))
    before = resource.getrusage(resource.RUSAGE_SELF)
    if mode == "native-async":
        times, wall = run_async(host, int(port), float(seconds), payload, inflight)
    else:
        times, wall = run_blocking(mode, host, int(port), float(seconds), payload)
    after = resource.getrusage(resource.RUSAGE_SELF)
    times.sort()
    result = {
        "calls": len(times),
        "seconds": wall,
        # connecting and the first call included: small next to a run's thousands of calls
        "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "p50_us": times[len(times) // 2] * 1e6 if times else None,
        "p99_us": times[min(len(times) - 1, int(len(times) * 0.99))] * 1e6 if times else None,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
