"""From what a person types (a path, a URL, ``arxiv:cs.CV``, ``hf:2026-11-20``) to a source.

Each source knows how to open itself inside an ingest: the network ones through the shared
`HttpClient` (conditional GET where the server supports it), the files streamed with their
progress in bytes.
"""

from __future__ import annotations

import datetime as dt
import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import IO, Any
from urllib.parse import urlsplit

from ..errors import FormatError, SourceError
from ..http import HttpClient
from ..ingest import IngestContext, Opened, Source
from ..types import ParsedItem
from . import arxiv, files, hf
from .limits import BoundedLines, read_body

#: Formats `--format` accepts, and what each reads.
FORMATS: dict[str, str] = {
    "jsonl": "JSON Lines, one paper per line (gzip read transparently)",
    "csv": "CSV with a header row (gzip read transparently)",
    "hf-page": "a Hugging Face papers page saved as text",
    "hf-json": "a Hugging Face daily papers API response",
    "arxiv-feed": "an arXiv RSS or Atom announcement feed",
    "arxiv-api": "an arXiv API (Atom) response",
}

#: The kind recorded with each paper, per format.
_KIND = {
    "jsonl": "file",
    "csv": "file",
    "hf-page": "hf-page",
    "hf-json": "hf-daily",
    "arxiv-feed": "arxiv-rss",
    "arxiv-api": "arxiv-api",
}


def _need_http(ctx: IngestContext, name: str) -> HttpClient:
    if ctx.http is None:
        raise SourceError(name, "this source needs the network, and no HTTP client was given")
    return ctx.http


def parse_body(fmt: str, body: bytes, *, origin: str, today: dt.date) -> Iterator[ParsedItem]:
    """Parse a whole body (a file read at once, or a response) in the given format."""
    if fmt == "arxiv-feed":
        return arxiv.parse_listing(body, origin=origin)
    if fmt == "arxiv-api":
        return iter(arxiv.parse_api(body, origin=origin).items)
    if fmt == "hf-json":
        return hf.parse_daily_json(body, origin=origin)
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FormatError(origin, f"not UTF-8 text ({exc})") from None
    if fmt == "hf-page":
        return hf.parse_hf_page(text, origin=origin, today=today)
    # Lines end as in files (\n, \r\n, \r): str.splitlines would also split a JSON string
    # at a U+2028 or a form feed.
    if fmt == "jsonl":
        lines = BoundedLines(io.StringIO(text, newline=""), origin)
        return files.parse_jsonl(lines, origin=origin)
    if fmt == "csv":
        return files.parse_csv(io.StringIO(text, newline=""), origin=origin)
    raise FormatError(origin, f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


@dataclass
class FileSource:
    """A file on disk, of a format given or sniffed from its name and first bytes."""

    path: str
    format: str | None = None

    @property
    def name(self) -> str:
        return self.path

    @property
    def kind(self) -> str:
        return _KIND.get(self._format(), "file")

    def _format(self) -> str:
        if self.format:
            return self.format
        try:
            with open(self.path, "rb") as handle:
                head = handle.read(4096)
        except OSError:
            return "jsonl"  # open() below reports the real problem
        self.format = files.sniff_format(self.path, head)
        return self.format

    def open(self, ctx: IngestContext) -> Opened:
        try:
            size = os.path.getsize(self.path)
        except OSError as exc:
            raise SourceError(self.path, f"cannot read: {exc.strerror or exc}") from None
        if os.path.isdir(self.path):
            raise SourceError(self.path, "is a folder; name the files in it")
        fmt = self._format()
        if fmt in ("jsonl", "csv"):
            stream = files.open_text(self.path)
            position = _position_of(stream)
            items = (
                files.parse_jsonl(BoundedLines(stream, self.path), origin=self.path)
                if fmt == "jsonl"
                else files.parse_csv(stream, origin=self.path)
            )
            return Opened(_closing(items, stream), progress=lambda: (position(), size))
        body = read_body(self.path)
        return Opened(parse_body(fmt, body, origin=self.path, today=ctx.today))


def _closing(items: Iterator[ParsedItem], stream: IO[Any]) -> Iterator[ParsedItem]:
    with stream:
        yield from items


def _position_of(stream: IO[Any]) -> Callable[[], int]:
    """How far into the file on disk a (possibly gzipped) text stream has read."""
    buffer = getattr(stream, "buffer", stream)
    raw = getattr(buffer, "fileobj", None) or buffer

    def position() -> int:
        try:
            return int(raw.tell())
        except (OSError, ValueError):
            return 0

    return position


@dataclass
class UrlSource:
    """Any URL: fetched conditionally, the format sniffed from the response."""

    url: str
    format: str | None = None
    kind: str = "url"

    @property
    def name(self) -> str:
        return self.url

    def open(self, ctx: IngestContext) -> Opened:
        http = _need_http(ctx, self.url)
        validators = ctx.store.validators(self.url) if ctx.store else None
        fetched = http.get(self.url, validators=validators, source=self.url)
        if fetched.not_modified:
            return Opened((), not_modified=True)
        fmt = self.format or files.sniff_format(urlsplit(self.url).path, fetched.content[:4096])
        self.kind = _KIND.get(fmt, "url")
        items = parse_body(fmt, fetched.content, origin=self.url, today=ctx.today)
        return Opened(items, cache=(self.url, fetched.validators))


@dataclass
class ArxivListingSource:
    """``arxiv:cs.CV+cs.LG``: today's arXiv announcement of those categories."""

    name: str
    spec: arxiv.ListingSpec
    kind: str = "arxiv-rss"

    def open(self, ctx: IngestContext) -> Opened:
        http = _need_http(ctx, self.name)
        url = self.spec.url
        validators = ctx.store.validators(url) if ctx.store else None
        fetched, items = arxiv.fetch_listing(
            http, self.spec.categories, validators=validators, source=self.name
        )
        if fetched.not_modified:
            return Opened((), not_modified=True)
        return Opened(items, cache=(url, fetched.validators))


@dataclass
class ArxivApiSource:
    """``arxiv-api:cs.CV:2026-11-01..2026-11-20`` or ``arxiv-api:id:ID,ID``: a back-fill."""

    name: str
    spec: arxiv.ApiSpec
    kind: str = "arxiv-api"

    def open(self, ctx: IngestContext) -> Opened:
        http = _need_http(ctx, self.name)
        return Opened(arxiv.fetch_api(http, self.spec.query, source=self.name))


@dataclass
class HfDailySource:
    """``hf:2026-11-20``: the papers Hugging Face featured that day."""

    name: str
    day: dt.date
    kind: str = "hf-daily"

    def open(self, ctx: IngestContext) -> Opened:
        http = _need_http(ctx, self.name)
        return Opened(hf.fetch_daily(http, self.day, source=self.name))


def resolve(spec: str, *, today: dt.date, fmt: str | None = None) -> Source:
    """The source a command-line argument names. Raises ValueError for a malformed name."""
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    lowered = spec.lower()
    if lowered.startswith(("http://", "https://")):
        try:
            host = urlsplit(spec).hostname
        except ValueError as exc:  # such as an unclosed [ of an IPv6 address
            raise ValueError(f"{spec!r} is not a valid URL: {exc}") from None
        if not host:
            raise ValueError(f"{spec!r} is not a valid URL: it names no host")
        return UrlSource(spec, fmt)
    if lowered.startswith(("arxiv:", "arxiv-api:")) and not os.path.exists(spec):
        named = arxiv.parse_named(spec)
        if isinstance(named, arxiv.ListingSpec):
            return ArxivListingSource(spec, named)
        return ArxivApiSource(spec, named)
    if lowered.startswith("hf:") and not os.path.exists(spec):
        return HfDailySource(spec, hf.parse_named(spec, today=today))
    if spec == SAMPLE and not os.path.exists(spec):  # for the CLI and [schedule] sources alike
        return FileSource(sample_path(), "jsonl")
    return FileSource(spec, fmt)


#: The bundled sample of real papers, so the demo runs without ../shared.
SAMPLE = "sample"


def sample_path() -> str:
    return str(resources.files("digest") / "data" / "sample.jsonl.gz")
