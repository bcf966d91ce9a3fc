"""The original dataserve 0.1.0 (from PyPI): seed 001's handler on its http.server.

Run with PYTHONPATH set to the folder holding dataserve 0.1.0. The server is
the original's ``HTTPServer`` + ``HTTPDataHandler``; only the address differs
from its ``run_http_server``: loopback and port 0 read back.
"""

from __future__ import annotations

import sys
from http.server import HTTPServer

import dataserve
from dataserve import HTTPDataHandler

if getattr(dataserve, "__version__", None) != "0.1.0":
    sys.exit(f"expected the original dataserve 0.1.0, imported {dataserve.__file__}")

xdata = [1, 2, 3]


class MyDataHandler(HTTPDataHandler):
    def handle_request(self, resource, payload):
        if resource == "/xdata":
            global xdata
            return xdata + payload
        elif resource == "/ydata":
            return 2
        elif resource == "/echo":
            return payload
        return None


if __name__ == "__main__":
    httpd = HTTPServer(("127.0.0.1", 0), MyDataHandler)
    print(f"http://127.0.0.1:{httpd.server_port}", flush=True)
    httpd.serve_forever()
