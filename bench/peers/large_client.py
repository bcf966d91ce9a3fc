"""One large round trip from a Python HTTP client: ``large_client.py KIND URL SIZE``.

KIND is ``ours`` (dataserve's HTTPDataClient; URL ``unix:PATH`` for a Unix
socket), ``requests`` or ``httpx``.
Prints one JSON line: seconds for the round trip, whether the answer was the
payload, and this process's peak RSS.
"""

from __future__ import annotations

import json
import resource
import sys
import time


def main() -> None:
    kind, url, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    payload = b"\x5a" * size
    headers = {"Content-Type": "application/octet-stream"}
    if kind == "ours":
        from dataserve import HTTPDataClient

        # URL "unix:PATH": the server listens on a Unix domain socket
        if url.startswith("unix:"):
            client = HTTPDataClient(uds=url[5:])
        else:
            client = HTTPDataClient(port="", address=url)
        start = time.perf_counter()
        answer = client.send("/echo", payload)
        seconds = time.perf_counter() - start
        client.close()
    elif kind == "requests":
        import requests

        with requests.Session() as session:
            start = time.perf_counter()
            answer = session.put(url + "/echo", data=payload, headers=headers, timeout=300).content
            seconds = time.perf_counter() - start
    elif kind == "httpx":
        import httpx

        with httpx.Client(timeout=300) as session:
            start = time.perf_counter()
            answer = session.put(url + "/echo", content=payload, headers=headers).content
            seconds = time.perf_counter() - start
    else:
        sys.exit(f"unknown client {kind}")
    ok = answer == payload
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "ok": ok, "peak_rss": peak}))


if __name__ == "__main__":
    main()
