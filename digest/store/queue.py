"""What the queue's workers share through the store: claims, send leases, synced profiles, rates.

Exactly-once without a global lock (digest.queue explains the whole protocol):

* a **claim** is the digest's row itself, inserted as ``claimed`` under a unique key (profile,
  digest day) with insert-or-skip: of two workers building the same digest, one inserts, the
  other skips. A claim carries an owner and a lease: one whose lease passed (its worker died) is
  taken over, and the owner that holds it fills it (``pending`` with its message, or ``empty``)
  only while it still holds it;
* a **send lease** on a ``pending`` row: a worker leases the rows it is about to send; a row
  whose lease passed is sent again by another worker with the recorded bytes and Message-ID.
  Marking it sent (`LedgerMixin.complete_delivery`) clears the lease in the same transaction that
  records its papers as sent.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .backend import insert_ignore
from .ledger import Delivery, _delivery
from .locks import lock_key
from .schema import deliveries, meta, profile_docs, rates

_CHUNK = 500


def _chunks(items: Sequence[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield list(items[start : start + _CHUNK])


class QueueMixin:
    """Queue methods of `Store` (which provides `_begin` and `_begin_write`)."""

    def _begin(self) -> AbstractContextManager[Connection]:  # provided by LedgerMixin
        raise NotImplementedError

    def _begin_write(self) -> AbstractContextManager[Connection]:  # provided by LedgerMixin
        raise NotImplementedError

    # -- claims ----------------------------------------------------------------------------------

    def claim_deliveries(self, profiles: Sequence[str], key: str, *, owner: str,
                         until: dt.datetime, now: dt.datetime) -> list[str]:
        """Claim the digest `key` of each profile for `owner` until `until`. A profile is
        claimed when it has no digest for `key` yet, when its digest failed for good, or when
        its claim is `owner`'s already or its lease passed. Returns the profiles claimed, in
        the order given; the others are being built by another worker, or done."""
        claimed: set[str] = set()
        for chunk in _chunks(profiles):
            with self._begin_write() as conn:
                conn.execute(insert_ignore(conn, deliveries), [
                    {"profile": name, "digest_key": key, "status": "claimed",
                     "covered_to": key, "papers": "[]", "chosen": "[]", "files": "[]",
                     "attempts": 0, "created_at": now, "updated_at": now,
                     "lease_owner": owner, "lease_until": until}
                    for name in chunk])
                takeover = sa.or_(
                    deliveries.c.status == "failed",
                    sa.and_(deliveries.c.status == "claimed",
                            sa.or_(deliveries.c.lease_owner == owner,
                                   deliveries.c.lease_until < now)))
                conn.execute(deliveries.update()
                             .where(deliveries.c.profile.in_(chunk),
                                    deliveries.c.digest_key == key, takeover)
                             .values(status="claimed", lease_owner=owner, lease_until=until,
                                     updated_at=now))
                claimed.update(conn.execute(
                    sa.select(deliveries.c.profile).where(
                        deliveries.c.profile.in_(chunk), deliveries.c.digest_key == key,
                        deliveries.c.status == "claimed", deliveries.c.lease_owner == owner)
                ).scalars())
        return [name for name in profiles if name in claimed]

    def fill_claims(self, rows: Sequence[Mapping[str, Any]], *, owner: str,
                    now: dt.datetime) -> list[Delivery]:
        """Record digests built under `owner`'s claims, in one transaction: each row has
        ``profile, key, status`` (``pending`` or ``empty``), ``covered_to`` (a date),
        ``message_id, message, markdown`` and ``items`` (as `record_delivery` takes them). A
        claim `owner` no longer holds (its lease passed and another worker took it) is left
        alone. Returns the deliveries recorded."""
        done: list[Delivery] = []
        with self._begin_write() as conn:
            for row in rows:
                items = list(row["items"])
                result = conn.execute(
                    deliveries.update()
                    .where(deliveries.c.profile == row["profile"],
                           deliveries.c.digest_key == row["key"],
                           deliveries.c.status == "claimed",
                           deliveries.c.lease_owner == owner)
                    .values(status=row["status"], covered_to=row["covered_to"].isoformat(),
                            message_id=row["message_id"], message=row["message"],
                            markdown=row["markdown"],
                            papers=json.dumps([int(item["pid"]) for item in items]),
                            chosen=json.dumps(items, ensure_ascii=False), files="[]",
                            attempts=0, last_error=None, created_at=now, updated_at=now,
                            sent_at=now if row["status"] == "empty" else None,
                            lease_owner=None, lease_until=None))
                if result.rowcount:
                    found = conn.execute(sa.select(deliveries).where(
                        deliveries.c.profile == row["profile"],
                        deliveries.c.digest_key == row["key"])).one()
                    done.append(_delivery(found))
        return done

    def release_claims(self, profiles: Sequence[str], key: str, *, owner: str) -> None:
        """Give up `owner`'s claims (its digests could not be built): another try claims them
        afresh."""
        for chunk in _chunks(profiles):
            with self._begin() as conn:
                conn.execute(deliveries.delete().where(
                    deliveries.c.profile.in_(chunk), deliveries.c.digest_key == key,
                    deliveries.c.status == "claimed", deliveries.c.lease_owner == owner))

    # -- send leases -----------------------------------------------------------------------------

    def lease_pending(self, ids: Sequence[int], *, owner: str, until: dt.datetime,
                      now: dt.datetime) -> list[Delivery]:
        """Lease the pending deliveries among `ids` that nobody else holds (or whose lease
        passed) to `owner` until `until`; returns them, in the order of `ids`."""
        leased: dict[int, Delivery] = {}
        for chunk in _chunks(ids):
            with self._begin_write() as conn:
                free = sa.or_(deliveries.c.lease_until.is_(None),
                              deliveries.c.lease_until < now, deliveries.c.lease_owner == owner)
                conn.execute(deliveries.update()
                             .where(deliveries.c.id.in_(chunk),
                                    deliveries.c.status == "pending", free)
                             .values(lease_owner=owner, lease_until=until))
                for row in conn.execute(sa.select(deliveries).where(
                        deliveries.c.id.in_(chunk), deliveries.c.status == "pending",
                        deliveries.c.lease_owner == owner)):
                    leased[row.id] = _delivery(row)
        return [leased[i] for i in ids if i in leased]

    def renew_lease(self, delivery_id: int, *, owner: str, until: dt.datetime) -> bool:
        """Extend `owner`'s lease on a pending delivery to `until`, right before sending it;
        False when `owner` no longer holds it (its lease passed and another worker took it, or
        it was sent): then it must not be sent."""
        with self._begin() as conn:
            result = conn.execute(deliveries.update().where(
                deliveries.c.id == delivery_id, deliveries.c.status == "pending",
                deliveries.c.lease_owner == owner).values(lease_until=until))
        return bool(result.rowcount)

    def delivery_states(self, ids: Sequence[int]) -> dict[int, str]:
        """The status of each delivery among `ids` that exists."""
        out: dict[int, str] = {}
        for chunk in _chunks(ids):
            with self._begin() as conn:
                out.update({i: status for i, status in conn.execute(
                    sa.select(deliveries.c.id, deliveries.c.status)
                    .where(deliveries.c.id.in_(chunk)))})
        return out

    def stale_work(self, *, now: dt.datetime,
                   idle_since: dt.datetime) -> tuple[list[tuple[str, str]], list[int]]:
        """Work a dead worker left: claims whose lease passed (profile, key), and pending
        deliveries nobody holds (or whose lease passed) that have not changed since
        `idle_since` (younger ones are most likely waiting in the queue)."""
        with self._begin() as conn:
            claims = conn.execute(sa.select(deliveries.c.profile, deliveries.c.digest_key)
                                  .where(deliveries.c.status == "claimed",
                                         deliveries.c.lease_until < now)
                                  .order_by(deliveries.c.digest_key, deliveries.c.profile)
                                  ).all()
            pending = conn.execute(sa.select(deliveries.c.id).where(
                deliveries.c.status == "pending",
                sa.or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now),
                deliveries.c.updated_at < idle_since).order_by(deliveries.c.id)).scalars().all()
        return [(p, k) for p, k in claims], list(pending)

    def delivery_counts(self, *, days: int = 3) -> dict[str, dict[str, int]]:
        """Deliveries by status for each of the last `days` digest days (newest first)."""
        with self._begin() as conn:
            keys = conn.execute(sa.select(deliveries.c.digest_key).distinct()
                                .order_by(deliveries.c.digest_key.desc()).limit(days)
                                ).scalars().all()
            out: dict[str, dict[str, int]] = {key: {} for key in keys}
            for key, status, count in conn.execute(
                    sa.select(deliveries.c.digest_key, deliveries.c.status, sa.func.count())
                    .where(deliveries.c.digest_key.in_(keys))
                    .group_by(deliveries.c.digest_key, deliveries.c.status)):
                out[key][status] = int(count)
        return out

    # -- shared rates ----------------------------------------------------------------------------

    def reserve_rate(self, name: str, count: int, *, per_second: float, now: float) -> float:
        """Reserve `count` slots of the shared rate `name` (`per_second` across every process
        that uses it); returns when the first slot starts (seconds since the epoch, not before
        `now`). The slots follow each other at 1/`per_second`."""
        with self._begin_write() as conn:
            conn.execute(insert_ignore(conn, rates), [{"name": name, "next_at": now}])
            query = sa.select(rates.c.next_at).where(rates.c.name == name)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            start = max(float(conn.execute(query).scalar_one()), now)
            conn.execute(rates.update().where(rates.c.name == name)
                         .values(next_at=start + count / per_second))
        return start

    # -- synced profiles -------------------------------------------------------------------------

    def profile_doc_hashes(self) -> dict[str, tuple[str, str]]:
        """Each synced profile's (path, sha256)."""
        with self._begin() as conn:
            return {name: (path, digest) for name, path, digest in conn.execute(
                sa.select(profile_docs.c.name, profile_docs.c.path, profile_docs.c.sha256))}

    def save_profile_docs(self, upserts: Sequence[Mapping[str, Any]], removed: Sequence[str],
                          *, now: dt.datetime) -> None:
        """Write synced profiles (``name, path, sha256, content, data``) and drop `removed`,
        in one transaction."""
        with self._begin_write() as conn:
            names = [row["name"] for row in upserts] + list(removed)
            for chunk in _chunks(names):
                conn.execute(profile_docs.delete().where(profile_docs.c.name.in_(chunk)))
            if upserts:
                conn.execute(profile_docs.insert(),
                             [{**row, "synced_at": now} for row in upserts])

    def profile_docs(self, names: Sequence[str] | None = None) -> list[tuple[str, str, str]]:
        """Synced profiles as (name, path, data JSON), by name; `names` None: all of them."""
        query = sa.select(profile_docs.c.name, profile_docs.c.path, profile_docs.c.data)
        with self._begin() as conn:
            if names is None:
                return [tuple(r) for r in conn.execute(query.order_by(profile_docs.c.name))]
            out: list[tuple[str, str, str]] = []
            for chunk in _chunks(names):
                out += [tuple(r) for r in conn.execute(
                    query.where(profile_docs.c.name.in_(chunk)))]
            return sorted(out)

    # -- facts -----------------------------------------------------------------------------------

    def set_meta(self, key: str, value: str) -> None:
        """Set a fact about the store (see `schema.meta`)."""
        with self._begin_write() as conn:
            conn.execute(meta.delete().where(meta.c.key == key))
            conn.execute(meta.insert().values(key=key, value=value))

    # -- the queue's own tables ------------------------------------------------------------------

    def install_schema(self, table: str, script: str) -> bool:
        """Run `script` (another library's schema, procrastinate's) unless `table` exists,
        under the migration lock so that workers starting at once install it once. True when
        it was installed now."""
        with self._begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(lock_key("migrate"))))
            if sa.inspect(conn).has_table(table):
                return False
            # On the driver's own cursor: without parameters it reads no placeholders, and the
            # script has '%' signs of its own.
            cursor = conn.connection.cursor()
            try:
                cursor.execute(script)
            finally:
                cursor.close()
        return True
