"""dataserve.http.tls: TLS run inside the HTTP protocol, over memory BIOs.

The client is an ``ssl.SSLObject`` over memory BIOs too; bytes are moved
between the two sides by hand, so the handshake, the plaintext and the
deadline are each seen step by step, without a socket.
"""

from __future__ import annotations

import ssl
from typing import Any

import pytest

from dataserve.core.security import TLSConfig
from dataserve.http.tls import TLSLayer, TLSSession, TLSTransport, server_context

from .fakes import Watchdog


class Raw:
    """The plain transport under TLS: records ciphertext written, close and abort."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.closing = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.out += data

    def take(self) -> bytes:
        data, self.out = bytes(self.out), bytearray()
        return data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.aborted = self.closing = True

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


class Above:
    """The connection over TLS: gets the transport, then plaintext into its buffer."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.buffer = memoryview(bytearray(4096))
        self.received = bytearray()

    def tls_established(self, transport: TLSTransport) -> None:
        self.transport = transport

    def plaintext_buffer(self) -> memoryview:
        return self.buffer

    def plaintext_received(self, nbytes: int) -> None:
        self.received += self.buffer[:nbytes]


class Client:
    def __init__(self, ca: str) -> None:
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        context = ssl.create_default_context(cafile=ca)
        self.obj = context.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")

    def take(self) -> bytes:
        return self.outgoing.read()


def handshake(layer: TLSLayer, raw: Raw, client: Client) -> None:
    for _ in range(10):
        try:
            client.obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            pass
        layer.received(memoryview(client.take()))
        client.incoming.write(raw.take())
    else:
        raise AssertionError("no handshake")
    sent = client.take()  # TLS 1.3: the client's Finished
    if sent:
        layer.received(memoryview(sent))
        client.incoming.write(raw.take())


@pytest.fixture
def tls(pki: dict[str, str]) -> TLSConfig:
    return TLSConfig(pki["cert"], pki["key"])


def setup(tls: TLSConfig, pki: dict[str, str]) -> tuple[TLSLayer, Raw, Above, Client, Watchdog]:
    raw, above, dog = Raw(), Above(), Watchdog()
    layer = TLSLayer(above, raw, tls, dog, 10.0)  # type: ignore[arg-type]
    return layer, raw, above, Client(pki["ca"]), dog


def test_one_context_per_setting(tls: TLSConfig) -> None:
    assert server_context(tls) is server_context(tls)
    assert server_context(tls).minimum_version == ssl.TLSVersion.TLSv1_2


def test_the_handshake_then_plaintext_both_ways(tls: TLSConfig, pki: dict[str, str]) -> None:
    layer, raw, above, client, dog = setup(tls, pki)
    assert len(dog.live()) == 1  # the handshake deadline
    handshake(layer, raw, client)
    assert isinstance(above.transport, TLSTransport) and layer.session.established
    assert dog.live() == []  # the deadline stopped once the handshake was done
    client.obj.write(b"GET / HTTP/1.1\r\n\r\n")
    layer.received(memoryview(client.take()))
    assert bytes(above.received) == b"GET / HTTP/1.1\r\n\r\n"
    above.transport.writelines([b"HTTP/1.1 200 OK\r\n", b"\r\n"])
    client.incoming.write(raw.take())
    got = client.obj.read(1024)
    got += client.obj.read(1024)  # one TLS record per write
    assert got == b"HTTP/1.1 200 OK\r\n\r\n"


def test_the_transport_over_tls(tls: TLSConfig, pki: dict[str, str]) -> None:
    layer, raw, above, client, _ = setup(tls, pki)
    handshake(layer, raw, client)
    t: TLSTransport = above.transport
    assert t.can_write_eof() is False
    with pytest.raises(RuntimeError, match="cannot half-close"):
        t.write_eof()
    assert t.get_extra_info("ssl_object") is layer.session.obj
    assert t.get_extra_info("sslcontext") is server_context(tls)
    assert t.get_extra_info("cipher") is not None
    assert t.get_extra_info("peername") == ("127.0.0.1", 1)  # the plain transport's
    t.close()
    assert raw.closing
    client.incoming.write(raw.take())
    assert client.obj.read(10) == b""  # the end of the stream:
    client.obj.unwrap()  # close_notify was received (no SSLWantReadError)
    t.write(b"after close")  # dropped: the transport is closing
    assert raw.take() == b""


def test_the_peers_close_notify_closes_the_connection(tls: TLSConfig, pki: dict[str, str]) -> None:
    layer, raw, _, client, _ = setup(tls, pki)
    handshake(layer, raw, client)
    with pytest.raises(ssl.SSLWantReadError):
        client.obj.unwrap()
    layer.received(memoryview(client.take()))
    assert raw.closing


def test_a_peer_that_is_not_tls_is_aborted(tls: TLSConfig, pki: dict[str, str]) -> None:
    layer, raw, above, _, _ = setup(tls, pki)
    layer.received(memoryview(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert raw.aborted and above.transport is None


def test_no_handshake_within_the_deadline_aborts(tls: TLSConfig, pki: dict[str, str]) -> None:
    _, raw, above, _, dog = setup(tls, pki)
    (deadline,) = dog.live()
    assert deadline.delay == 10.0
    deadline.fire()
    assert raw.aborted and above.transport is None


def test_a_large_write_is_encrypted_in_pieces(tls: TLSConfig, pki: dict[str, str]) -> None:
    layer, raw, above, client, _ = setup(tls, pki)
    handshake(layer, raw, client)
    payload = b"p" * (600 * 1024)
    above.transport.write(payload)
    client.incoming.write(raw.take())
    got = bytearray()
    while len(got) < len(payload):
        got += client.obj.read(65536)
    assert bytes(got) == payload


def test_a_session_closed_before_the_handshake_sends_nothing(tls: TLSConfig) -> None:
    raw = Raw()
    session = TLSSession(server_context(tls), raw)
    session.close()
    session.close()
    assert session.closed and raw.take() == b""
