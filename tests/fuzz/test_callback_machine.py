"""The callback API's request parsing and response validation as state machines."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote_plus

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from dataserve.callback.messages import (
    InvalidResponse,
    build_reply,
    canonical_header_name,
    parse_query,
    request_headers,
)
from fuzz import fuzz_callback

from .machine import SETTINGS

# Stateful fuzzing runs hundreds of examples; CI runs them.
pytestmark = pytest.mark.slow

TOKEN = st.from_regex(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,12}", fullmatch=True)
LATIN1 = st.text(alphabet=st.characters(max_codepoint=255, blacklist_characters="\r\n\x00"))


class QueryMachine(RuleBasedStateMachine):
    """A query string built field by field; its parse is the fields, last one winning."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[str] = []
        self.model: dict[str, str | None] = {}
        self.valid = True

    @rule(name=st.text(), value=st.text())
    def add_field(self, name: str, value: str) -> None:
        self.fields.append(f"{quote_plus(name)}={quote_plus(value)}")
        self.model[name] = value

    @rule(name=st.text(min_size=1))
    def add_flag(self, name: str) -> None:
        self.fields.append(quote_plus(name))
        self.model[name] = None

    @rule()
    def add_empty_field(self) -> None:
        self.fields.append("")

    @rule(raw=st.text(alphabet=st.characters(max_codepoint=255)))
    def add_raw_text(self, raw: str) -> None:
        # What a client may send (decoded as Latin-1 by the server): anything.
        self.fields.append(raw)
        self.valid = False

    @invariant()
    def parses_as_modelled(self) -> None:
        query = "&".join(self.fields)
        parsed = parse_query(query)
        if self.valid:
            assert parsed == self.model
        for cut in range(len(self.fields) + 1):
            head, tail = "&".join(self.fields[:cut]), "&".join(self.fields[cut:])
            assert parsed == {**parse_query(head), **parse_query(tail)}


class HeaderMachine(RuleBasedStateMachine):
    """Header pairs as uvicorn passes them; lookups ignore case, repeats are joined."""

    def __init__(self) -> None:
        super().__init__()
        self.pairs: list[tuple[bytes, bytes]] = []

    @rule(name=TOKEN, value=LATIN1)
    def add_header(self, name: str, value: str) -> None:
        self.pairs.append((name.lower().encode(), value.encode("latin-1")))

    @rule(data=st.data())
    def repeat_a_header(self, data: Any) -> None:
        if self.pairs:
            name, _ = data.draw(st.sampled_from(self.pairs), label="header")
            self.pairs.append((name, data.draw(LATIN1, label="value").encode("latin-1")))

    @rule(value=LATIN1)
    def add_cookie(self, value: str) -> None:
        self.pairs.append((b"cookie", value.encode("latin-1")))

    @rule(raw=st.binary(max_size=20), value=st.binary(max_size=20))
    def add_raw_pair(self, raw: bytes, value: bytes) -> None:
        # Not what uvicorn passes, but never a crash.
        self.pairs.append((raw, value))

    @invariant()
    def joined_and_case_insensitive(self) -> None:
        headers = request_headers(self.pairs)
        model: dict[str, list[str]] = {}
        for raw, value in self.pairs:
            model.setdefault(canonical_header_name(raw.decode("latin-1")), []).append(
                value.decode("latin-1")
            )
        assert headers == {
            name: ("; " if name == "Cookie" else ", ").join(values)
            for name, values in model.items()
        }
        for raw, _ in self.pairs:
            name = raw.decode("latin-1")
            if name.isascii():
                assert headers[name.upper()] == headers[name.lower()] == headers[name]


RESPONSE_KEYS = st.sampled_from(["version", "statuscode", "statusmsg", "headers", "message", "x"])
ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 1000), st.text(max_size=8), st.binary(max_size=8)
)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class ResponseMachine(RuleBasedStateMachine):
    """A callback's response dict, edited key by key: ``build_reply`` either
    sends it correctly or says what is wrong (``InvalidResponse``), nothing else."""

    def __init__(self) -> None:
        super().__init__()
        self.response: dict[Any, Any] = {
            "version": "1.1",
            "statuscode": 200,
            "headers": {},
            "message": "",
        }

    @rule(key=RESPONSE_KEYS, value=ANY_VALUE)
    def set_key(self, key: str, value: Any) -> None:
        self.response[key] = value

    @rule(key=RESPONSE_KEYS)
    def drop_key(self, key: str) -> None:
        self.response.pop(key, None)

    @rule(version=st.sampled_from(["0.9", "1.0", "1.1"]), status=st.integers(100, 599))
    def set_status(self, version: str, status: int) -> None:
        self.response.update(version=version, statuscode=status)

    @rule(name=st.one_of(TOKEN, st.text(max_size=6)), value=st.text(max_size=8))
    def set_header(self, name: str, value: str) -> None:
        headers = self.response.get("headers")
        if isinstance(headers, dict):
            headers[name] = value

    @rule(
        name=st.sampled_from(["Content-Length", "content-length", "CONTENT-LENGTH"]),
        value=st.one_of(st.integers(0, 20).map(str), st.sampled_from(["", "+1", "0x1", "1 "])),
    )
    def set_content_length(self, name: str, value: str) -> None:
        headers = self.response.get("headers")
        if isinstance(headers, dict):
            headers[name] = value

    @rule(message=st.one_of(st.text(max_size=8), st.binary(max_size=8)))
    def set_message(self, message: str | bytes) -> None:
        self.response["message"] = message

    @invariant()
    def sent_correctly_or_refused(self) -> None:
        for head in (False, True):
            try:
                reply = build_reply(self.response, head=head)
            except InvalidResponse as exc:
                assert str(exc)
                continue
            assert reply.status == self.response["statuscode"]
            names = [name for name, _ in reply.headers]
            assert names.count(b"content-length") <= 1
            assert b"transfer-encoding" not in names
            for name, value in reply.headers:
                assert not _CONTROL.search(value.decode("latin-1")), value
                assert name == name.lower()
            if self.response["statuscode"] not in (204, 304):
                assert b"content-length" in names
            if self.response["version"] != "1.1":
                assert b"connection" in names
            if head:
                assert reply.body == b""


def test_fuzz_callback_seeds_pass() -> None:
    for seed in fuzz_callback.seeds():
        fuzz_callback.check(seed)


@pytest.mark.parametrize("machine", [QueryMachine, HeaderMachine, ResponseMachine])
def test_machine(machine: type[RuleBasedStateMachine]) -> None:
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(machine, settings=SETTINGS)
