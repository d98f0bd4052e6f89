"""Ingestion: merge what sources parsed into the store, one transaction per source.

Identity rules (see docs/design.md):

- An arXiv paper is its id without version. A newer version updates the stored paper in place;
  an older one changes nothing. The first-seen time and the announced day never change.
- Another source's id is kept exactly as given and is an identity of its own.
- A record without id is known by its normalized title: the same title twice is one paper, and
  a later record with an arXiv id and that title takes the title-only paper over (same row, so
  anything that referred to it still does).
- Sources have ranks of authority: arXiv (RSS, API) over files and URLs over Hugging Face
  daily papers over saved pages. A record with an id replaces the stored fields when its source
  ranks at least as high as the one that wrote them, or when it brings a newer arXiv version;
  otherwise, and always for a record without id, it only fills fields the stored paper lacks.
  So two sources that disagree (HF splits authors differently) never overwrite each other on
  every run.

A source either lands whole or not at all: a truncated file or a failed request rolls back that
source, and the other sources go on. Bad items are rejected one by one with their place.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import Any, Protocol

from .errors import SourceError, StoreError
from .http import HttpClient, Validators
from .store import Store, Transaction
from .text import clean, collapse, normalize_title, parse_arxiv_id, title_key
from .types import ParsedItem, RawPaper, Rejected, SourceResult

BATCH = 1000

#: Authority of each kind of source (see the module docstring); unknown kinds rank as files.
AUTHORITY = {"arxiv-api": 3, "arxiv-rss": 3, "file": 2, "url": 2, "hf-daily": 1, "hf-page": 0}


@dataclass
class IngestContext:
    """What sources and the merge need from the world: the clock, the network, the store."""

    #: The moment of ingestion (UTC), recorded as first-seen / updated time.
    now: dt.datetime
    #: The day treated as today: a year-less day resolves to the latest such day not after it,
    #: and a record without date is announced on it.
    today: dt.date
    http: HttpClient | None = None
    store: Store | None = None


@dataclass
class Opened:
    """A source ready to read: its items, and what to remember once they are stored."""

    items: Iterable[ParsedItem]
    #: (url, validators) to save for conditional GET after the source is stored.
    cache: tuple[str, Validators] | None = None
    not_modified: bool = False
    #: Progress of the read as (done, total) in bytes, when it is known.
    progress: Callable[[], tuple[int, int]] | None = None


class Source(Protocol):
    """Anything that can be ingested: a file, a URL, a named source."""

    @property
    def name(self) -> str:
        """Shown in the summary and in error messages."""

    @property
    def kind(self) -> str:
        """Recorded with each paper (``arxiv-rss``, ``arxiv-api``, ``hf-daily``, ``file``...)."""

    def open(self, ctx: IngestContext) -> Opened: ...


ProgressHook = Callable[[Source, int, int | None, int | None], None]


def ingest(
    store: Store,
    sources: Iterable[Source],
    ctx: IngestContext,
    *,
    progress: ProgressHook | None = None,
) -> list[SourceResult]:
    """Ingest each source in its own transaction; one failing source never stops the others."""
    return [ingest_source(store, source, ctx, progress=progress) for source in sources]


def ingest_source(
    store: Store, source: Source, ctx: IngestContext, *, progress: ProgressHook | None = None
) -> SourceResult:
    result = SourceResult(source.name)
    try:
        with store.transaction() as tx:
            opened = source.open(ctx)
            if opened.not_modified:
                result.not_modified = True
                return result
            merger = _Merger(tx, source.kind, ctx, result)
            items = iter(opened.items)
            seen = 0
            while batch := list(islice(items, BATCH)):
                merger.merge(batch)
                seen += len(batch)
                if progress:
                    done, total = opened.progress() if opened.progress else (None, None)
                    progress(source, seen, done, total)
            if opened.cache:
                url, validators = opened.cache
                tx.save_validators(url, validators, ctx.now)
    except SourceError as exc:
        _rolled_back(result, exc.message)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        _rolled_back(result, f"truncated or corrupt compressed data: {exc}")
    except UnicodeDecodeError as exc:
        _rolled_back(result, f"not UTF-8 text: {exc}")
    except OSError as exc:
        _rolled_back(result, f"cannot read: {exc.strerror or exc}")
    except StoreError as exc:
        _rolled_back(result, str(exc))
    return result


def _rolled_back(result: SourceResult, message: str) -> None:
    result.error = f"{message} (nothing from this source was stored)"
    result.new = result.updated = result.unchanged = result.skipped = 0


def _json(values: Iterable[str]) -> str:
    return json.dumps(list(values), ensure_ascii=False)


def _hash(title: str, abstract: str, authors: Iterable[str], categories: Iterable[str],
          url: str | None, version: int | None) -> str:
    """Fingerprint of the raw fields: equal fingerprints mean nothing to merge."""
    blob = "\x1f".join((title, abstract, "\x1e".join(authors), "\x1e".join(categories),
                         url or "", str(version or "")))
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()


@dataclass
class _Incoming:
    raw: RawPaper
    key: str | None
    arxiv_id: str | None
    version: int | None
    hash: str
    _norm: str | None = field(default=None)
    _title: str | None = field(default=None)

    @property
    def title(self) -> str:
        """The clean title (computed once, only when needed)."""
        if self._title is None:
            self._title = clean(self.raw.title)
        return self._title

    @property
    def norm(self) -> str:
        if self._norm is None:
            self._norm = normalize_title(self.title, cleaned=True)
        return self._norm

    @property
    def authors(self) -> str:
        return _json(self.raw.authors)

    @property
    def categories(self) -> str:
        return _json(self.raw.categories)


def _without_nul(raw: RawPaper) -> RawPaper:
    """`raw` with each NUL character replaced by U+FFFD. PostgreSQL's text cannot hold a NUL
    (one would fail the whole source there); the replacement character keeps the paper, and
    keeps two ids that differ only there apart, on every backend alike."""
    texts = (raw.title, raw.abstract, raw.id or "", raw.url or "", *raw.authors, *raw.categories)
    if not any("\x00" in text for text in texts):
        return raw

    def fix(text: str) -> str:
        return text.replace("\x00", "\ufffd")

    return replace(raw, title=fix(raw.title), abstract=fix(raw.abstract),
                   id=None if raw.id is None else fix(raw.id),
                   url=None if raw.url is None else fix(raw.url),
                   authors=tuple(map(fix, raw.authors)),
                   categories=tuple(map(fix, raw.categories)))


def _prepare(raw: RawPaper) -> _Incoming:
    raw = _without_nul(raw)
    key = arxiv_id = None
    version = None
    if raw.id is not None and raw.id.strip():
        parsed = parse_arxiv_id(raw.id)
        if parsed:
            key = arxiv_id = parsed[0]
            version = parsed[1]
        else:
            key = raw.id.strip()
    digest = _hash(raw.title, raw.abstract, raw.authors, raw.categories, raw.url, version)
    return _Incoming(raw, key, arxiv_id, version, digest)


_RAW_FIELDS = ("title_raw", "abstract_raw", "authors", "categories", "url")
_TEXT_FIELDS = ("title_raw", "abstract_raw")


class _Merger:
    """Merges batches of parsed items into the store inside one transaction."""

    def __init__(self, tx: Transaction, kind: str, ctx: IngestContext,
                 result: SourceResult) -> None:
        self.tx = tx
        self.kind = kind
        self.rank = AUTHORITY.get(kind, 2)
        self.ctx = ctx
        self.result = result

    def merge(self, batch: list[ParsedItem]) -> None:
        incoming: list[_Incoming] = []
        for item in batch:
            if isinstance(item, Rejected):
                self.result.rejected.append(item)
            else:
                incoming.append(_prepare(item))

        by_key: dict[str, dict[str, Any]] = {}
        by_norm: dict[str, list[dict[str, Any]]] = {}

        def remember(rows: Iterable[dict[str, Any]]) -> None:
            for state in rows:
                if state["key"] in by_key:
                    continue
                by_key[state["key"]] = state
                by_norm.setdefault(state["norm_title"], []).append(state)

        keyed = [i.key for i in incoming if i.key]
        remember(self.tx.lookup(keyed, [i.norm for i in incoming if not i.key]))
        # An arXiv record not found by id may take over a paper known only by its title.
        orphans = [i.norm for i in incoming if i.arxiv_id and i.key not in by_key]
        if orphans:
            remember(self.tx.lookup([], orphans))

        inserts: list[dict[str, Any]] = []
        updates: dict[int, dict[str, Any]] = {}
        sources: list[dict[str, Any]] = []
        for inc in incoming:
            row = self._match(inc, by_key, by_norm)
            if row is None:
                if inc.raw.update_only:
                    self.result.skipped += 1
                    continue
                row = self._new_row(inc)
                inserts.append(row)
                by_key[row["key"]] = row
                by_norm.setdefault(row["norm_title"], []).append(row)
                self.result.new += 1
            elif self._apply(inc, row, by_key, by_norm):
                if row["pid"] is not None:
                    updates[row["pid"]] = row
                self.result.updated += 1
            else:
                self.result.unchanged += 1
            sources.append(row)

        pids = self.tx.insert_papers([{k: v for k, v in r.items() if k != "pid"}
                                      for r in inserts])
        for row, pid in zip(inserts, pids, strict=True):
            row["pid"] = pid
        self.tx.update_papers(list(updates.values()))
        self.tx.add_sources((row["pid"], self.kind) for row in sources)

    def _match(self, inc: _Incoming, by_key: dict[str, dict[str, Any]],
               by_norm: dict[str, list[dict[str, Any]]]) -> dict[str, Any] | None:
        if inc.key:
            row = by_key.get(inc.key)
            if row is None and inc.arxiv_id:
                for candidate in by_norm.get(inc.norm, ()):
                    if candidate["key"].startswith("title:"):
                        return candidate
            return row
        candidates = by_norm.get(inc.norm)
        return candidates[0] if candidates else None

    def _new_row(self, inc: _Incoming) -> dict[str, Any]:
        raw = inc.raw
        announced = raw.date or self.ctx.today
        return {
            "pid": None,
            "key": inc.key or title_key(inc.norm),
            "arxiv_id": inc.arxiv_id,
            "version": inc.version,
            "title": inc.title,
            "abstract": clean(raw.abstract),
            "title_raw": raw.title,
            "abstract_raw": raw.abstract,
            "norm_title": inc.norm,
            "authors": inc.authors,
            "categories": inc.categories,
            "announced": announced.isoformat(),
            "first_seen": self.ctx.now,
            "updated_at": self.ctx.now,
            "url": raw.url,
            "content_hash": inc.hash,
            "authority": self.rank if inc.key else 0,
        }

    def _apply(self, inc: _Incoming, row: dict[str, Any], by_key: dict[str, dict[str, Any]],
               by_norm: dict[str, list[dict[str, Any]]]) -> bool:
        """Merge `inc` into `row` in place; True when anything stored changed."""
        if inc.key and row["key"] == inc.key and row["content_hash"] == inc.hash:
            return False
        if inc.version and row["version"] and inc.version < row["version"]:
            return False  # an older version than the one we hold
        raw = inc.raw
        offered = {
            "title_raw": raw.title,
            "abstract_raw": raw.abstract,
            "authors": inc.authors,
            "categories": inc.categories,
            "url": raw.url,
        }
        empty = {"", None, "[]"}
        newer = bool(inc.version and (row["version"] or 0) < inc.version)
        authoritative = inc.key is not None and (self.rank >= row["authority"] or newer)
        changed: dict[str, Any] = {}
        for name in _RAW_FIELDS:
            value = offered[name]
            if value in empty or value == row[name]:
                continue
            if (name in _TEXT_FIELDS and value and row[name]
                    and collapse(value) == collapse(row[name])):
                continue  # the same text with other line breaks: nothing to store
            if authoritative or row[name] in empty:
                changed[name] = value
        if inc.arxiv_id and row["key"] != inc.key:
            # A title-only paper gains its arXiv identity.
            del by_key[row["key"]]
            changed["key"] = inc.key
            changed["arxiv_id"] = inc.arxiv_id
            by_key[inc.key] = row  # type: ignore[index]
        if inc.version and inc.version != row["version"]:
            changed["version"] = inc.version
        if row["announced"] is None and raw.date:
            changed["announced"] = raw.date.isoformat()
        if not changed:
            return False
        if authoritative:
            changed["authority"] = max(row["authority"], self.rank)
        row.update(changed)
        if "title_raw" in changed:
            row["title"] = clean(row["title_raw"])
            old_norm = row["norm_title"]
            row["norm_title"] = normalize_title(row["title"], cleaned=True)
            if row["norm_title"] != old_norm:
                by_norm[old_norm].remove(row)
                by_norm.setdefault(row["norm_title"], []).append(row)
        if "abstract_raw" in changed:
            row["abstract"] = clean(row["abstract_raw"])
        row["content_hash"] = _hash(row["title_raw"], row["abstract_raw"],
                                    json.loads(row["authors"]), json.loads(row["categories"]),
                                    row["url"], row["version"])
        row["updated_at"] = self.ctx.now
        return True
