"""Fuzz target: the callback API's query and header parsing (``dataserve.callback.messages``).

A fuzz input is ``cut, query \\n header lines...``: the query string (decoded
as Latin-1, as the server does with the raw query), then ``name: value``
lines as ASGI header pairs. Properties:

* ``parse_query`` and ``request_headers`` never raise;
* a query cut at any ``&`` parses as the union of its two halves (later
  fields win), so the parser has no state across fields;
* header lookups ignore case: every name sent is found under its lower- and
  upper-case spellings, with the same value, and names that differ only in
  case are joined into one entry.

Run: ``python fuzz/run.py --seconds 60 callback``.
"""

from __future__ import annotations

from collections.abc import Iterator

from dataserve.callback.messages import canonical_header_name, parse_query, request_headers

from ._main import exec_target


def split_input(data: bytes) -> tuple[int, str, list[tuple[bytes, bytes]]]:
    """``(cut, query, header pairs)`` from a fuzz input."""
    cut = data[0] if data else 0
    query, _, rest = data[1:].partition(b"\n")
    pairs = []
    for line in rest.split(b"\n"):
        name, sep, value = line.partition(b":")
        if sep:
            pairs.append((name.strip().lower(), value.strip()))
    return cut, query.decode("latin-1"), pairs


def check_query(query: str, cut: int) -> None:
    parsed = parse_query(query)
    assert all(isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in parsed.items())
    fields = query.split("&")
    at = cut % (len(fields) + 1)
    head, tail = "&".join(fields[:at]), "&".join(fields[at:])
    assert parsed == {**parse_query(head), **parse_query(tail)}, (head, tail)


def check_headers(pairs: list[tuple[bytes, bytes]]) -> None:
    headers = request_headers(pairs)
    names = {canonical_header_name(name.decode("latin-1")) for name, _ in pairs}
    assert set(headers) == names
    for raw, _ in pairs:
        name = raw.decode("latin-1")
        if not name.isascii():
            continue  # the HTTP parsers only pass token names (ASCII)
        value = headers[name]
        assert headers.get(name.upper()) == value and name.upper() in headers
        assert headers.get(name.lower()) == value and name.lower() in headers
    # A single entry keeps its bytes: Latin-1 decoding is lossless.
    if len(pairs) == 1:
        raw_name, raw_value = pairs[0]
        assert headers[raw_name.decode("latin-1")].encode("latin-1") == raw_value


def check(data: bytes) -> None:
    cut, query, pairs = split_input(data)
    check_query(query, cut)
    check_headers(pairs)


def seeds() -> Iterator[bytes]:
    yield b"\x01foo=bar&baz\nhost: example\ncontent-type: text/plain"
    yield b"\x02a=1&a=2&b&&c=%20%2B+x&d=%ff&e=%zz&=v\ncookie: a=1\ncookie: b=2\nx: caf\xe9"
    yield b"\x00x=a;y=b&na%20me=%C3%A9\nX-Many: 1\nx-many: 2\nX-MANY: 3"


if __name__ == "__main__":
    exec_target("callback")
