"""The schema: every table, and the numbered migrations that create them.

A change to the schema is a new migration appended to `MIGRATIONS` (ALTER / CREATE), never an
edit of an earlier one: databases in the field already ran those. Until a migration changes a
table, the migrations create tables from these definitions; the first change to a table must
freeze the older migration's copy of it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

DEFAULT_URL = "sqlite:///out/digest.sqlite"

metadata = sa.MetaData()

#: Every paper ever ingested. `pid` is internal and survives a change of `key` (a paper first
#: known by its title that later arrives with an arXiv id).
papers = sa.Table(
    "papers",
    metadata,
    sa.Column("pid", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(200), nullable=False, unique=True),
    sa.Column("arxiv_id", sa.String(64)),
    sa.Column("version", sa.Integer),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("abstract", sa.Text, nullable=False),
    # The text as received, only where it differs from the clean text (NULL: the same).
    sa.Column("title_raw", sa.Text),
    sa.Column("abstract_raw", sa.Text),
    sa.Column("norm_title", sa.Text, nullable=False, index=True),
    sa.Column("authors", sa.Text, nullable=False),  # JSON list
    sa.Column("categories", sa.Text, nullable=False),  # JSON list
    sa.Column("announced", sa.String(10), index=True),  # YYYY-MM-DD
    sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("url", sa.Text),
    # Rank of the most authoritative kind of source that wrote the fields (see ingest).
    sa.Column("authority", sa.Integer, nullable=False, default=0),
    # Hash of the raw fields as last received: an unchanged re-ingest is a lookup, no cleaning.
    sa.Column("content_hash", sa.String(40), nullable=False),
)

#: Which kinds of source each paper came from (arxiv-rss, arxiv-api, hf-daily, hf-page, file).
paper_sources = sa.Table(
    "paper_sources",
    metadata,
    sa.Column("pid", sa.Integer, sa.ForeignKey("papers.pid", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("source", sa.String(100), primary_key=True),
)

#: ETag / Last-Modified of the last response stored from each URL, for conditional GET.
http_cache = sa.Table(
    "http_cache",
    metadata,
    sa.Column("url", sa.Text, primary_key=True),
    sa.Column("etag", sa.Text),
    sa.Column("last_modified", sa.Text),
    sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
)

def _delivery_columns() -> list[Any]:
    """The columns of `deliveries` as migration 2 created them (fresh objects each call)."""
    return [
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("profile", sa.String(200), nullable=False),
        sa.Column("digest_key", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("covered_to", sa.String(10), nullable=False),  # last announced day it covers
        sa.Column("message_id", sa.Text),
        sa.Column("message", sa.LargeBinary),  # the email exactly as sent (None: no email)
        sa.Column("markdown", sa.Text),  # the markdown digest (None: not wanted)
        sa.Column("papers", sa.Text, nullable=False),  # JSON list of pids, best first
        sa.Column("chosen", sa.Text, nullable=False),  # JSON: pid, score and why per paper
        sa.Column("files", sa.Text, nullable=False),  # JSON list of paths written
        sa.Column("attempts", sa.Integer, nullable=False, default=0),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
    ]


#: One digest for one profile: what was rendered, its message, and whether it left.
#: status: claimed (a queue worker is building it), pending (rendered, not yet accepted), sent,
#: empty (nothing to send), failed (permanently refused). A pending row is resent with the same
#: bytes and Message-ID.
deliveries = sa.Table(
    "deliveries",
    metadata,
    *_delivery_columns(),
    # A claim (status "claimed", migration 5) or a send in progress belongs to one worker until
    # `lease_until`: the queue's exactly-once rule (digest.queue). NULL: nobody holds it.
    sa.Column("lease_owner", sa.Text),
    sa.Column("lease_until", sa.DateTime(timezone=True)),
    sa.Index("ix_deliveries_status", "status"),
    sa.UniqueConstraint("profile", "digest_key", name="uq_delivery"),
)

#: Papers that reached a profile, across formats: a paper is never sent to it twice.
sent = sa.Table(
    "sent",
    metadata,
    sa.Column("profile", sa.String(200), primary_key=True),
    sa.Column("pid", sa.Integer, sa.ForeignKey("papers.pid"), primary_key=True),
    sa.Column("delivery_id", sa.Integer, sa.ForeignKey("deliveries.id"), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_sent_delivery", "delivery_id"),
)

#: Profiles that unsubscribed (one-click or CLI); runs skip them until resubscribed.
subscriptions = sa.Table(
    "subscriptions",
    metadata,
    sa.Column("profile", sa.String(200), primary_key=True),
    sa.Column("unsubscribed_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

#: Named locks held by a process (a run, the scheduler), so two never act at once.
locks = sa.Table(
    "locks",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    # host:pid:start (start: the process's start time, so a reused pid is not taken for it)
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("host", sa.Text, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
)

#: Facts about the store itself, one value per key: ``store_id`` (a random id written when the
#: store is created or first opened by a digest that knows it), which a saved text model records
#: so that it is never used on another store.
meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

#: The profiles folder as last synced (`digest profiles sync`, the queue's tick): what workers on
#: other machines rank for. `data` is the validated profile as JSON; `content` the YAML as read.
profile_docs = sa.Table(
    "profile_docs",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
)

#: Shared rate limits (the queue's global send rate): the earliest time the next slot is free.
rates = sa.Table(
    "rates",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("next_at", sa.Float, nullable=False),  # seconds since the epoch
)

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, nullable=False),
)


def _migration_1(conn: Connection) -> None:
    # The first schema. A later change is a new numbered migration (ALTER / CREATE), never an
    # edit here: databases in the field already ran this one.
    for table in (papers, paper_sources, http_cache):
        table.create(conn)


def _migration_2(conn: Connection) -> None:
    # The ledger, subscriptions and locks (delivery and scheduling); `deliveries` as it was
    # then (migration 5 adds its lease).
    frozen = sa.Table("deliveries", sa.MetaData(), *_delivery_columns(),
                      sa.UniqueConstraint("profile", "digest_key", name="uq_delivery"))
    for table in (frozen, sent, subscriptions, locks):
        table.create(conn)


def _migration_3(conn: Connection) -> None:
    # The store's own facts (its id); `Store._migrate` writes the id.
    meta.create(conn)


def _migration_4(conn: Connection) -> None:
    # Titles are normalized more tolerantly (hyphenation, spacing, a few abbreviations; see
    # text.normalize_title): recompute the stored ones so that old rows match new records.
    # Keys of title-only papers ("title:<hash>") stay: lookups go by norm_title.
    from ..text import normalize_title

    table = sa.table("papers", sa.column("pid"), sa.column("title"), sa.column("norm_title"))
    rows = conn.execute(sa.select(table.c.pid, table.c.title, table.c.norm_title)).all()
    changed = [{"p": pid, "n": norm} for pid, title, old in rows
               if (norm := normalize_title(title, cleaned=True)) != old]
    if changed:
        conn.execute(table.update().where(table.c.pid == sa.bindparam("p"))
                     .values(norm_title=sa.bindparam("n")), changed)


def _migration_5(conn: Connection) -> None:
    # The queue (digest.queue): claims and send leases on deliveries, synced profiles, shared
    # rate limits.
    preparer = conn.dialect.identifier_preparer
    for column in (deliveries.c.lease_owner, deliveries.c.lease_until):
        kind = column.type.compile(dialect=conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE deliveries ADD COLUMN "
                             f"{preparer.format_column(column)} {kind}")
    for index in deliveries.indexes:
        index.create(conn)
    for table in (profile_docs, rates):
        table.create(conn)


MIGRATIONS: list[Callable[[Connection], None]] = [
    _migration_1, _migration_2, _migration_3, _migration_4, _migration_5,
]
