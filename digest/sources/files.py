"""Papers from files: JSON Lines and CSV, gzip read transparently, and a format sniffer.

Both formats carry the fields ``id, title, abstract, authors, categories, date`` and an
optional ``url``; other fields are ignored. Only ``title`` is required.

Field rules, shared by both formats:

- ``id`` is kept exactly as given (``doi:10.1000/xyz`` stays that); a JSON integer becomes its
  string; a JSON float is rejected (``2503.11730`` as a number has lost its last zero). Missing
  or empty means no id.
- ``authors`` is a JSON list of strings. In CSV it may also be a string: names separated by
  ``;`` or, when there is no ``;``, by `` and ``. Commas never separate authors
  (``Curie, Marie`` is one name).
- ``categories`` is a JSON list of strings, or a string split on white space, ``;`` or ``,``.
- ``date`` is ``YYYY-MM-DD`` or a full ISO timestamp, of which the date as written is kept.

Which errors stop a file: the first non-blank line (JSON Lines) or the header row (CSV) decides
whether the file is of its format at all, and if not, `FormatError` is raised before anything
is yielded. After that, each bad line or row is a `Rejected` naming ``path:line``, and reading
goes on. A file that cannot be read to its end (truncated or corrupt gzip, bytes that are not
UTF-8) raises `FormatError` when the reader gets there; the caller rolls back.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import re
import zlib
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from ..errors import FormatError
from ..text import has_lone_surrogate
from ..types import ParsedItem, RawPaper, Rejected
from .limits import (
    MAX_LINE_CHARS,
    BoundedLines,
    Overlong,
    loads_json,
    open_gzip_text,
    oversized,
    too_long_message,
)

GZIP_MAGIC = b"\x1f\x8b"

FORMATS = ("jsonl", "csv", "hf-page", "hf-json", "arxiv-feed", "arxiv-api")


def open_text(path: str) -> TextIO:
    """Open `path` for reading as UTF-8 text, gunzipping it if it starts with the gzip magic.

    A UTF-8 byte order mark is dropped. Newlines are left untranslated (as `csv` wants);
    undecodable bytes raise when reached, and the parsers report them as `FormatError`.
    """
    with open(path, "rb") as probe:
        compressed = probe.read(2) == GZIP_MAGIC
    if compressed:
        return open_gzip_text(path)
    return open(path, encoding="utf-8-sig", newline="")


# --- JSON Lines -----------------------------------------------------------------------------


def parse_jsonl(lines: Iterable[str], *, origin: str) -> Iterator[ParsedItem]:
    """Parse JSON Lines: one object per line, blank lines skipped.

    The first non-blank line must be a JSON object, or the input is not JSON Lines at all
    (`FormatError`, raised on first iteration); later bad lines are rejected one by one.
    """
    first = True
    lineno = 0
    try:
        for lineno, line in enumerate(lines, start=1):
            where = f"{origin}:{lineno}"
            if isinstance(line, Overlong) or len(line) > MAX_LINE_CHARS:
                length = line.length if isinstance(line, Overlong) else len(line)
                yield Rejected(where, too_long_message(length))
                continue
            if not line or line.isspace():
                continue
            try:
                obj = loads_json(line)
            except ValueError as exc:
                reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
                if first:
                    hint = " (a JSON array is not JSON Lines)" if line.lstrip()[:1] == "[" else ""
                    raise FormatError(
                        origin, f"not JSON Lines: line {lineno} is not JSON ({reason}){hint}"
                    ) from None
                yield Rejected(where, f"invalid JSON ({reason}); expected one object per line")
                continue
            if not isinstance(obj, dict):
                if first:
                    raise FormatError(
                        origin,
                        f"not JSON Lines: line {lineno} is a JSON {_kind(obj)}, "
                        "expected one JSON object per line",
                    )
                yield Rejected(where, f"expected a JSON object, got a JSON {_kind(obj)}")
                continue
            first = False
            try:
                yield _paper(obj, from_csv=False)
            except _Bad as bad:
                yield Rejected(where, str(bad))
    # Only reading `lines` raises these (json.loads takes a str): the file cannot be read on.
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise _gzip_error(origin, exc) from exc
    except UnicodeDecodeError as exc:
        raise _decode_error(origin, lineno + 1, exc) from exc


# --- CSV ------------------------------------------------------------------------------------


#: The largest field a row may hold: the csv module's default limit. The module itself may read
#: fields up to a whole line (`MAX_LINE_CHARS` bounds those), so that a row with a larger field
#: is read to its end, quoted line breaks and all, and rejected as one row; the module's own
#: error stopped mid-row, and reading resumed inside its quotes.
MAX_FIELD_CHARS = 131_072
if csv.field_size_limit() < MAX_LINE_CHARS:
    csv.field_size_limit(MAX_LINE_CHARS)


def parse_csv(stream: TextIO, *, origin: str) -> Iterator[ParsedItem]:
    """Parse comma-separated values with a header row naming the fields (any case, any order).

    A header without a ``title`` column means the file is not a CSV of papers (`FormatError`,
    raised on first iteration). Rows that are empty are skipped; a row with the wrong number of
    fields or a bad value is rejected with the line it starts on.
    """
    lines = BoundedLines(stream, origin)
    reader = csv.reader(lines)
    try:
        header = _next_row(reader, origin)
    except csv.Error as exc:
        raise FormatError(origin, f"not a CSV of papers: unreadable header row: {exc}") from None
    if header is None:
        raise FormatError(origin, "not a CSV of papers: the file is empty, expected a header row")
    if lines.overlong:
        length = max(lines.overlong.values())
        raise FormatError(origin, f"not a CSV of papers: its header row is {length:,} "
                                  f"characters long; expected at most {MAX_LINE_CHARS:,}")
    names = [name.strip().lower() for name in header]
    if "title" not in names:
        found = ", ".join(repr(n) for n in names[:8])
        raise FormatError(
            origin,
            f"not a CSV of papers: the header row (line {reader.line_num}) has no 'title' "
            f"column; found {found}",
        )
    start = reader.line_num + 1
    while True:
        try:
            row = _next_row(reader, origin)
        except csv.Error as exc:
            yield Rejected(f"{origin}:{start}", f"unreadable CSV row: {exc}")
            start = reader.line_num + 1
            continue
        if row is None:
            return
        where = f"{origin}:{start}"
        overlong = [n for n in range(start, reader.line_num + 1) if n in lines.overlong]
        start = reader.line_num + 1
        if overlong:
            # Its text was dropped unread: reject the row it was in, even an empty-looking one.
            yield Rejected(f"{origin}:{overlong[0]}", too_long_message(lines.overlong[overlong[0]]))
            continue
        if not any(cell.strip() for cell in row):
            continue
        if any(len(cell) > MAX_FIELD_CHARS for cell in row):
            yield Rejected(where, f"unreadable CSV row: field larger than field limit "
                                  f"({MAX_FIELD_CHARS})")
            continue
        if len(row) != len(names):
            yield Rejected(
                where, f"row has {len(row)} fields, expected {len(names)} as in the header"
            )
            continue
        try:
            yield _paper(dict(zip(names, row, strict=True)), from_csv=True)
        except _Bad as bad:
            yield Rejected(where, str(bad))


# --- reading the stream: decoding and gzip errors stop the source ---------------------------


def _next_row(reader: Any, origin: str) -> list[str] | None:
    try:
        row: list[str] = next(reader)
    except StopIteration:
        return None
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise _gzip_error(origin, exc) from exc
    except UnicodeDecodeError as exc:
        raise _decode_error(origin, reader.line_num + 1, exc) from exc
    return row


def _gzip_error(origin: str, exc: Exception) -> FormatError:
    return FormatError(origin, f"truncated or corrupt gzip: {exc}")


def _decode_error(origin: str, lineno: int, exc: UnicodeDecodeError) -> FormatError:
    # The decoder reads ahead in chunks, so the line is where reading stopped, not exact.
    return FormatError(origin, f"not UTF-8 text near line {lineno}: {exc.reason}")


# --- one record -----------------------------------------------------------------------------


class _Bad(Exception):
    """One record is malformed; the message says what and what was expected."""


_CATEGORY_SEP = re.compile(r"[\s;,]+")


def _paper(rec: dict[str, Any], *, from_csv: bool) -> RawPaper:
    title = rec.get("title")
    if not isinstance(title, str) or not title.strip():
        got = "missing" if title is None else f"got {_show(title)}"
        raise _Bad(f"title is required: expected a non-empty string, {got}")
    abstract = rec.get("abstract")
    if abstract is None:
        abstract = ""
    elif not isinstance(abstract, str):
        raise _Bad(f"abstract must be a string, got {_show(abstract)}")
    url = rec.get("url") or None
    if url is not None and not isinstance(url, str):
        raise _Bad(f"url must be a string, got {_show(url)}")
    paper = RawPaper(
        title=title,
        abstract=abstract,
        id=_id(rec.get("id")),
        authors=_authors(rec.get("authors"), from_csv),
        categories=_categories(rec.get("categories"), from_csv),
        date=_date(rec.get("date")),
        url=url,
    )
    for field in ("id", "title", "abstract", "url", "authors", "categories"):
        value = getattr(paper, field)
        if any(has_lone_surrogate(v) for v in (value if isinstance(value, tuple) else [value])
               if v):
            raise _Bad(f"{field} is not valid Unicode: it holds a lone surrogate such as "
                       "\\ud800; expected text (a pair such as \\ud83d\\ude00 is fine)")
    if too_large := oversized(paper):
        raise _Bad(too_large)
    return paper


def _id(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value if value and not value.isspace() else None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        raise _Bad(
            f"id must be a string, got the number {value!r} "
            "(as a number an arXiv id such as 2503.11730 loses its trailing zero)"
        )
    raise _Bad(f"id must be a string, got {_show(value)}")


def _authors(value: Any, from_csv: bool) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if from_csv and isinstance(value, str):
        if value.lstrip().startswith("["):
            value = _json_list(value, "authors")
        else:
            parts = value.split(";") if ";" in value else value.split(" and ")
            return tuple(p.strip() for p in parts if p.strip())
    return _strings(value, "authors", "a list of names")


def _categories(value: Any, from_csv: bool) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        if from_csv and value.lstrip().startswith("["):
            value = _json_list(value, "categories")
        else:
            return tuple(c for c in _CATEGORY_SEP.split(value) if c)
    return _strings(value, "categories", "a list of strings such as ['cs.CV', 'cs.AI']")


def _json_list(text: str, field: str) -> Any:
    try:
        return loads_json(text)
    except ValueError:
        raise _Bad(f"{field} looks like a JSON list but is not valid JSON: {text[:60]!r}") from None


def _strings(value: Any, field: str, expected: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _Bad(f"{field} must be {expected}, got {_show(value)}")
    try:
        stripped = [item.strip() for item in value]  # of JSON values, only strings have strip
    except AttributeError:
        i, item = next((i, v) for i, v in enumerate(value) if not isinstance(v, str))
        raise _Bad(f"{field}[{i}] must be a string, got {_show(item)}") from None
    return tuple(s for s in stripped if s)


def _date(value: Any) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:
                return dt.date.fromisoformat(text)
            return dt.datetime.fromisoformat(text).date()
        except ValueError:
            pass
    raise _Bad(f"bad date {value!r}: expected YYYY-MM-DD or an ISO timestamp")


def _kind(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


def _show(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


# --- which format is a file in --------------------------------------------------------------

_OPENSEARCH = re.compile(rb"xmlns:opensearch|a9\.com/-/spec/opensearch", re.IGNORECASE)
_EXTENSIONS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".txt": "hf-page",
    ".json": "hf-json",
    ".xml": "arxiv-feed",
    ".rss": "arxiv-feed",
    ".atom": "arxiv-feed",
}


def sniff_format(path_or_name: str, head: bytes) -> str:
    """Guess the format of a file from its name and first bytes (gzipped or not).

    Returns one of `FORMATS`. Decisive content wins over the extension: XML is an arXiv feed
    (``arxiv-api`` when it declares the OpenSearch namespace, as API responses do), a JSON array
    of objects with a ``paper`` key is ``hf-json``, a first line starting with ``{`` is
    ``jsonl``, a page starting with the line ``new`` is ``hf-page``. Otherwise the extension
    (after ``.gz``) decides, then a first line naming a ``title`` column means ``csv``.
    Raises `FormatError` when nothing fits.
    """
    name = path_or_name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    if head.startswith(GZIP_MAGIC):
        # The first bytes of a gzip stream decompress to a prefix of the file; that is enough.
        try:
            head = zlib.decompressobj(wbits=31).decompress(head)
        except zlib.error:
            head = b""
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    ext = "." + name.rsplit(".", 1)[-1] if "." in name.rsplit("/", 1)[-1] else ""
    by_ext = _EXTENSIONS.get(ext)

    if text.startswith(b"<"):
        return "arxiv-api" if _OPENSEARCH.search(head) else "arxiv-feed"
    if text.startswith(b"[") and re.match(rb'\[\s*\{\s*"paper"', text):
        return "hf-json"
    if text.startswith(b"{"):
        return "jsonl"
    first_line = text.split(b"\n", 1)[0].strip().lower()
    if first_line == b"new":
        return "hf-page"
    if by_ext:
        return by_ext
    if b"title" in (cell.strip(b' "') for cell in first_line.split(b",")):
        return "csv"
    if text.startswith(b"["):
        return "hf-json"
    raise FormatError(
        path_or_name,
        f"cannot tell the format from the name or the first bytes; "
        f"expected one of {', '.join(FORMATS)} (give it explicitly)",
    )
