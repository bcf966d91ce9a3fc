"""rawproto._blocking: the thread-style clients' sockets and how their failures are named."""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from collections.abc import Iterator

import pytest

from dataserve.core import errors
from rawproto._blocking import connect, raise_socket_error, set_timeout, translate_errors


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


@pytest.fixture
def refused() -> Iterator[int]:
    """A port bound but not listening, held for the test: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_connect_gives_a_connected_socket_with_nodelay(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    with connect("127.0.0.1", port, 5, "tcpy server") as sock:
        assert sock.getpeername() == ("127.0.0.1", port)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_a_refused_connection_is_a_connect_error_naming_the_server(refused: int) -> None:
    with pytest.raises(
        errors.ConnectError, match=f"cannot connect to the pyts server at 127.0.0.1:{refused}"
    ):
        connect("127.0.0.1", refused, 5, "pyts server")


def test_a_failed_tls_handshake_is_a_connect_error(listener: socket.socket) -> None:
    port = listener.getsockname()[1]

    def answer_in_plain_text() -> None:
        peer, _ = listener.accept()
        with peer:
            peer.recv(4096)
            peer.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")

    thread = threading.Thread(target=answer_in_plain_text)
    thread.start()
    try:
        ctx = ssl.create_default_context()
        with pytest.raises(errors.ConnectError, match="TLS handshake with the tcpy server"):
            connect("127.0.0.1", port, 5, "tcpy server", ctx)
    finally:
        thread.join(10)


def test_set_timeout_uses_the_kernels_timeouts_on_a_plain_socket() -> None:
    with socket.socket() as sock:
        set_timeout(sock, 1.5)
        assert sock.gettimeout() is None  # blocking: the kernel enforces it
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.calcsize("@ll"))
        assert struct.unpack("@ll", raw) == (1, 500000)
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.calcsize("@ll"))
        assert struct.unpack("@ll", raw) == (1, 500000)


def test_a_tiny_timeout_is_never_zero_which_would_mean_forever() -> None:
    with socket.socket() as sock:
        set_timeout(sock, 0.0000001)
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.calcsize("@ll"))
        assert struct.unpack("@ll", raw) != (0, 0)  # (the kernel rounds it up to a tick)


def test_no_timeout_means_blocking() -> None:
    with socket.socket() as sock:
        sock.settimeout(3)
        set_timeout(sock, None)
        assert sock.gettimeout() is None


def test_a_kernel_timeout_is_reported_as_a_timeout(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    with connect("127.0.0.1", port, 5, "tcpy server") as sock:
        set_timeout(sock, 0.05)
        with (
            pytest.raises(errors.TimeoutError, match=f"127.0.0.1:{port} within 0.05 s"),
            translate_errors("127.0.0.1", port, 0.05, "tcpy server"),
        ):
            sock.recv(1)  # the server never answers


@pytest.mark.parametrize("exc", [TimeoutError(), BlockingIOError(11, "again")])
def test_timeouts_become_the_cores_timeout_error(exc: OSError) -> None:
    with pytest.raises(errors.TimeoutError, match="no answer from the x at h:1 within 2 s"):
        raise_socket_error(exc, "h", 1, 2, "x")


def test_other_socket_errors_become_connection_closed() -> None:
    cause = ConnectionResetError(104, "Connection reset by peer")
    with pytest.raises(
        errors.ConnectionClosed, match="connection to the x at h:1 lost: Connection reset"
    ) as info:
        raise_socket_error(cause, "h", 1, None, "x")
    assert info.value.__cause__ is cause


def test_translate_errors_leaves_other_exceptions_alone() -> None:
    with pytest.raises(KeyError), translate_errors("h", 1, None, "x"):
        raise KeyError("not a socket error")
    with translate_errors("h", 1, None, "x"):
        pass
