"""DBF encodings: .cpg spellings, language driver ids, and the guess."""

from __future__ import annotations

import pytest

from geotasks.errors import InputError
from geotasks.geo.encoding import codec_from_cpg, gdal_encoding_name, guess_codec, resolve_encoding

HEADER_LDID_1251 = bytes(29) + bytes([0xC9]) + bytes(2)


@pytest.mark.parametrize(
    ("cpg", "codec"),
    [
        ("UTF-8", "utf-8"), ("UTF8", "utf-8"), ("utf-8\r\n", "utf-8"), ("65001", "utf-8"),
        ("ANSI 1250", "cp1250"), ("1252", "cp1252"), ("CP1251", "cp1251"),
        ("Windows-1257", "cp1257"), ("OEM 850", "cp850"),
        ("88591", "iso8859-1"), ("8859-2", "iso8859-2"), ("ISO 8859-15", "iso8859-15"),
        ("ISO-8859-1", "iso8859-1"), ("Big5", "big5"), ("SHIFT_JIS", "shift_jis"),
        ("gibberish", None),
    ],
)  # fmt: skip
def test_cpg_spellings(cpg: str, codec: str | None) -> None:
    # Given a .cpg as some tool wrote it, When read, Then the right codec is named
    assert codec_from_cpg(cpg) == codec


@pytest.mark.parametrize(
    ("codec", "gdal"),
    [("cp1250", "CP1250"), ("iso8859-2", "ISO-8859-2"), ("utf-8", "UTF-8"),
     ("mac-roman", "MACINTOSH"), ("euc_kr", "EUC-KR")],
)  # fmt: skip
def test_gdal_names(codec: str, gdal: str) -> None:
    # Given a Python codec name, When spelled for GDAL, Then iconv's name comes out
    assert gdal_encoding_name(codec) == gdal


def test_codecs_a_dbf_cannot_use_are_refused() -> None:
    # Given a multi-byte-unit codec no DBF can hold, When spelled for GDAL, Then it is refused
    with pytest.raises(InputError):
        gdal_encoding_name("utf-16-le")


def test_guess_prefers_utf8_then_cp1252_then_latin1() -> None:
    # Given UTF-8 cut inside a character, cp1252 text, and bytes cp1252 does not define
    cut_utf8 = "Zürich Łódź".encode()[:-1]
    # When guessed, Then each lands on the encoding that can read it
    assert guess_codec(cut_utf8) == "utf-8"
    assert guess_codec("Besançon €".encode("cp1252")) == "cp1252"
    assert guess_codec(b"\x81\x8d\xe9") == "iso8859-1"


def test_resolution_order() -> None:
    # Given every source of information at once
    sample = "Zürich".encode()
    # When resolved, Then encoding= beats .cpg, .cpg beats the LDID, the LDID beats the guess
    resolve = resolve_encoding
    assert resolve("latin1", cpg_text="UTF-8", dbf_header=HEADER_LDID_1251, sample=sample) == (
        "ISO-8859-1"
    )
    assert resolve(None, cpg_text="1250", dbf_header=HEADER_LDID_1251, sample=sample) == "CP1250"
    assert resolve(None, cpg_text=None, dbf_header=HEADER_LDID_1251, sample=sample) == "CP1251"
    assert resolve(None, cpg_text="???", dbf_header=bytes(32), sample=sample) == "UTF-8"
