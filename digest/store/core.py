"""Opening the store, transactions, and papers.

SQLAlchemy Core runs the same code on SQLite (the default) and PostgreSQL; what differs between
them is in `backend` (engines, errors) and `locks`. The schema is versioned: numbered migrations
run in one transaction, under a lock, when the store is opened. Database errors become
`StoreError` at this edge, with the URL in the message.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..errors import StoreError
from ..http import Validators
from ..types import Paper
from .backend import comparable, create_engine, insert_ignore, parse_url, shown, translate
from .ledger import LedgerMixin
from .locks import LockMixin, lock_key
from .queue import QueueMixin
from .schema import (
    DEFAULT_URL,
    MIGRATIONS,
    deliveries,
    http_cache,
    meta,
    paper_sources,
    papers,
    schema_version,
    sent,
)


def _utc(value: dt.datetime) -> dt.datetime:
    # SQLite hands datetimes back naive; everything we store is UTC. PostgreSQL hands them
    # back in the session's time zone (the server's by default), so they are turned to UTC.
    return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)


def row_to_paper(row: Any, sources: Sequence[str] = ()) -> Paper:
    return Paper(
        pid=row.pid,
        key=row.key,
        title=row.title,
        abstract=row.abstract,
        authors=tuple(json.loads(row.authors)),
        categories=tuple(json.loads(row.categories)),
        announced=dt.date.fromisoformat(row.announced) if row.announced else None,
        first_seen=_utc(row.first_seen),
        url=row.url,
        version=row.version,
        arxiv_id=row.arxiv_id,
        title_raw=row.title if row.title_raw is None else row.title_raw,
        abstract_raw=row.abstract if row.abstract_raw is None else row.abstract_raw,
        sources=tuple(sources),
    )


@dataclass(frozen=True, slots=True)
class PaperRef:
    """A stored paper as profiles refer to it: its row, its key, its title."""

    pid: int
    key: str
    title: str


@dataclass(frozen=True, slots=True)
class StoreInfo:
    url: str
    schema_version: int
    papers: int


class Store(LedgerMixin, LockMixin, QueueMixin):
    """A database of papers. Open with `Store.open(url)`; use as a context manager."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        #: The URL as messages show it (its password hidden).
        self.url = url
        self._held: dict[str, Connection] = {}

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str = DEFAULT_URL) -> Store:
        """Open (creating if needed) the database at `url` and bring its schema up to date."""
        parsed = parse_url(url)
        store = cls(create_engine(parsed), shown(parsed))
        try:
            store._migrate()
        except BaseException:
            store.engine.dispose()
            raise
        return store

    def close(self) -> None:
        self.release_all_locks()
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sa.exc.DBAPIError as exc:
            raise translate(self.url, exc) from exc

    def _migrate(self) -> None:
        # Under a lock, so that processes opening a new database at once do not both create
        # its tables: the write lock at BEGIN on SQLite, an advisory lock on PostgreSQL.
        with self._errors(), self.engine.connect() as conn:
            conn = conn.execution_options(digest_immediate=True)
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(lock_key("migrate"))))
                schema_version.create(conn, checkfirst=True)
                current = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar()
                current = current or 0
                if current > len(MIGRATIONS):
                    raise StoreError(
                        f"{self.url}: schema version {current} is newer than this digest "
                        f"understands ({len(MIGRATIONS)}); upgrade digest"
                    )
                for number, migration in enumerate(MIGRATIONS[current:], start=current + 1):
                    migration(conn)
                    conn.execute(schema_version.delete())
                    conn.execute(schema_version.insert().values(version=number))
                # A store without an id (new, or made before ids existed) gets one now; two
                # processes opening it at once both try, and the first one's id stays. Looked up
                # first, so that opening a store is no write once it has its id.
                has_id = conn.execute(
                    sa.select(meta.c.key).where(meta.c.key == "store_id")).first()
                if has_id is None:
                    conn.execute(insert_ignore(conn, meta),
                                 [{"key": "store_id", "value": uuid.uuid4().hex}])

    # -- transactions ------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One unit of work: everything in it is committed together or not at all. It claims
        the write lock first, so it waits for another process's write instead of failing
        (`_begin_write`)."""
        with self._begin_write() as conn:
            yield Transaction(conn)

    # -- reads -------------------------------------------------------------------------------

    def info(self) -> StoreInfo:
        with self._errors(), self.engine.connect() as conn:
            version = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar()
            count = conn.execute(sa.select(sa.func.count()).select_from(papers)).scalar()
        return StoreInfo(self.url, int(version or 0), int(count or 0))

    def meta(self, key: str) -> str | None:
        """A fact about the store (see `schema.meta`), or None."""
        with self._errors(), self.engine.connect() as conn:
            value = conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).scalar()
        return None if value is None else str(value)

    @property
    def store_id(self) -> str:
        """The store's identity, written when it was created (or first opened by a digest
        that knows ids); a saved text model records it."""
        value = self.meta("store_id")
        if value is None:  # _migrate writes it; only a hand-edited database lacks it
            raise StoreError(f"{self.url}: the store has no id (table meta); reopen it")
        return value

    def iter_texts(self, *, batch: int = 5000) -> Iterator[tuple[int, str, str]]:
        """(pid, title, abstract) of every paper in pid order, streamed: what a model fit
        reads, without building whole papers (authors, dates) it does not need."""
        query = sa.select(papers.c.pid, papers.c.title, papers.c.abstract).order_by(papers.c.pid)
        with self._errors(), self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch).execute(query)
            for row in result:
                yield int(row.pid), str(row.title), str(row.abstract)

    def get_paper(self, ref: str) -> Paper | None:
        """A paper by key (arXiv id without version, other id as given, ``title:...``)."""
        if not comparable(self.engine.dialect.name, [ref]):
            return None
        with self._errors(), self.engine.connect() as conn:
            row = conn.execute(sa.select(papers).where(papers.c.key == ref)).first()
            if row is None:
                return None
            sources = conn.execute(
                sa.select(paper_sources.c.source)
                .where(paper_sources.c.pid == row.pid)
                .order_by(paper_sources.c.source)
            ).scalars()
            return row_to_paper(row, list(sources))

    def find_by_norm_title(self, norm_title: str) -> list[Paper]:
        if not comparable(self.engine.dialect.name, [norm_title]):
            return []
        with self._errors(), self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(papers).where(papers.c.norm_title == norm_title).order_by(papers.c.pid)
            )
            return [row_to_paper(r) for r in rows]

    def iter_papers(
        self,
        *,
        announced_from: dt.date | None = None,
        announced_to: dt.date | None = None,
        batch: int = 2000,
    ) -> Iterator[Paper]:
        """Papers in pid order, optionally within announced days (inclusive), streamed."""
        query = sa.select(papers).order_by(papers.c.pid)
        if announced_from:
            query = query.where(papers.c.announced >= announced_from.isoformat())
        if announced_to:
            query = query.where(papers.c.announced <= announced_to.isoformat())
        with self._errors(), self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch).execute(query)
            for row in result:
                yield row_to_paper(row)

    def find_refs(self, refs: Iterable[str]) -> dict[str, PaperRef | None]:
        """Find the papers profiles refer to: an arXiv id (any form, any version), another
        stored key, or an exact title (compared normalized). None for what is not stored.
        Reads three columns, and titles only for what no key matched, so resolving every seed
        of thousands of profiles stays cheap."""
        from ..text import normalize_title, parse_arxiv_id

        keys: dict[str, str] = {}
        for ref in refs:
            parsed = parse_arxiv_id(ref)
            keys[ref] = parsed[0] if parsed else ref.strip()
        columns = (papers.c.pid, papers.c.key, papers.c.title, papers.c.norm_title)
        with self._errors(), self.engine.connect() as conn:
            by_key = {r.key: r for r in self._rows_where(conn, columns, papers.c.key,
                                                         set(keys.values()))}
            titles = {ref: normalize_title(ref) for ref, key in keys.items() if key not in by_key}
            by_norm: dict[str, Any] = {}
            for r in self._rows_where(conn, columns, papers.c.norm_title,
                                      {n for n in titles.values() if n}):
                by_norm.setdefault(r.norm_title, r)
        out: dict[str, PaperRef | None] = {}
        for ref, key in keys.items():
            row = by_key.get(key) or by_norm.get(titles.get(ref, ""))
            out[ref] = None if row is None else PaperRef(row.pid, row.key, row.title)
        return out

    @staticmethod
    def _rows_where(conn: Connection, columns: Sequence[Any], column: Any,
                    values: set[str]) -> Iterator[Any]:
        """Rows whose `column` is one of `values`, in pid order per batch of 500."""
        items = sorted(comparable(conn.dialect.name, values))
        for start in range(0, len(items), 500):
            query = sa.select(*columns).where(column.in_(items[start : start + 500]))
            yield from conn.execute(query.order_by(papers.c.pid))

    def resolve_refs(self, refs: Iterable[str]) -> dict[str, Paper | None]:
        """`find_refs`, with the whole papers."""
        found = self.find_refs(refs)
        full = self.papers_by_pid(r.pid for r in found.values() if r is not None)
        return {ref: None if r is None else full.get(r.pid) for ref, r in found.items()}

    def papers_by_pid(self, pids: Iterable[int]) -> dict[int, Paper]:
        wanted = sorted(set(pids))
        found: dict[int, Paper] = {}
        with self._errors(), self.engine.connect() as conn:
            for start in range(0, len(wanted), 500):
                query = sa.select(papers).where(papers.c.pid.in_(wanted[start : start + 500]))
                for row in conn.execute(query):
                    found[row.pid] = row_to_paper(row)
        return found

    # -- the ledger: reads -------------------------------------------------------------------

    def sent_pids(self, profile: str) -> set[int]:
        """Every paper ever sent to `profile`, in any format."""
        with self._errors(), self.engine.connect() as conn:
            return set(conn.execute(sa.select(sent.c.pid).where(sent.c.profile == profile))
                       .scalars())

    def sent_pids_many(
        self, profiles: Sequence[str], *, announced_from: dt.date | None = None
    ) -> dict[str, set[int]]:
        """Papers sent to each profile; with `announced_from`, only papers announced on or
        after that day (the ones a ranking could offer again)."""
        out: dict[str, set[int]] = {p: set() for p in profiles}
        with self._errors(), self.engine.connect() as conn:
            for start in range(0, len(profiles), 500):
                chunk = list(profiles[start : start + 500])
                query = sa.select(sent.c.profile, sent.c.pid).where(sent.c.profile.in_(chunk))
                if announced_from is not None:
                    query = query.join(papers, papers.c.pid == sent.c.pid).where(
                        papers.c.announced >= announced_from.isoformat()
                    )
                for name, pid in conn.execute(query):
                    out[name].add(pid)
        return out

    def last_covered(self, profiles: Sequence[str]) -> dict[str, dt.date]:
        """The last announced day covered by each profile's last completed digest
        (sent or empty); profiles with none are absent."""
        out: dict[str, dt.date] = {}
        done = deliveries.c.status.in_(("sent", "empty"))
        with self._errors(), self.engine.connect() as conn:
            for start in range(0, len(profiles), 500):
                chunk = list(profiles[start : start + 500])
                query = (
                    sa.select(deliveries.c.profile, sa.func.max(deliveries.c.covered_to))
                    .where(done, deliveries.c.profile.in_(chunk))
                    .group_by(deliveries.c.profile)
                )
                for name, day in conn.execute(query):
                    out[name] = dt.date.fromisoformat(day)
        return out

    def validators(self, url: str) -> Validators | None:
        with self._errors(), self.engine.connect() as conn:
            row = conn.execute(sa.select(http_cache).where(http_cache.c.url == url)).first()
        return Validators(row.etag, row.last_modified) if row else None


# What merging needs of a stored paper: everything but the timestamps (parsing those back is
# most of the cost of a lookup, and a merge never changes first_seen).
_MERGE_COLUMNS = [c for c in papers.c if c.name not in ("first_seen", "updated_at")]


class Transaction:
    """Reads and writes inside one transaction (see `Store.transaction`)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def lookup(self, keys: Iterable[str], norm_titles: Iterable[str]) -> list[dict[str, Any]]:
        """Stored rows whose key is in `keys` or whose normalized title is in `norm_titles`,
        as dicts of columns (raw texts filled in), for merging."""
        found: dict[int, dict[str, Any]] = {}
        for column, values in ((papers.c.key, keys), (papers.c.norm_title, norm_titles)):
            wanted = comparable(self.conn.dialect.name, set(values))
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                for row in self.conn.execute(sa.select(*_MERGE_COLUMNS).where(column.in_(chunk))):
                    state = dict(row._mapping)
                    for raw, clean in (("title_raw", "title"), ("abstract_raw", "abstract")):
                        if state[raw] is None:
                            state[raw] = state[clean]
                    found[row.pid] = state
        return sorted(found.values(), key=lambda r: r["pid"])

    def insert_papers(self, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Insert new papers; returns their pids in the order given."""
        if not rows:
            return []
        rows = [_compact(r) for r in rows]
        # A plain executemany and one SELECT is several times faster on SQLite than
        # INSERT ... RETURNING, which runs one statement per row when the order must be kept.
        self.conn.execute(papers.insert(), list(rows))
        keys = [r["key"] for r in rows]
        pids: dict[str, int] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            query = sa.select(papers.c.key, papers.c.pid).where(papers.c.key.in_(chunk))
            pids.update((key, pid) for key, pid in self.conn.execute(query))
        return [pids[key] for key in keys]

    def update_papers(self, rows: Sequence[dict[str, Any]]) -> None:
        """Update stored papers; each row has `pid` and the columns to set (the same in all)."""
        if not rows:
            return
        rows = [_compact(r) for r in rows]
        columns = [c for c in rows[0] if c != "pid"]
        statement = (
            papers.update()
            .where(papers.c.pid == sa.bindparam("_pid"))
            .values({c: sa.bindparam(c) for c in columns})
        )
        self.conn.execute(
            statement, [{"_pid": r["pid"], **{c: r[c] for c in columns}} for r in rows]
        )

    def add_sources(self, pairs: Iterable[tuple[int, str]]) -> None:
        """Record that papers came from sources (already recorded pairs are left alone)."""
        values = [{"pid": pid, "source": source} for pid, source in set(pairs)]
        if values:
            self.conn.execute(insert_ignore(self.conn, paper_sources), values)

    def save_validators(self, url: str, validators: Validators, when: dt.datetime) -> None:
        self.conn.execute(http_cache.delete().where(http_cache.c.url == url))
        if validators:
            self.conn.execute(
                http_cache.insert().values(
                    url=url,
                    etag=validators.etag,
                    last_modified=validators.last_modified,
                    fetched_at=when,
                )
            )


def _compact(row: dict[str, Any]) -> dict[str, Any]:
    """A row as stored: raw texts that equal their clean version are not stored twice."""
    out = dict(row)
    for raw, clean in (("title_raw", "title"), ("abstract_raw", "abstract")):
        if raw in out and out[raw] == out.get(clean):
            out[raw] = None
    return out
