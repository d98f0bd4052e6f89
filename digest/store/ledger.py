"""The ledger: what each profile was sent, deliveries in flight, subscriptions.

The rule that makes delivery crash-safe: a digest is recorded as ``pending`` with its exact
message bytes *before* it is sent, and its papers are marked sent in the same transaction that
records the server's acceptance. A crash between acceptance and that commit leaves a pending
row that the next run resends with the same bytes and Message-ID (one duplicate at most); a
paper is never recorded as sent unless its message left.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..types import Paper
from .schema import deliveries, locks, papers, sent, subscriptions


@dataclass(frozen=True, slots=True)
class Delivery:
    """One digest for one profile, as the ledger holds it."""

    id: int
    profile: str
    key: str
    #: pending (recorded, not yet accepted), sent, empty, failed (permanently refused).
    status: str
    covered_to: dt.date
    message_id: str | None
    message: bytes | None
    markdown: str | None
    pids: tuple[int, ...]
    #: Per paper, in order: ``{"pid", "score", "why"}`` as rendered.
    items: tuple[dict[str, Any], ...]
    files: tuple[str, ...]
    attempts: int
    last_error: str | None
    created_at: dt.datetime
    sent_at: dt.datetime | None


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    # PostgreSQL's are in the session's time zone (core._utc says why).
    return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=row.id,
        profile=row.profile,
        key=row.digest_key,
        status=row.status,
        covered_to=dt.date.fromisoformat(row.covered_to),
        message_id=row.message_id,
        message=row.message,
        markdown=row.markdown,
        pids=tuple(json.loads(row.papers)),
        items=tuple(json.loads(row.chosen)),
        files=tuple(json.loads(row.files)),
        attempts=row.attempts,
        last_error=row.last_error,
        created_at=_utc(row.created_at) or row.created_at,
        sent_at=_utc(row.sent_at),
    )


class LedgerMixin:
    """Ledger methods of `Store` (which provides `engine` and `_errors`)."""

    engine: Engine
    url: str

    def _errors(self) -> Any:  # provided by Store
        raise NotImplementedError

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        with self._errors(), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def _begin_write(self) -> Iterator[Connection]:
        """A transaction that reads, then writes. On SQLite it claims the write lock first: a
        transaction that has read cannot wait for another process's write to end (the busy
        timeout) and fails at once with "database is locked"."""
        with self._begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.execute(locks.update().where(sa.false()).values(name=locks.c.name))
            yield conn

    # -- deliveries ----------------------------------------------------------------------------

    def get_delivery(self, profile: str, key: str) -> Delivery | None:
        with self._begin() as conn:
            row = conn.execute(
                sa.select(deliveries).where(
                    deliveries.c.profile == profile, deliveries.c.digest_key == key
                )
            ).first()
        return _delivery(row) if row else None

    def deliveries_of(self, profile: str) -> list[Delivery]:
        """Every digest of `profile`, newest first."""
        with self._begin() as conn:
            rows = conn.execute(
                sa.select(deliveries)
                .where(deliveries.c.profile == profile)
                .order_by(deliveries.c.digest_key.desc())
            )
            return [_delivery(r) for r in rows]

    def pending_deliveries(self, profiles: Sequence[str]) -> dict[str, list[Delivery]]:
        """Deliveries recorded but not yet accepted, per profile, oldest first."""
        out: dict[str, list[Delivery]] = {}
        with self._begin() as conn:
            for start in range(0, len(profiles), 500):
                chunk = list(profiles[start : start + 500])
                rows = conn.execute(
                    sa.select(deliveries)
                    .where(deliveries.c.status == "pending", deliveries.c.profile.in_(chunk))
                    .order_by(deliveries.c.digest_key)
                )
                for row in rows:
                    out.setdefault(row.profile, []).append(_delivery(row))
        return out

    def record_delivery(
        self,
        *,
        profile: str,
        key: str,
        covered_to: dt.date,
        status: str,
        message_id: str | None,
        message: bytes | None,
        markdown: str | None,
        items: Sequence[dict[str, Any]],
        now: dt.datetime,
    ) -> Delivery:
        """Record a rendered digest before it is sent (status ``pending``) or one with nothing
        to send (``empty``). A failed digest with the same key is replaced."""
        pids = [int(item["pid"]) for item in items]
        with self._begin() as conn:
            conn.execute(
                deliveries.delete().where(
                    deliveries.c.profile == profile,
                    deliveries.c.digest_key == key,
                    deliveries.c.status == "failed",
                )
            )
            conn.execute(
                deliveries.insert().values(
                    profile=profile,
                    digest_key=key,
                    status=status,
                    covered_to=covered_to.isoformat(),
                    message_id=message_id,
                    message=message,
                    markdown=markdown,
                    papers=json.dumps(pids),
                    chosen=json.dumps(list(items), ensure_ascii=False),
                    files="[]",
                    attempts=0,
                    created_at=now,
                    updated_at=now,
                    sent_at=now if status == "empty" else None,
                )
            )
            row = conn.execute(
                sa.select(deliveries).where(
                    deliveries.c.profile == profile, deliveries.c.digest_key == key
                )
            ).one()
        return _delivery(row)

    def record_attempt(
        self, delivery_id: int, error: str, *, permanent: bool, now: dt.datetime
    ) -> None:
        """A send that did not get through: permanent failures end the delivery; temporary
        ones leave it pending, to be resent with the same bytes."""
        with self._begin() as conn:
            conn.execute(
                deliveries.update()
                .where(deliveries.c.id == delivery_id)
                .values(
                    attempts=deliveries.c.attempts + 1,
                    last_error=error,
                    status="failed" if permanent else "pending",
                    updated_at=now,
                    lease_owner=None,
                    lease_until=None,
                )
            )

    def complete_delivery(
        self, delivery_id: int, *, files: Sequence[str], now: dt.datetime
    ) -> None:
        """The message left (or the files were written): mark the delivery sent and its papers
        sent to the profile, in one transaction."""
        with self._begin_write() as conn:
            row = conn.execute(sa.select(deliveries).where(deliveries.c.id == delivery_id)).one()
            conn.execute(
                deliveries.update()
                .where(deliveries.c.id == delivery_id)
                .values(
                    status="sent",
                    attempts=deliveries.c.attempts + 1,
                    files=json.dumps(list(files), ensure_ascii=False),
                    last_error=None,
                    sent_at=now,
                    updated_at=now,
                    lease_owner=None,
                    lease_until=None,
                )
            )
            pids = json.loads(row.papers)
            if pids:
                already = set(
                    conn.execute(
                        sa.select(sent.c.pid).where(
                            sent.c.profile == row.profile, sent.c.pid.in_(pids)
                        )
                    ).scalars()
                )
                fresh = [
                    {"profile": row.profile, "pid": pid, "delivery_id": delivery_id,
                     "sent_at": now}
                    for pid in pids
                    if pid not in already
                ]
                if fresh:
                    conn.execute(sent.insert(), fresh)

    def feed_items(
        self, profile: str, *, since: dt.datetime, limit: int
    ) -> list[tuple[Paper, dt.datetime, dict[str, Any] | None]]:
        """Papers sent to `profile` since `since`, newest first and each digest's in its
        ranking order, with the reasons they were chosen (as recorded in their delivery)."""
        from .core import row_to_paper

        query: Any = (
            sa.select(*papers.c, sent.c.sent_at, sent.c.delivery_id)
            .join(sent, sent.c.pid == papers.c.pid)
            .where(sent.c.profile == profile, sent.c.sent_at >= since)
            .order_by(sent.c.sent_at.desc(), papers.c.key)
        )  # no LIMIT: the cut follows each digest's ranking, which is in `chosen` (below)
        whys: dict[int, dict[int, Any]] = {}
        out: list[tuple[Paper, dt.datetime, dict[str, Any] | None]] = []
        with self._begin() as conn:
            rows = conn.execute(query).all()
            for delivery_id in {r.delivery_id for r in rows}:
                items = conn.execute(
                    sa.select(deliveries.c.chosen).where(deliveries.c.id == delivery_id)
                ).scalar_one()
                whys[delivery_id] = {int(i["pid"]): i.get("why") for i in json.loads(items)}
        # Within one digest, its ranking order (`chosen` is kept in that order).
        rank = {(d, pid): n for d, by_pid in whys.items() for n, pid in enumerate(by_pid)}
        ordered = sorted(rows, key=lambda r: rank.get((r.delivery_id, r.pid), 0))
        ordered.sort(key=lambda r: _utc(r.sent_at) or r.sent_at, reverse=True)
        for row in ordered[:limit]:
            sent_at = _utc(row.sent_at) or row.sent_at
            out.append((row_to_paper(row), sent_at, whys[row.delivery_id].get(row.pid)))
        return out

    # -- subscriptions -------------------------------------------------------------------------

    def set_subscribed(self, profile: str, subscribed: bool, *, now: dt.datetime) -> bool:
        """Record a (re)subscription; returns True when it changed anything."""
        with self._begin_write() as conn:
            row = conn.execute(
                sa.select(subscriptions).where(subscriptions.c.profile == profile)
            ).first()
            was_subscribed = row is None or row.unsubscribed_at is None
            if was_subscribed == subscribed:
                return False
            conn.execute(subscriptions.delete().where(subscriptions.c.profile == profile))
            conn.execute(
                subscriptions.insert().values(
                    profile=profile, unsubscribed_at=None if subscribed else now, updated_at=now
                )
            )
            return True

    def unsubscribed(self) -> set[str]:
        with self._begin() as conn:
            return set(
                conn.execute(
                    sa.select(subscriptions.c.profile).where(
                        subscriptions.c.unsubscribed_at.is_not(None)
                    )
                ).scalars()
            )
