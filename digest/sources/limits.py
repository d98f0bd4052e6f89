"""Limits that keep a hostile file from exhausting memory or time.

A paper is a few kilobytes of text, so generous bounds cost real inputs nothing and turn a
1 GB line, a gzip bomb or a JSON nesting of 100,000 brackets into a clear error:

- a line longer than `MAX_LINE_CHARS` is rejected on its own (the rest of the file is read),
  and read past in bounded pieces; one longer than `MAX_SKIP_CHARS` stops the file, since no
  text file of papers has such a line (a sparse or binary file does);
- a gzip stream that expands more than `MAX_GZIP_RATIO` times once past `GZIP_RATIO_FLOOR`
  bytes is a compression bomb and stops the file;
- a format read whole (feeds, API responses, HF pages) may be at most `MAX_BODY_BYTES`,
  decompressed;
- JSON nested too deeply for the parser is a bad record, not a crash;
- a record whose fields are far larger than any paper's (`oversized`) is rejected on its own,
  so a batch of records held in memory stays small, and an id too long for the store's key
  column cannot fail the whole source at insert (PostgreSQL enforces the length).
"""

from __future__ import annotations

import gzip
import io
import json
from typing import IO, Any, TextIO
from xml.parsers import expat

from ..errors import FormatError
from ..types import RawPaper

#: Longest line of JSON Lines or CSV read as a record (a real record is a few KB).
MAX_LINE_CHARS = 1 << 20
#: Longer than this, a "line" means the file is not text of papers at all.
MAX_SKIP_CHARS = 64 << 20
#: Real JSON Lines of papers compress about 3:1; zeros compress 1000:1.
MAX_GZIP_RATIO = 100
GZIP_RATIO_FLOOR = 1 << 20
#: Compressed bytes handed to gzip at a time, so the ratio is measured on what it consumed
#: rather than on its read-ahead (a 4 MB bomb is caught after 1 MiB, not 13).
_GZIP_READ = 4096
#: Characters read between two looks at the ratio (a look costs more than a short line).
_CHECK_EVERY = 1 << 16
#: Largest feed, API response or saved page read whole. Real ones are a few MB (an API page of
#: 2,000 papers about 6); feedparser holds about 30 times the XML in memory.
MAX_BODY_BYTES = 16 << 20
#: Deepest XML nesting of a feed (real ones: under 10); feedparser slows down superlinearly.
MAX_XML_DEPTH = 100


#: Longest text of each field of a paper. The shared corpus of 74,728 papers peaks at a 226
#: character title, a 3,488 character abstract and 3,303 authors; the key column holds 200.
MAX_CHARS = {"id": 200, "title": 2_000, "abstract": 100_000, "url": 2_000}
MAX_AUTHORS = 10_000
MAX_CATEGORIES = 100
MAX_NAME_CHARS = 1_000


def _mib(n: int) -> str:
    return f"{n / (1 << 20):g} MiB" if n >= 1 << 20 else f"{n:,} bytes"


class Overlong(str):
    """Stands in for a line longer than `MAX_LINE_CHARS`: its text is only a line break, so a
    CSV reader sees an empty row, and `length` says how long the line was (at least)."""

    length: int

    def __new__(cls, length: int) -> Overlong:
        line = super().__new__(cls, "\n")
        line.length = length
        return line


def too_long_message(length: int) -> str:
    return (f"line is {length:,} characters long; expected at most {MAX_LINE_CHARS:,} "
            "(a record is a few thousand); skipped")


class BoundedLines:
    """The lines of a text stream, none held longer than `max_line` characters.

    A longer line is read past in pieces and given as an `Overlong`; its number is recorded in
    `overlong`. Raises `FormatError` for a line longer than `max_skip` and for a gzip bomb.
    """

    def __init__(self, stream: TextIO, origin: str, *, max_line: int = MAX_LINE_CHARS,
                 max_skip: int = MAX_SKIP_CHARS) -> None:
        self.stream = stream
        self.origin = origin
        self.max_line = max_line
        self.max_skip = max_skip
        self.lineno = 0
        #: Line number -> length of each line read past.
        self.overlong: dict[int, int] = {}
        self._gzip = _gzip_of(stream)
        self._since_check = 0

    def __iter__(self) -> BoundedLines:
        return self

    def __next__(self) -> str:
        line = self.stream.readline(self.max_line + 1)
        if not line:
            raise StopIteration
        self.lineno += 1
        self._since_check += len(line)
        if self._since_check > _CHECK_EVERY:
            self._check_ratio()
        if len(line) <= self.max_line or line.endswith(("\n", "\r")):
            return line
        length = len(line)
        while line and not line.endswith(("\n", "\r")):
            line = self.stream.readline(self.max_line)
            length += len(line)
            self._check_ratio()
            if length > self.max_skip:
                raise FormatError(
                    self.origin,
                    f"line {self.lineno} is longer than {_mib(self.max_skip)}: not a text file "
                    "of papers (binary or sparse?)",
                )
        self.overlong[self.lineno] = length
        return Overlong(length)

    def _check_ratio(self) -> None:
        self._since_check = 0
        if self._gzip is None:
            return
        out = self._gzip.tell()
        if out <= GZIP_RATIO_FLOOR:
            return
        into = max(1, _compressed_position(self._gzip))
        if out > MAX_GZIP_RATIO * into:
            raise FormatError(
                self.origin,
                f"gzip expands more than {MAX_GZIP_RATIO} times ({_mib(out)} from "
                f"{into:,} bytes so far): a compression bomb, not papers",
            )


class _SmallReads(io.RawIOBase):
    """A binary file read at most `_GZIP_READ` bytes at a time; closes the file with it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)[:_GZIP_READ]
        data = self._raw.read(len(view))
        view[: len(data)] = data
        return len(data)

    def tell(self) -> int:
        return self._raw.tell()

    def close(self) -> None:
        self._raw.close()
        super().close()


class _GuardedGzip(gzip.GzipFile):
    """A gzip file that also closes the file it reads from (GzipFile leaves a fileobj open)."""

    def close(self) -> None:
        try:
            super().close()
        finally:
            if isinstance(self._source, _SmallReads):
                self._source.close()

    _source: _SmallReads | None = None


def open_gzip_text(path: str) -> TextIO:
    """`path` (gzip) as UTF-8 text, read so that `BoundedLines` can measure its ratio."""
    source = _SmallReads(open(path, "rb"))  # noqa: SIM115 (closed with the gzip file)
    gz = _GuardedGzip(fileobj=source, mode="rb")
    gz._source = source
    return io.TextIOWrapper(gz, encoding="utf-8-sig", newline="")


def _gzip_of(stream: TextIO) -> gzip.GzipFile | None:
    buffer = getattr(stream, "buffer", None)
    return buffer if isinstance(buffer, gzip.GzipFile) else None


def _compressed_position(gz: gzip.GzipFile) -> int:
    raw: Any = gz.fileobj
    try:
        return int(raw.tell())
    except (OSError, ValueError, AttributeError):
        return 0


def read_body(path: str, *, limit: int = MAX_BODY_BYTES) -> bytes:
    """The bytes of `path`, gunzipped if gzip, refusing more than `limit` bytes either way."""
    with open(path, "rb") as raw:
        compressed = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        if compressed:
            with gzip.GzipFile(fileobj=raw, mode="rb") as unpacked:
                body = unpacked.read(limit + 1)
        else:
            body = raw.read(limit + 1)
    if len(body) > limit:
        what = "decompressed, it is" if compressed else "it is"
        raise FormatError(path, f"{what} larger than {_mib(limit)}, more than any feed, API "
                                "response or saved page holds; split it or check the file")
    return body


def loads_json(text: str | bytes) -> Any:
    """`json.loads`, with nesting too deep for the parser as a ValueError, not a crash."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def oversized(paper: RawPaper) -> str | None:
    """Why `paper` is too large to be a paper, or None when it is not."""
    for name, limit in MAX_CHARS.items():
        value = getattr(paper, name)
        if value is not None and len(value) > limit:
            return f"{name} is {len(value):,} characters long; expected at most {limit:,}"
    for name, items, limit in (("authors", paper.authors, MAX_AUTHORS),
                               ("categories", paper.categories, MAX_CATEGORIES)):
        if len(items) > limit:
            return f"{len(items):,} {name}; expected at most {limit:,}"
        longest = max(items, key=len, default="")
        if len(longest) > MAX_NAME_CHARS:
            return (f"{name} holds one of {len(longest):,} characters; expected at most "
                    f"{MAX_NAME_CHARS:,} each")
    return None


class _TooDeep(Exception):
    pass


def check_xml_depth(body: bytes, origin: str, *, limit: int = MAX_XML_DEPTH) -> None:
    """Raise `FormatError` when the XML in `body` nests elements deeper than `limit`.

    XML that is not well-formed is checked up to its first error (feedparser then reads it
    loosely). Entities are not expanded, so a "billion laughs" costs nothing here.
    """
    depth = 0

    def start(name: str, attrs: Any) -> None:
        nonlocal depth
        depth += 1
        if depth > limit:
            raise _TooDeep

    def end(name: str) -> None:
        nonlocal depth
        depth -= 1

    parser = expat.ParserCreate()
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.DefaultHandler = lambda data: None  # a default handler turns entity expansion off
    try:
        parser.Parse(body, True)
    except _TooDeep:
        raise FormatError(origin, f"XML nested more than {limit} elements deep: not a feed") \
            from None
    except expat.ExpatError:
        pass
