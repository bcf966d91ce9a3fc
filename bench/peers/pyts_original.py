"""pyts's server behaviour: one connection at a time, one recv(1024), route, answer, close."""

from __future__ import annotations

import json
import socket

if __name__ == "__main__":
    listener = socket.create_server(("127.0.0.1", 0))
    print(f"tcp://127.0.0.1:{listener.getsockname()[1]}", flush=True)
    while True:
        conn, _ = listener.accept()
        with conn:
            request = json.loads(conn.recv(1024))
            endpoint = request["headers"]["ENDPOINT"]
            headers = {"VERSION": "PYTS/1.0.0", "type": "RESPONSE"}
            if endpoint == "/":
                headers.update({"STATUS-TEXT": "OK", "STATUS-CODE": 200, "STATUS": "200 OK"})
                body = "<1>Index page</1>"
            else:
                headers.update(
                    {"STATUS-TEXT": "Not Found", "STATUS-CODE": 404, "STATUS": "404 Not Found"}
                )
                body = f"{endpoint} was not found on this server. (404 Not Found)"
            conn.sendall(bytes(json.dumps({"headers": headers, "body": body}), "utf-8"))
