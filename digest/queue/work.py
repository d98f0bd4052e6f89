"""What the queue's jobs do, apart from the queue: build a shard's digests, send a batch, sweep.

Each function is safe to run twice, at once in two workers, or again after its worker died at
any point: the claims and leases of the store (`digest.store.queue`) decide who does what.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import DeliveryError, DigestError
from ..modelstore import recommender
from ..profiles.sync import stored_profiles
from .context import QueueContext

log = logging.getLogger("digest.queue")

#: Rows recorded per transaction when a shard fills its claims.
FILL_CHUNK = 200


@dataclass
class ShardReport:
    """What one shard job did."""

    built: int = 0
    empty: int = 0
    #: Deliveries to send: the shard's new digests, and earlier ones still pending.
    pending: list[int] = field(default_factory=list)
    #: Profiles built elsewhere or done already (another worker's claim, a completed digest).
    skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)


@dataclass
class SendReport:
    """What one send job did."""

    sent: int = 0
    failed: int = 0  # permanently
    temporary: list[int] = field(default_factory=list)  # still pending: to be sent again
    busy: int = 0  # another worker holds them
    done: int = 0  # sent (or ended) already


def prepare_shard(ctx: QueueContext, names: Sequence[str], day: dt.date, *,
                  owner: str) -> ShardReport:
    """Claim, rank, render and record (``pending`` or ``empty``) the digest of `day` for the
    profiles `names`: the send jobs send them. A profile whose earlier digest is still pending
    gets no new one (its papers would be offered twice): that digest is sent first, and the next
    one covers the days since."""
    report = ShardReport()
    store = ctx.store()
    now = ctx.now()
    key = day.isoformat()
    found = stored_profiles(store, names)
    for error in found.errors:
        report.failed[error.path] = "; ".join(error.problems)
    missing = set(names) - {p.name for p in found.profiles} - set(report.failed)
    for name in sorted(missing):
        report.failed[name] = f"no profile named {name!r} in the store (digest profiles sync)"
    unsubscribed = store.unsubscribed()
    profiles = [p for p in found.profiles if p.name not in unsubscribed]
    waiting = store.pending_deliveries([p.name for p in profiles])
    report.pending += [d.id for ds in waiting.values() for d in ds]
    blocked = {name for name, ds in waiting.items() if any(d.key != key for d in ds)}
    candidates = [p for p in profiles if p.name not in blocked]
    claimed = set(store.claim_deliveries(
        [p.name for p in candidates], key, owner=owner,
        until=now + dt.timedelta(seconds=ctx.settings.claim_lease), now=now))
    todo = [p for p in candidates if p.name in claimed]
    report.skipped = len(profiles) - len(todo)
    if not todo:
        return report
    # A failure here keeps the claims: this job's retry takes them back at once, and once its
    # retries are spent, their lease lapses and a worker's sweep queues them again.
    rankings = recommender(store, ctx.app.model(store),
                           first_digest_days=ctx.app.config.first_digest_days
                           ).rank(todo, until=day)
    items = {r.profile: r.items for r in rankings}
    deliverer = ctx.deliverer()
    rows: list[dict[str, Any]] = []
    for profile in todo:
        try:
            built = deliverer.build(profile, day, items.get(profile.name, ()), now=now)
        except DigestError as exc:
            report.failed[profile.name] = str(exc)
            continue
        row: dict[str, Any] = {"profile": profile.name, "key": key, "covered_to": day,
                               "status": "empty", "message_id": None, "message": None,
                               "markdown": None, "items": []}
        if built is not None:
            row.update(status="pending", message_id=built.message_id, message=built.message,
                       markdown=built.markdown, items=built.items)
        rows.append(row)
    store.release_claims([n for n in report.failed if n in claimed], key, owner=owner)
    for start in range(0, len(rows), FILL_CHUNK):
        for delivery in store.fill_claims(rows[start : start + FILL_CHUNK], owner=owner,
                                          now=now):
            if delivery.status == "pending":
                report.pending.append(delivery.id)
                report.built += 1
            else:
                report.empty += 1
    return report


def send_pending(ctx: QueueContext, ids: Sequence[int], *, owner: str) -> SendReport:
    """Send the pending deliveries among `ids` that no other worker holds, over the worker's
    SMTP connection at the global rate, each marked sent with its papers once the server took
    it; their feeds are rewritten. Temporary failures stay pending (`SendReport.temporary`)."""
    report = SendReport()
    store = ctx.store()
    now = ctx.now()
    lease = dt.timedelta(seconds=ctx.settings.send_lease)
    leased = store.lease_pending(ids, owner=owner, until=now + lease, now=now)
    if len(leased) < len(ids):
        states = store.delivery_states([i for i in ids if i not in {d.id for d in leased}])
        report.busy = sum(1 for s in states.values() if s == "pending")
        report.done = len(states) - report.busy
    if not leased:
        return report
    profiles = stored_profiles(store, sorted({d.profile for d in leased}))
    deliverer = ctx.deliverer()
    with deliverer.transport:
        for delivery in leased:
            profile = profiles.get(delivery.profile)
            if profile is None:
                store.record_attempt(delivery.id, f"profile {delivery.profile!r} is no longer "
                                     "in the store", permanent=True, now=ctx.now())
                report.failed += 1
                continue
            ctx.pace()
            # The rate (or a slow server) may have held this batch past its lease: send only
            # what this job still holds, for another full lease.
            if not store.renew_lease(delivery.id, owner=owner, until=ctx.now() + lease):
                report.busy += 1
                continue
            result = deliverer.send(profile, delivery)
            if result.status == "sent":
                report.sent += 1
                if "rss" in profile.formats:
                    try:
                        deliverer.write_feeds(profile)
                    except DeliveryError as exc:  # the digest left; its feed waits a day
                        log.warning("%s: feeds not written: %s", profile.name, exc)
            elif store.delivery_states([delivery.id]).get(delivery.id) == "pending":
                report.temporary.append(delivery.id)
            else:
                report.failed += 1
    return report


def stale_work(ctx: QueueContext) -> tuple[dict[str, list[str]], list[int]]:
    """Work whose worker died: lapsed claims (profiles by digest day, to build again) and
    pending deliveries nobody holds that have waited longer than a send lease (to send)."""
    now = ctx.now()
    claims, pending = ctx.store().stale_work(
        now=now, idle_since=now - dt.timedelta(seconds=ctx.settings.send_lease))
    by_day: dict[str, list[str]] = {}
    for profile, key in claims:
        by_day.setdefault(key, []).append(profile)
    return by_day, pending
