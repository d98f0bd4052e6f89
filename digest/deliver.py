"""One run: rank, render and deliver each due profile's digest, with the ledger.

For each profile (in its own try, so one failure never stops the others):

1. A digest already completed for the run's key (the day) is skipped; one left ``pending`` by
   a crash is resent with exactly the recorded bytes and Message-ID.
2. Otherwise its papers are ranked, rendered once, and recorded as ``pending`` with the message
   bytes and the markdown, before anything leaves.
3. The markdown is written beside its file; the email is handed to the transport (SMTP, or an
   ``.eml`` file when no SMTP is configured); the markdown is moved into place and, in one
   transaction, the delivery is marked sent and its papers sent to the profile. So an output
   folder that cannot be written fails the digest before its email leaves (an email cannot be
   unsent, and would go again with every run), and a markdown file lands only with its email.
   Feeds are rewritten from the ledger afterwards.

A crash between the server's acceptance and that commit gives one duplicate message on the next
run, never a paper recorded as sent that did not leave. A run holds the store's ``run`` lock so
two runs never send at once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DeliveryError, DigestError
from .fsutil import staged
from .mailer import Transport, build_message, make_message_id
from .profiles import Profile
from .render import FeedItem, Renderer
from .store import Delivery, Store
from .types import Digest, Recommendation, Why

#: Ranks the due profiles for a day: name -> recommendations, best first.
Ranker = Callable[[Sequence[Profile], dt.date], Mapping[str, Sequence[Recommendation]]]


@dataclass
class RunResult:
    """What a run did for one profile (one line of ``digest run --json``)."""

    profile: str
    status: str  # sent | empty | failed | skipped | would send (dry run)
    papers: list[str] = field(default_factory=list)
    message_id: str | None = None
    files: list[str] = field(default_factory=list)
    error: str | None = None
    #: The digest left but its feeds could not be written (also said in `error`).
    feeds_failed: bool = False

    @property
    def ok(self) -> bool:
        """Whether everything the profile asked for was done (a skip is fine)."""
        return self.status != "failed" and not self.feeds_failed

    def as_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "status": self.status,
            "papers": self.papers,
            "message_id": self.message_id,
            "files": self.files,
            "error": self.error,
        }


@dataclass(frozen=True)
class Built:
    """A digest rendered for the ledger: what `record_delivery` takes, before it is sent."""

    key: str
    message_id: str | None
    message: bytes | None
    markdown: str | None
    items: list[dict[str, Any]]


@dataclass
class DeliverySettings:
    out_dir: Path
    sender: str
    list_id: str
    unsubscribe_mailto: str | None = None
    feed_window_days: int = 30
    feed_max_items: int = 100


def why_from(data: Mapping[str, Any] | None) -> Why | None:
    if not data:
        return None
    seed = data.get("seed") or {}
    return Why(
        interest=str(data.get("interest", "")),
        similarity=float(data.get("similarity", 0.0)),
        terms=tuple(data.get("terms", ())),
        authors=tuple(data.get("authors", ())),
        seed_key=seed.get("id"),
        seed_title=seed.get("title"),
        seed_similarity=seed.get("similarity"),
        penalties=tuple(data.get("penalties", ())),
    )


class Deliverer:
    """Runs digests for profiles against one store, renderer and transport."""

    def __init__(
        self,
        store: Store,
        renderer: Renderer,
        transport: Transport,
        settings: DeliverySettings,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.store = store
        self.renderer = renderer
        self.transport = transport
        self.settings = settings
        self.clock = clock

    # -- the run -------------------------------------------------------------------------------

    def run(
        self, profiles: Sequence[Profile], day: dt.date, ranker: Ranker, *, dry_run: bool = False
    ) -> list[RunResult]:
        """Deliver the digest of `day` to each profile; results in the order given.

        Digests of earlier days left pending (a crash after the server accepted them, or a
        temporary failure) are resent first, with their recorded bytes; a profile whose earlier
        digest still cannot leave gets no new one, so its papers are never offered twice.
        """
        results: dict[str, RunResult] = {}
        unsubscribed = self.store.unsubscribed()
        active = [p for p in profiles if p.name not in unsubscribed]
        for profile in profiles:
            if profile.name in unsubscribed:
                results[profile.name] = RunResult(profile.name, "skipped",
                                                  error="unsubscribed")
        with self.transport:
            if not dry_run:
                self._resend_earlier(active, day, results)
            due: list[Profile] = []
            resume: dict[str, Delivery] = {}
            for profile in active:
                if profile.name in results:
                    continue
                existing = (None if dry_run
                            else self.store.get_delivery(profile.name, day.isoformat()))
                if existing is None or existing.status == "failed":
                    due.append(profile)
                elif existing.status == "pending":
                    resume[profile.name] = existing
                else:
                    results[profile.name] = RunResult(
                        profile.name, "skipped", papers=[],
                        message_id=existing.message_id, files=list(existing.files),
                        error=f"already {existing.status} for {day.isoformat()}",
                    )
            ranked: Mapping[str, Sequence[Recommendation]] = ranker(due, day) if due else {}
            for profile in active:
                if profile.name in results:
                    continue
                try:
                    if profile.name in resume:
                        result = self.send(profile, resume[profile.name], dry_run=False)
                    else:
                        items = list(ranked.get(profile.name, ()))
                        result = self._deliver(profile, day, items, dry_run=dry_run)
                except DigestError as exc:
                    result = RunResult(profile.name, "failed", error=str(exc))
                results[profile.name] = result
                if not dry_run:
                    self.store.heartbeat("run", now=self.clock())
        for profile in profiles:
            if "rss" in profile.formats and results[profile.name].status != "failed":
                try:
                    results[profile.name].files.extend(self.write_feeds(profile, dry_run=dry_run))
                except DigestError as exc:
                    results[profile.name].error = f"feeds not written: {exc}"
                    results[profile.name].feeds_failed = True
        return [results[p.name] for p in profiles]

    def _resend_earlier(self, profiles: Sequence[Profile], day: dt.date,
                        results: dict[str, RunResult]) -> None:
        pending = self.store.pending_deliveries([p.name for p in profiles])
        for profile in profiles:
            for delivery in pending.get(profile.name, ()):
                if delivery.key == day.isoformat():
                    continue  # resumed as today's digest
                try:
                    result = self.send(profile, delivery, dry_run=False)
                except DigestError as exc:
                    result = RunResult(profile.name, "failed", error=str(exc))
                if result.status != "sent":
                    results[profile.name] = RunResult(
                        profile.name, "failed",
                        error=f"the digest of {delivery.key} is still pending: {result.error}",
                    )
                    break
                self.store.heartbeat("run", now=self.clock())

    def build(self, profile: Profile, day: dt.date, items: Sequence[Recommendation], *,
              now: dt.datetime) -> Built | None:
        """Render the digest of `day` with `items` as it will be recorded and sent; None when
        there is nothing to send (no papers and the profile does not want empty digests)."""
        if not items and not profile.send_empty:
            return None
        digest = Digest(profile.name, day.isoformat(), day, tuple(items), now)
        message = message_id = None
        if "email" in profile.formats and profile.email is not None:
            rendered = self.renderer.email(digest, profile)
            message_id = make_message_id(_domain(self.settings.sender))
            message = build_message(
                sender=self.settings.sender, to=profile.email or "", subject=rendered.subject,
                text=rendered.text, html=rendered.html, message_id=message_id, date=now,
                list_id=self.settings.list_id,
                unsubscribe_url=self.renderer.links.unsubscribe(profile.name),
                unsubscribe_mailto=self.settings.unsubscribe_mailto,
            )
        markdown = self.renderer.markdown(digest, profile) if "markdown" in profile.formats \
            else None
        if "rss" in profile.formats and items:
            # Feeds are rebuilt from the ledger after the digest is recorded as sent: a feed
            # template that fails must fail the digest now, before anything is recorded. One
            # entry shows a syntax error or a bad name; all of them would cost ~2 ms a profile.
            first = items[0]
            self.renderer.feed_entry_html(
                self.renderer.item(1, first.paper, first.why, None, profile.name))
        chosen = [{"pid": r.paper.pid, "key": r.paper.key, "score": round(r.score, 4),
                   "why": r.why.as_dict()} for r in items]
        return Built(digest.key, message_id, message, markdown, chosen)

    def _deliver(self, profile: Profile, day: dt.date, items: list[Recommendation], *,
                 dry_run: bool) -> RunResult:
        now = self.clock()
        built = self.build(profile, day, items, now=now)
        if built is None:
            if not dry_run:
                self.store.record_delivery(
                    profile=profile.name, key=day.isoformat(), covered_to=day, status="empty",
                    message_id=None, message=None, markdown=None, items=(), now=now,
                )
            return RunResult(profile.name, "empty")
        if dry_run:
            with self._writing(profile, built.key, built.message, built.markdown,
                               dry_run=True) as files:
                pass
            # A dry run sends nothing, and says so: "would send", never "sent".
            return RunResult(profile.name, "would send" if items else "empty",
                             papers=[r.paper.key for r in items], message_id=built.message_id,
                             files=files)
        delivery = self.store.record_delivery(
            profile=profile.name, key=built.key, covered_to=day, status="pending",
            message_id=built.message_id, message=built.message, markdown=built.markdown,
            items=built.items, now=now,
        )
        return self.send(profile, delivery)

    def send(self, profile: Profile, delivery: Delivery, *, dry_run: bool = False) -> RunResult:
        """Send a recorded (pending) delivery with its recorded bytes, write its markdown, and
        mark it sent with its papers; a failure is recorded as an attempt."""
        keys = [str(item.get("key", item["pid"])) for item in delivery.items]
        result = RunResult(profile.name, "sent", papers=keys, message_id=delivery.message_id)
        files: list[str] = []
        try:
            with self._writing(profile, delivery.key, None, delivery.markdown,
                               dry_run=dry_run) as written:
                if delivery.message is not None and profile.email:
                    files.append(self.transport.send(
                        profile=profile.name, sender=self.settings.sender, to=profile.email,
                        message=delivery.message, message_id=delivery.message_id or "",
                    ))
        except DeliveryError as exc:
            self.store.record_attempt(delivery.id, str(exc), permanent=exc.permanent,
                                      now=self.clock())
            result.status, result.error, result.papers = "failed", str(exc), []
            return result
        files.extend(written)
        self.store.complete_delivery(delivery.id, files=files, now=self.clock())
        result.files = files
        return result

    def _folder(self, profile: Profile, *, dry_run: bool) -> Path:
        return self.settings.out_dir / profile.name / ("dry-run" if dry_run else "")

    @contextmanager
    def _writing(self, profile: Profile, key: str, message: bytes | None, markdown: str | None,
                 *, dry_run: bool) -> Iterator[list[str]]:
        """The digest's files (`message` as ``.eml``, `markdown` as ``.md``), written when the
        block succeeds: see `_files`."""
        folder = self._folder(profile, dry_run=dry_run)
        files = [(folder / f"{key}.eml", message),
                 (folder / f"{key}.md", None if markdown is None else markdown.encode("utf-8"))]
        with _files(folder, [(path, data) for path, data in files if data is not None]) as paths:
            yield paths

    def write_feeds(self, profile: Profile, *, dry_run: bool = False) -> list[str]:
        """Write the profile's RSS and Atom feeds from the ledger, when what they would hold
        changed since they were last written (a stamp of it is kept beside them): a quiet
        day rewrites nothing, and building feeds with feedgen is paid once per change."""
        now = self.clock()
        window, most = self.settings.feed_window_days, self.settings.feed_max_items
        items = ledger_feed_items(self.store, profile, now=now, window_days=window,
                                  max_items=most)
        folder = self._folder(profile, dry_run=dry_run)
        paths = [folder / "feed.rss", folder / "feed.atom"]
        stamp = _feeds_stamp(self.renderer, profile, items, window, most)
        state = folder / ".feeds.stamp"
        try:
            unchanged = state.read_bytes() == stamp and all(p.is_file() for p in paths)
        except OSError:
            unchanged = False
        if unchanged:
            return [str(p) for p in paths]
        rss, atom = self.renderer.feeds(profile, items, window_days=window, max_items=most,
                                        now=now)
        with _files(folder, [(paths[0], rss), (paths[1], atom), (state, stamp)]) as written:
            return written[:2]


def _feeds_stamp(renderer: Renderer, profile: Profile, items: Sequence[FeedItem],
                 window_days: int, max_items: int) -> bytes:
    """What a profile's feeds are made of, hashed: their items (papers as stored, when and why
    they were sent), the links (their tokens come from the secret) and the settings."""
    import hashlib

    from . import __version__

    parts = [__version__, renderer.site_name, repr(renderer.links.feed(profile.name, "rss")),
             repr(renderer.links.feedback(profile.name, "", "like")),
             renderer.links.base_url or "", str(renderer._feed_bodies_cached()),
             profile.name, repr([i.name for i in profile.interests]),
             str(window_days), str(max_items)]
    parts += [f"{p.key}|{p.version}|{p.title}|{p.abstract}|{p.authors}|{p.categories}|{p.url}|"
              f"{p.announced}|{fi.sent_at.isoformat()}|{fi.why!r}"
              for fi in items for p in (fi.paper,)]
    return hashlib.sha256("\n".join(parts).encode("utf-8", "surrogatepass")).hexdigest().encode()


@contextmanager
def _files(folder: Path, files: Sequence[tuple[Path, bytes]]) -> Iterator[list[str]]:
    """`fsutil.staged` for a profile's folder: the files are written beside their paths now
    (DeliveryError naming the folder if they cannot be) and land when the block succeeds."""
    try:
        with staged(files):
            yield [str(path) for path, _ in files]
    except OSError as exc:
        raise DeliveryError(f"{folder}: cannot write: {exc.strerror or exc}") from exc


def ledger_feeds(store: Store, renderer: Renderer, profile: Profile, *, now: dt.datetime,
                 window_days: int, max_items: int) -> tuple[list[FeedItem], bytes, bytes]:
    """A profile's feed items from the ledger (what it was sent in the window), and its RSS and
    Atom built from them: what `digest run` writes and `digest serve` serves."""
    items = ledger_feed_items(store, profile, now=now, window_days=window_days,
                              max_items=max_items)
    rss, atom = renderer.feeds(profile, items, window_days=window_days, max_items=max_items,
                               now=now)
    return items, rss, atom


def ledger_feed_items(store: Store, profile: Profile, *, now: dt.datetime, window_days: int,
                      max_items: int) -> list[FeedItem]:
    """What the profile was sent in the window, newest digest first, as feed items."""
    rows = store.feed_items(profile.name, since=now - dt.timedelta(days=window_days),
                            limit=max_items)
    return [FeedItem(paper, sent_at, why_from(why)) for paper, sent_at, why in rows]


def _domain(sender: str) -> str:
    address = sender.rsplit("<", 1)[-1].rstrip(">").strip()
    return address.rpartition("@")[2] or "localhost"
