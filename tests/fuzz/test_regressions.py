"""Inputs the fuzzers and state machines found, kept so they stay fixed.

Each test names what went wrong before the fix. The fuzz targets' own seed
inputs must pass their checks too (a harness that fails on a valid input
would report nothing useful).
"""

from __future__ import annotations

import base64
import importlib
import io
import subprocess
import sys
from types import ModuleType

import numpy as np
import pytest
from numpy.lib import format as npy_format

from dataserve.callback.messages import InvalidResponse, build_reply
from dataserve.core.codec import default_registry
from dataserve.core.errors import DecodeError, EncodeError, UnsupportedMediaType
from fuzz import fuzz_codec, fuzz_pyts, fuzz_tinyproto
from fuzz._stream import project, run, stream_of
from fuzz.run import ROOT, targets
from rawproto.proto.tinyproto import SC_OK, SC_REFUSED

TARGETS = targets()


def target(name: str) -> ModuleType:
    return importlib.import_module(f"fuzz.fuzz_{name}")


def test_there_is_a_target_per_parser() -> None:
    assert TARGETS == ["callback", "codec", "native", "pyts", "tcpy", "tinyproto"]


@pytest.mark.parametrize("name", TARGETS)
def test_every_seed_passes_its_target(name: str) -> None:
    module = target(name)
    seeds = list(module.seeds())
    assert seeds
    for seed in seeds:
        module.check(seed)


# --- the codec ----------------------------------------------------------------------


def test_npy_header_the_tokenizer_cannot_read_is_a_decode_error() -> None:
    # atheris: numpy's header parser raised tokenize.TokenError (a 500).
    crash = (
        b"\x93NUMPY\x01\x00v\x00{'descr': [('a', '<f4')], 'fortraNUorder': Falss, "
        b"'shape': (3,), }       ': Falss, 'shape': (3,), }                    "
        b"\x93NUMPY            \xc4\xc4\xc4\xc4\xc4\xc4\xc4\xc4\xc4\xc4" + bytes(10)
    )
    fuzz_codec.check(bytes([fuzz_codec.CONTENT_TYPES.index("application/x-npy"), 4]) + crash)
    with pytest.raises(DecodeError, match="not a valid .npy body"):
        default_registry.decode("application/x-npy", crash)


def test_npy_header_announcing_a_huge_array_is_a_decode_error() -> None:
    # 128 bytes announcing 7 TiB: np.load allocated the shape first (MemoryError).
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(
        buf, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
    )
    with pytest.raises(DecodeError, match="too large"):
        default_registry.decode("application/x-npy", buf.getvalue())


def test_npy_of_a_zero_size_dtype_is_refused_both_ways() -> None:
    # atheris (a timeout): 100 bytes announcing 3.2e15 elements of a dtype of
    # 0 bytes loaded without any data; re-encoding it (np.save, as a handler
    # echoing it would) looped over the elements for hours.
    crash = base64.b64decode(
        "CASTTlVNUFkBAHYAeydkZXNjcic6IFsoJ2EnLCAnMGY0JyldLCAnZm9ydHJhbl9vcmRlcic6IEZhbHNl"
        "LCAnc2hhcGUnOiAoMzI0NDQ0NDY0NDQ0NDQ0NCwpLCB9ICAgICAgICAgICAgI21tbW1tbW1tbW1tbW1t"
        "bW1tbW1tbW1tbQAAAAA="
    )
    fuzz_codec.check(crash)
    with pytest.raises(DecodeError) as info:
        default_registry.decode("application/x-npy", crash[2:])
    assert info.value.message == (
        "a numpy array of 3244444644444444 elements of a zero-size dtype "
        "([('a', '<f4', (0,))]) is refused: it holds no data, and every pass over it "
        "takes 3244444644444444 steps"
    )
    empty = np.zeros((10**12,), dtype=[("a", "<f4", (0,))])
    with pytest.raises(EncodeError, match="zero-size dtype .* cannot be sent"):
        default_registry.encode(empty)
    # An array with no elements is still fine, whatever its dtype.
    none = np.zeros((0, 3), dtype=[("a", "<f4", (0,))])
    _, body = default_registry.encode(none)
    assert default_registry.decode("application/x-npy", body).shape == (0, 3)


def test_npz_archives_are_refused_not_opened() -> None:
    # np.load opened zip archives too: an NpzFile reached the handler, and a
    # damaged one raised zipfile.BadZipFile (a 500).
    buf = io.BytesIO()
    np.savez(buf, a=np.arange(3))
    for body in (buf.getvalue(), b"PK\x03\x04 not really a zip"):
        with pytest.raises(DecodeError, match="magic"):
            default_registry.decode("application/x-npy", body)


def test_charset_with_a_nul_is_refused() -> None:
    # str.decode raised ValueError("embedded null character") (a 500); then a
    # 400; now an unknown charset, like any other (415).
    with pytest.raises(UnsupportedMediaType, match=r"charset 'utf\\x008' is not known"):
        default_registry.decode("text/plain; charset=utf\x008", b"abc")


def test_text_with_lone_surrogates_is_an_encode_error() -> None:
    # A utf-7 body decoded to a lone surrogate; echoing it raised
    # UnicodeEncodeError instead of EncodeError. utf-7 is refused now (415),
    # but a handler can still return such a str.
    with pytest.raises(UnsupportedMediaType, match="utf-7"):
        default_registry.decode("text/plain; charset=utf-7", b"+2AA-")
    with pytest.raises(EncodeError, match="UTF-8"):
        default_registry.encode("\ud800")


# --- the callback API -----------------------------------------------------------------


def test_two_content_lengths_differing_in_case_are_refused() -> None:
    # Only the last one was checked: a response with two lengths went out.
    response = {
        "version": "1.1",
        "statuscode": 200,
        "headers": {"Content-Length": "2", "content-length": "3"},
        "message": "abc",
    }
    with pytest.raises(InvalidResponse, match="Content-Length twice"):
        build_reply(response)


# --- tinyproto --------------------------------------------------------------------------


def test_a_refusal_then_the_peers_announce_in_one_read() -> None:
    # The state machine's first find: a refusal (0x00) followed in the same
    # read by the peer's own announce was read as a crossing Announce(0),
    # because the parser decided by whether 3 more bytes had arrived. Now a
    # refusal is a byte no length begins with, and every cut reads the same.
    units = fuzz_tinyproto.opening()
    units += fuzz_tinyproto.message(b"\x02", SC_REFUSED)  # we announce; refused
    units += fuzz_tinyproto.oversize(49)
    stream, expected = stream_of(units)
    for cuts in ([], range(1, len(stream))):
        assert project(run(fuzz_tinyproto.ANNOUNCING, stream, cuts, eof=False)) == expected


def test_the_peers_announce_crossing_ours() -> None:
    units = fuzz_tinyproto.opening()
    units += fuzz_tinyproto.message(b"\x02", SC_OK, then=b"hi")
    stream, expected = stream_of(units)
    assert stream.endswith(b"\x00\x00\x00\x02\xffhi")  # its length, our acceptance, its payload
    for cuts in ([], range(1, len(stream))):
        assert project(run(fuzz_tinyproto.ANNOUNCING, stream, cuts, eof=False)) == expected


# --- pyts -------------------------------------------------------------------------------


def test_bytes_after_the_document_do_not_count_against_the_limit() -> None:
    # The parser counted bytes that arrived after the document, in the same
    # read, against max_body_size: one read gave 413, two gave the request.
    (unit,) = fuzz_pyts.request("/e", "x")
    document = unit[0]
    assert len(document) < fuzz_pyts.SMALL.max_body_size
    stream = document + b" " * fuzz_pyts.SMALL.max_body_size
    whole = project(run(fuzz_pyts.SMALL_DRIVER, stream))
    assert whole == project(run(fuzz_pyts.SMALL_DRIVER, stream, [len(document)]))


# --- the runner -------------------------------------------------------------------------


def test_runner_skips_cleanly_without_atheris() -> None:
    # Hide atheris, as on a platform without its wheels.
    code = (
        "import sys; sys.modules['atheris'] = None; sys.argv = ['run.py', '--seconds', '1']; "
        "import runpy; runpy.run_path('fuzz/run.py', run_name='__main__')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "atheris is not installed" in proc.stderr
