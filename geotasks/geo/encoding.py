"""The character encoding of a shapefile's DBF.

Resolution order: the caller's ``encoding=``, then the ``.cpg`` file, then the DBF header's
language driver id (LDID), then a guess from the bytes themselves. GDAL understands only some
``.cpg`` spellings (it ignores ``ANSI 1250`` and ``UTF8``, for instance), so the encoding is
always resolved here and handed to GDAL explicitly, under a name its iconv accepts.
"""

from __future__ import annotations

import codecs
import logging
import re

from geotasks.errors import InputError

logger = logging.getLogger(__name__)

#: DBF language driver ids (header byte 29) to Python codec names; from the dBASE/ESRI table.
LDID_CODECS: dict[int, str] = {
    0x01: "cp437", 0x02: "cp850", 0x03: "cp1252", 0x04: "mac-roman", 0x08: "cp865",
    0x09: "cp437", 0x0A: "cp850", 0x0B: "cp437", 0x0D: "cp437", 0x0E: "cp850", 0x0F: "cp437",
    0x10: "cp850", 0x11: "cp437", 0x12: "cp850", 0x13: "cp932", 0x14: "cp850", 0x15: "cp437",
    0x16: "cp850", 0x17: "cp865", 0x18: "cp437", 0x19: "cp437", 0x1A: "cp850", 0x1B: "cp437",
    0x1C: "cp863", 0x1D: "cp850", 0x1F: "cp852", 0x22: "cp852", 0x23: "cp852", 0x24: "cp860",
    0x25: "cp850", 0x26: "cp866", 0x37: "cp850", 0x40: "cp852", 0x4D: "cp936", 0x4E: "cp949",
    0x4F: "cp950", 0x50: "cp874", 0x57: "cp1252", 0x58: "cp1252", 0x59: "cp1252",
    0x64: "cp852", 0x65: "cp866", 0x66: "cp865", 0x67: "cp861", 0x6A: "cp737", 0x6B: "cp857",
    0x6C: "cp863", 0x78: "cp950", 0x79: "cp949", 0x7A: "cp936", 0x7B: "cp932", 0x7C: "cp874",
    0x86: "cp737", 0x87: "cp852", 0x88: "cp857", 0x96: "mac-cyrillic", 0x97: "mac-latin2",
    0x98: "mac-greek", 0xC8: "cp1250", 0xC9: "cp1251", 0xCA: "cp1254", 0xCB: "cp1253",
    0xCC: "cp1257",
}  # fmt: skip

#: Python codec names whose iconv (GDAL) spelling is not derived by rule.
_GDAL_NAMES = {
    "utf-8": "UTF-8",
    "ascii": "ASCII",
    "mac-roman": "MACINTOSH",
    "mac-cyrillic": "MAC-CYRILLIC",
    "mac-latin2": "MAC-CENTRALEUROPE",
    "mac-greek": "MAC-GREEK",
    "shift_jis": "SHIFT_JIS",
    "euc_jp": "EUC-JP",
    "euc_kr": "EUC-KR",
    "gbk": "GBK",
    "gb2312": "GB2312",
    "gb18030": "GB18030",
    "big5": "BIG5",
    "koi8-r": "KOI8-R",
    "koi8-u": "KOI8-U",
}

#: The ``.cpg`` spellings seen in the wild for Windows/DOS code pages: ``1252``, ``ANSI 1250``,
#: ``CP1251``, ``Windows-1252``, ``OEM 850``.
_CPG_CODEPAGE = re.compile(r"(?:ANSI|OEM|CP|WINDOWS|WIN)?[\s_-]*(\d{3,5})")

#: The ``.cpg`` spellings of ISO 8859 parts: ``88591``, ``8859-2``, ``ISO 8859-15``, ``ISO88591``.
_CPG_ISO8859 = re.compile(r"(?:ISO)?[\s_-]*8859[\s_-]*(\d{1,2})")

#: Windows code page numbers that are really UTF-8.
_UTF8_CODEPAGES = {"65001"}


def resolve_encoding(
    explicit: str | None, *, cpg_text: str | None, dbf_header: bytes, sample: bytes
) -> str:
    """Choose the DBF's encoding and return the name GDAL should be given.

    Parameters:
      explicit: The caller's ``encoding=`` argument, if any: it always wins.
      cpg_text: The content of the ``.cpg`` file, if there is one.
      dbf_header: At least the first 32 bytes of the ``.dbf`` (holding the LDID).
      sample: Some record bytes of the ``.dbf``, to guess from when nothing else says.

    Returns:
      An encoding name accepted by GDAL's ``ENCODING`` open option.

    Raises:
      InputError: If ``explicit`` is not an encoding geotasks can read.
    """
    if explicit is not None:
        return gdal_encoding_name(lookup_codec(explicit, "encoding="))
    if cpg_text is not None:
        codec = codec_from_cpg(cpg_text)
        if codec is not None:
            return gdal_encoding_name(codec)
        logger.warning("ignoring a .cpg file naming an unknown encoding: %r", cpg_text[:40])
    if len(dbf_header) > 29 and dbf_header[29] in LDID_CODECS:
        return gdal_encoding_name(LDID_CODECS[dbf_header[29]])
    return gdal_encoding_name(guess_codec(sample))


def codec_from_cpg(text: str) -> str | None:
    """Return the Python codec a ``.cpg`` file names, or ``None`` if it is not understood.

    Parameters:
      text: The file's content.

    Returns:
      A Python codec name, such as ``cp1250``, or ``None``.
    """
    spelled = text.strip().strip("\x00").upper()
    if spelled in ("UTF8", "UTF-8", "UTF_8"):
        return "utf-8"
    if match := _CPG_ISO8859.fullmatch(spelled):
        return _lookup_or_none(f"iso8859-{match.group(1)}")
    if match := _CPG_CODEPAGE.fullmatch(spelled):
        number = match.group(1)
        return "utf-8" if number in _UTF8_CODEPAGES else _lookup_or_none(f"cp{number}")
    return _lookup_or_none(spelled)


def guess_codec(sample: bytes) -> str:
    """Guess the encoding of DBF bytes that carry no declaration.

    Text that decodes as UTF-8 almost never is anything else; older Windows tools wrote
    cp1252; ISO-8859-1 decodes any byte and is the last resort (GDAL's own default).

    Parameters:
      sample: Record bytes from the ``.dbf``.

    Returns:
      A Python codec name.
    """
    try:
        # Not final: the sample may end in the middle of a multi-byte character.
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        pass
    else:
        return "utf-8"
    try:
        sample.decode("cp1252")
    except UnicodeDecodeError:
        return "iso8859-1"
    return "cp1252"


def gdal_encoding_name(codec: str) -> str:
    """Spell a Python codec name the way GDAL's iconv expects it.

    Parameters:
      codec: A canonical Python codec name (``codecs.lookup(...).name``).

    Returns:
      The iconv name, such as ``CP1250`` or ``ISO-8859-2``.

    Raises:
      InputError: If the codec is not one a DBF can be written in.
    """
    if codec in _GDAL_NAMES:
        return _GDAL_NAMES[codec]
    if match := re.fullmatch(r"iso8859-(\d{1,2})", codec):
        return f"ISO-8859-{match.group(1)}"
    if match := re.fullmatch(r"cp(\d{3,4})", codec):
        return f"CP{match.group(1)}"
    raise InputError(f"encoding {codec!r} is not supported for shapefile attributes")


def lookup_codec(name: object, label: str) -> str:
    """The Python codec an encoding name given by a caller stands for.

    Parameters:
      name: The name given, such as ``cp1252`` or ``latin-1``.
      label: The argument's name, for messages (``encoding=``).

    Returns:
      The canonical codec name.

    Raises:
      InputError: If ``name`` is not a string or names no encoding Python knows.
    """
    if not isinstance(name, str):
        raise InputError(f"{label} must be a string such as 'cp1252', not {type(name).__name__}")
    codec = _lookup_or_none(name)
    if codec is None:
        raise InputError(f"{label} names an unknown encoding: {name!r}")
    return codec


def _lookup_or_none(name: str) -> str | None:
    try:
        return codecs.lookup(name.strip()).name
    # codecs.lookup raises ValueError for a name holding a NUL byte.
    except (LookupError, ValueError):
        return None
