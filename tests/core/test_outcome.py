"""dataserve.core.outcome: what a request is answered, whatever happened."""

from __future__ import annotations

import pytest

from dataserve.core import outcome
from dataserve.core.errors import (
    BadRequest,
    ConnectError,
    DecodeError,
    EncodeError,
    LimitExceeded,
    NotHandled,
    ResponseError,
    UnsupportedMediaType,
)


def test_an_answer_is_200_with_its_media_and_body() -> None:
    o = outcome.answered("application/json", b"[1]")
    assert (o.status, o.media, o.body, o.message, o.retry, o.ok) == (
        200,
        "application/json",
        b"[1]",
        "",
        False,
        True,
    )


def test_not_handled_is_404_naming_the_resource() -> None:
    o = outcome.not_handled("/x")
    assert (o.status, o.message, o.ok) == (404, "resource '/x' is not handled", False)


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (UnsupportedMediaType("no codec for text/x"), 415),
        (DecodeError("bad json"), 400),
        (EncodeError("cannot"), 500),
    ],
)
def test_codec_failures_keep_the_codecs_status_and_message(exc: DecodeError, status: int) -> None:
    o = outcome.codec_failed(exc)
    assert (o.status, o.message) == (status, exc.message)


def test_our_errors_raised_on_purpose_reach_the_peer() -> None:
    o = outcome.handler_raised("/x", BadRequest("give me a list"))
    assert (o.status, o.message) == (400, "give me a list")
    o = outcome.handler_raised("/x", NotHandled("not today"))
    assert (o.status, o.message) == (404, "not today")
    o = outcome.handler_raised("/x", LimitExceeded("too big"))
    assert (o.status, o.message) == (413, "too big")


def test_anything_else_is_500_naming_only_the_exception_type() -> None:
    o = outcome.handler_raised("/x", ValueError("the secret is 42"))
    assert o.status == 500
    assert o.message == "the handler raised ValueError for /x (see the server log)"
    assert "secret" not in o.message


def test_a_client_error_from_another_server_is_not_passed_on() -> None:
    o = outcome.handler_raised("/x", ConnectError("cannot connect to 10.0.0.9:80"))
    assert o.status == 500 and "10.0.0.9" not in o.message and "ConnectError" in o.message


def test_our_errors_without_a_message_or_with_an_odd_status_are_500() -> None:
    assert outcome.handler_raised("/x", BadRequest("")).status == 500
    assert outcome.handler_raised("/x", ResponseError("odd", 302)).status == 500
    assert outcome.handler_raised("/x", ResponseError("odd", 600)).status == 500


def test_what_raised_and_no_resource() -> None:
    o = outcome.handler_raised("", KeyError("k"), "the callback")
    assert o.message == "the callback raised KeyError (see the server log)"


def test_cannot_encode_timed_out_and_shut_down() -> None:
    o = outcome.cannot_encode("/x", EncodeError("a set is not JSON"))
    assert (o.status, o.message) == (
        500,
        "the handler's answer for /x cannot be sent: a set is not JSON",
    )
    assert outcome.timed_out(300).message == "the handler did not answer within 300 s"
    assert (
        outcome.timed_out(0.5, "command 'add'").message
        == "command 'add' did not answer within 0.5 s"
    )
    assert outcome.timed_out(1).status == 504
    started = outcome.shut_down(True)
    assert (started.status, started.retry) == (503, False)
    assert "before the handler answered" in started.message
    queued = outcome.shut_down(False, "the callback")
    assert (queued.status, queued.retry) == (503, True)
    assert queued.message == "the server shut down before the callback ran; send it again"
