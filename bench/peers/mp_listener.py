"""multiprocessing.connection echo server: ``send_bytes`` back what ``recv_bytes`` got."""

from __future__ import annotations

import threading
from multiprocessing.connection import Listener


def serve(conn) -> None:
    with conn:
        while True:
            try:
                conn.send_bytes(conn.recv_bytes())
            except EOFError:
                return


if __name__ == "__main__":
    listener = Listener(("127.0.0.1", 0))
    host, port = listener.address
    print(f"tcp://{host}:{port}", flush=True)
    while True:
        threading.Thread(target=serve, args=(listener.accept(),), daemon=True).start()
