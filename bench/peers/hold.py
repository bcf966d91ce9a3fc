"""Hold idle connections open: ``hold.py HOST PORT COUNT [HELLO_HEX]``.

Opens COUNT connections (sending HELLO on each, e.g. a protocol's handshake),
prints ``open N``, then answers commands on stdin: ``check`` prints how many
are still open (the server has not closed them), ``close`` (or EOF) closes all.
"""

from __future__ import annotations

import select
import socket
import sys


def main() -> None:
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    hello = bytes.fromhex(sys.argv[4]) if len(sys.argv) > 4 else b""
    socks, failed = open_all(host, port, count, hello)
    print(f"open {len(socks)} {failed}".strip(), flush=True)
    for line in sys.stdin:
        if line.strip() == "check":
            print(f"open {sum(1 for s in socks if still_open(s))}", flush=True)
        else:
            break
    for sock in socks:
        sock.close()


def open_all(host: str, port: int, count: int, hello: bytes) -> tuple[list[socket.socket], str]:
    """Connect ``count`` sockets one after the other.

    One at a time on purpose: a burst of handshakes overflows the server's
    accept queue, and the kernel then completes handshakes the server never
    sees, which would be counted as held.
    """
    socks: list[socket.socket] = []
    for _ in range(count):
        try:
            sock = socket.create_connection((host, port), timeout=30)
            if hello:
                sock.sendall(hello)
        except OSError as exc:
            return socks, str(exc)
        socks.append(sock)
    return socks, ""


def still_open(sock: socket.socket) -> bool:
    poller = select.poll()  # not select(): these fds go past FD_SETSIZE
    poller.register(sock, select.POLLIN | select.POLLHUP | select.POLLERR)
    if not poller.poll(0):
        return True
    try:
        return bool(sock.recv(4096, socket.MSG_PEEK))  # a greeting is fine; EOF is not
    except OSError:
        return False


if __name__ == "__main__":
    main()
