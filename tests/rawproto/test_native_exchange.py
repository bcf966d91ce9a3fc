"""rawproto.native.exchange: the I/O-free half of a native client connection.

The server's side is a ``NativeConnection`` in the server role: what it
sends is fed to the exchange, and what the exchange writes is fed to it.
"""

from __future__ import annotations

import pytest

from dataserve.core.codec import default_registry
from dataserve.core.errors import (
    ConnectionClosed,
    DecodeError,
    HandlerError,
    NotHandled,
    Unauthorized,
)
from rawproto.native.exchange import DEFAULT_TIMEOUT, ClientSettings, Exchange
from rawproto.proto.base import Role
from rawproto.proto.native import Auth, Error, NativeConnection, Preface, Reply, Request


def pair(token: str | None = None) -> tuple[Exchange, NativeConnection]:
    client = Exchange("127.0.0.1:7000", default_registry, 1 << 20, token)
    server = NativeConnection(Role.SERVER, max_frame_size=1 << 20)
    server.receive_data(client.opening())
    assert isinstance(server.next_event(), Preface)
    client.feed(server.initiate())
    assert isinstance(client.next_event(), Preface)
    return client, server


def test_the_opening_is_the_preface_then_auth_with_a_token() -> None:
    _, server = pair(token="s3cret")
    # pair() took the preface; the AUTH frame follows
    event = server.next_event()
    assert isinstance(event, Auth) and event.token == b"s3cret"


def test_requests_get_fresh_ids_and_a_leading_slash() -> None:
    client, server = pair()
    first, frame = client.request("xdata", [1, 2])
    second, _ = client.request("/y", None)
    assert (first, second) == (1, 2)
    server.receive_data(frame)
    request = server.next_event()
    assert isinstance(request, Request)
    assert request.resource == "/xdata" and request.request_id == 1
    assert default_registry.decode_tag(request.tag, request.body) == [1, 2]


def test_request_ids_wrap_around_skipping_0() -> None:
    client, _ = pair()
    client._last_id = 0xFFFFFFFF
    assert client.request("/a", None)[0] == 1


def test_request_head_announces_a_payload_sent_after_it() -> None:
    client, server = pair()
    request_id, head = client.request_head("/file", client.bytes_tag, 5)
    server.receive_data(head + b"hello")
    request = server.next_event()
    assert isinstance(request, Request) and request.body == b"hello"
    assert request.tag == client.bytes_tag and request.request_id == request_id


def test_a_reply_decodes_and_errors_raise_by_status() -> None:
    client, server = pair()
    tag, body = default_registry.encode_tag({"ok": True})
    events = client.receive(
        server.send(Reply(1, tag, body))
        + server.send(Error(2, 404, "resource '/x' is not handled"))
        + server.send(Error(3, 500, "boom"))
    )
    reply, not_found, failed = events
    assert client.outcome(reply) == {"ok": True}  # type: ignore[arg-type]
    with pytest.raises(NotHandled, match="not handled"):
        client.outcome(not_found)  # type: ignore[arg-type]
    with pytest.raises(HandlerError, match="boom"):
        client.outcome(failed)  # type: ignore[arg-type]


def test_an_undecodable_reply_is_a_decode_error_naming_the_server() -> None:
    client, _ = pair()
    json_tag = default_registry.encode_tag([1])[0]
    with pytest.raises(DecodeError, match=r"undecodable reply from 127.0.0.1:7000"):
        client.outcome(Reply(1, json_tag, b"{not json"))


def test_which_answers_end_the_connection() -> None:
    assert Exchange.ends_connection(Error(0, 400, "bad frame"))
    assert Exchange.ends_connection(Error(5, 413, "too large"))
    assert not Exchange.ends_connection(Error(5, 404, "no"))
    assert not Exchange.ends_connection(Reply(5))


def test_a_connection_error_is_the_exception_of_its_status() -> None:
    client, _ = pair()
    assert isinstance(client.connection_error(Error(0, 401, "token")), Unauthorized)
    assert "before answering" in str(client.closed())


def test_a_server_that_breaks_the_protocol_closes_the_connection() -> None:
    client = Exchange("h:1", default_registry, 1 << 20)
    with pytest.raises(ConnectionClosed, match="broke the native protocol"):
        client.receive(b"HTTP/1.1 400 Bad Request\r\n\r\n")


def test_eof_before_the_preface_suggests_tls_or_another_protocol() -> None:
    client = Exchange("h:1", default_registry, 1 << 20)
    client.feed(b"\x16\x03")
    with pytest.raises(ConnectionClosed, match="before sending the native protocol's preface"):
        client.receive(None)


def test_client_settings_need_a_port_or_a_socket_path() -> None:
    with pytest.raises(TypeError, match="give the server's port, or uds="):
        ClientSettings()
    with pytest.raises(TypeError, match="use RawDataClient or AsyncRawDataClient"):
        ClientSettings(7000)
    assert DEFAULT_TIMEOUT > 0
