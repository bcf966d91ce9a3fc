"""The floor for an HTTP echo of a large body: no framework, one buffer, reused.

A blocking server, one connection at a time: it reads the request head,
reads the body with ``recv_into`` straight into one ``bytearray`` that it
keeps (and grows) from request to request, and sends it back with one
``sendall``. That is two kernel copies and, once the buffer is warm, no page
faults: what any Python server answering with the body it was sent must pay
at least. It parses only what curl sends (a ``Content-Length`` body).
"""

from __future__ import annotations

import socket

_buffer = bytearray()


def _serve(conn: socket.socket) -> None:
    global _buffer
    head = b""
    while b"\r\n\r\n" not in head:
        piece = conn.recv(65536)
        if not piece:
            return
        head += piece
    head, rest = head.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if len(_buffer) < length:
        _buffer = bytearray(length)
    view = memoryview(_buffer)[:length]
    view[: len(rest)] = rest
    got = len(rest)
    while got < length:
        n = conn.recv_into(view[got:])
        if not n:
            return
        got += n
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % length
    )
    conn.sendall(view)


if __name__ == "__main__":
    listener = socket.create_server(("127.0.0.1", 0))
    print(f"http://127.0.0.1:{listener.getsockname()[1]}", flush=True)
    while True:
        conn, _ = listener.accept()
        with conn:
            _serve(conn)
