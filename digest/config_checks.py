"""Checks of values in ``digest.toml`` that pydantic's types do not make, and the file's text.

Each check raises ValueError with what was expected, which the loader reports as
``file:line: key: problem``, so a bad value is refused when the file is read, never as a
traceback later in ``run`` or ``serve``.
"""

from __future__ import annotations

import email.utils
import re
import tomllib
import unicodedata
from urllib.parse import urlsplit

from .errors import ConfigError


def check_one_line(text: str) -> str:
    """`text` unless it holds a control character (CR, LF, NUL, ...) or a line separator
    (U+2028: Python's ``splitlines``, which the email package uses, breaks lines there too)."""
    for i, ch in enumerate(text):
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp") and ch != "\t":
            raise ValueError(f"must be one line without control characters; found {ch!r} at "
                             f"character {i + 1}")
    return text


def check_address(value: str, example: str) -> str:
    """`value` if it is one email address, with or without a display name."""
    _, address = email.utils.parseaddr(value)
    local, at, domain = address.rpartition("@")
    if not (at and local and domain) or any(c.isspace() for c in address):
        raise ValueError(f"expected one email address such as {example!r}, got {value!r}")
    return value


def check_web_url(value: str) -> str:
    """`value` if it is an absolute http(s) URL with a host, as links in emails need."""
    expected = "expected an absolute http(s) URL such as 'https://digest.example.org'"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (reading it validates it)
    except ValueError as exc:
        raise ValueError(f"{expected}, got {value!r} ({exc})") from None
    if parts.scheme.lower() not in ("http", "https"):
        scheme = f"the scheme {parts.scheme + ':'!r}" if parts.scheme else "no scheme"
        raise ValueError(f"{expected}, got {value!r} with {scheme}")
    if not parts.hostname:
        raise ValueError(f"{expected}, got {value!r} without a host")
    if parts.query or parts.fragment:
        raise ValueError(f"{expected} without '?' or '#', got {value!r}")
    return value


def decode_utf8(name: str, data: bytes) -> str:
    """The text of a config file, naming the line of the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8-sig")  # a byte order mark (Windows editors) is fine
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(f"{name}:{line}: not UTF-8 text (byte {data[exc.start]:#04x} at "
                          f"column {column}); save the file as UTF-8") from None


_TOML_WHERE = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def toml_problem(name: str, exc: tomllib.TOMLDecodeError) -> str:
    """``file:line: not valid TOML: problem (column N)`` from tomllib's message."""
    message = str(exc)
    where = _TOML_WHERE.search(message)
    if where is None:
        return f"{name}: not valid TOML: {message}"
    return (f"{name}:{where.group(1)}: not valid TOML: {message[: where.start()]} "
            f"(column {where.group(2)})")
