"""text/plain charsets: only decoders that run in linear time are reachable."""

from __future__ import annotations

import codecs
import encodings
import importlib
import pkgutil
import time

import pytest

from dataserve.core.codec import TEXT_CHARSETS, default_registry, text_codec
from dataserve.core.errors import UnsupportedMediaType

ACCEPTED = (
    "a text/plain body may be UTF-8, UTF-16 or UTF-32 (-le, -be, utf-8-sig), ASCII, "
    "Latin-1 or a single-byte code page (cp1252, iso-8859-2..16, koi8-r, mac-roman, cp437...)"
)


@pytest.mark.parametrize(
    ("charset", "body", "text"),
    [
        ("utf-8", "hé€😀".encode(), "hé€😀"),
        ("UTF8", b"abc", "abc"),
        ("utf-8-sig", b"\xef\xbb\xbfabc", "abc"),
        ("utf-16", "hé".encode("utf-16"), "hé"),
        ("UTF-16LE", "hé".encode("utf-16-le"), "hé"),
        ("utf-16-be", "hé".encode("utf-16-be"), "hé"),
        ("utf-32", "hé".encode("utf-32"), "hé"),
        ("us-ascii", b"abc", "abc"),
        ("latin-1", b"\xe9", "é"),
        ("ISO-8859-1", b"\xe9", "é"),
        ("windows-1252", b"\x80", "€"),
        ("iso-8859-15", b"\xa4", "€"),
        ("koi8-r", b"\xc1", "\u0430"),  # CYRILLIC SMALL LETTER A
        ("macintosh", b"\x8e", "é"),
        ("cp437", b"\x82", "é"),
        ('"utf-8"', b"abc", "abc"),  # quoted, as RFC 9110 allows
    ],
)
def test_the_utf_family_latin1_and_code_pages_are_accepted(
    charset: str, body: bytes, text: str
) -> None:
    assert default_registry.decode(f"text/plain; charset={charset}", body) == text


@pytest.mark.parametrize(
    ("charset", "name"),
    [
        ("punycode", "punycode"),  # quadratic: 1 MB took 94 s
        ("idna", "idna"),
        ("utf-7", "utf-7"),
        ("unicode_escape", "unicode-escape"),
        ("raw-unicode-escape", "raw-unicode-escape"),
        ("rot13", "rot-13"),
        ("zlib", "zlib"),
        ("bz2", "bz2"),
        ("hex", "hex"),
        ("base64", "base64"),
        ("uu", "uu"),
        ("quopri", "quopri"),
        ("shift_jis", "shift-jis"),
        ("iso2022_jp", "iso2022-jp"),
        ("charmap", "charmap"),
        ("undefined", "undefined"),
    ],
)
def test_other_codecs_are_415_naming_what_is_accepted(charset: str, name: str) -> None:
    with pytest.raises(UnsupportedMediaType) as info:
        default_registry.decode(f"text/plain; charset={charset}", b"abc")
    assert info.value.status == 415
    assert info.value.message == (
        f"text/plain charset {charset!r} ({name}) is not accepted: it is not a text "
        f"encoding that decodes in linear time; {ACCEPTED}"
    )


@pytest.mark.parametrize("charset", ["nope", "", "utf\x008", "x" * 100])
def test_unknown_charsets_are_415_naming_what_is_accepted(charset: str) -> None:
    shown = repr(charset if len(charset) <= 40 else charset[:40] + "...")
    with pytest.raises(UnsupportedMediaType) as info:
        default_registry.decode(f"text/plain; charset={charset}", b"abc")
    assert info.value.message == f"text/plain charset {shown} is not known; {ACCEPTED}"


def test_the_table_is_the_utf_family_ascii_latin1_and_every_charmap_codec() -> None:
    # A single-byte code page is a charmap codec: a 256-character decoding
    # table, one lookup per byte. The table must hold all of them (and
    # nothing else beyond the UTF family, ASCII and Latin-1).
    charmaps = set()
    for module in pkgutil.iter_modules(encodings.__path__):
        try:
            mod = importlib.import_module(f"encodings.{module.name}")
        except ImportError:  # mbcs, oem: Windows only
            continue
        table = getattr(mod, "decoding_table", None)
        if isinstance(table, str) and len(table) == 256:
            charmaps.add(codecs.lookup(module.name).name)
    utf = {"utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be"}
    utf |= {"utf-32", "utf-32-le", "utf-32-be"}
    assert charmaps - TEXT_CHARSETS == set()
    assert charmaps | utf | {"ascii"} == TEXT_CHARSETS
    for name in TEXT_CHARSETS:
        assert text_codec(name) == name


def test_punycode_is_refused_before_a_byte_is_decoded() -> None:
    # 1 MB of punycode kept a server busy for 94 s; the refusal is immediate.
    started = time.perf_counter()
    with pytest.raises(UnsupportedMediaType):
        default_registry.decode("text/plain; charset=punycode", b"a" * 1_000_000 + b"-" + b"b" * 9)
    assert time.perf_counter() - started < 0.5
