"""The facade: everything digest does, as a library, wired from a configuration.

The command line, the scheduler and the server all go through `DigestApp`; each method does one
job (ingest, rank, run, explain, feedback) and returns plain results.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .config import Config
from .deliver import Deliverer, DeliverySettings, RunResult
from .errors import DigestError
from .http import HttpClient
from .ingest import IngestContext, ProgressHook, Source, ingest
from .mailer import EmlTransport, SmtpSettings, SmtpTransport, Transport
from .modelstore import LoadedModel, ModelCache, ensure, model_dir, recommender
from .profiles import MIN_SCORE_DEPRECATED, Profile, ProfileSet, load_profiles
from .recommend import Ranking
from .render import Links, Renderer
from .store import Store
from .tokens import Keyring
from .types import Recommendation, SourceResult

Clock = Callable[[], dt.datetime]

log = logging.getLogger(__name__)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class DigestApp:
    """digest over one store, one profiles folder and one configuration."""

    config: Config
    db_url: str
    profiles_dir: str
    clock: Clock = utc_now
    transport: Transport | None = None  # None: from config (SMTP, else .eml files)
    #: The HTTP client for arXiv and Hugging Face; tests give one with a fake transport.
    http_factory: Callable[[], HttpClient] | None = None
    #: Keeps the model loaded between runs (the scheduler); None loads it for each run.
    models: ModelCache | None = None
    #: Where one-line notices go (why the model is fitted, its progress); None: logging.
    notice: Callable[[str], None] | None = None

    # -- plumbing -------------------------------------------------------------------------------

    def open_store(self) -> Store:
        return Store.open(self.db_url)

    @property
    def out_dir(self) -> Path:
        return Path(self.config.out_dir)

    def profiles(self, names: Sequence[str] = ()) -> ProfileSet:
        """Profiles of the folder; with `names`, only those (unknown names are errors)."""
        found = load_profiles(self.profiles_dir)
        keep_names = set(names) or set(found.paths)
        for profile in found.profiles:
            if profile.min_score is not None and profile.name in keep_names:
                log.warning("%s: warning: %s", found.paths[profile.name],
                            MIN_SCORE_DEPRECATED.format(relevance=profile.min_relevance))
        if not names:
            return found
        # A profile is named by its identity or by its file name (they differ after a rename).
        by_file = {path.stem: name for name, path in found.paths.items()}
        names = [n if n in found.paths else by_file.get(n, n) for n in names]
        missing = [n for n in names if found.get(n) is None and n not in _error_names(found)]
        if missing:
            known = ", ".join(sorted(found.paths)) or "none"
            raise DigestError(f"no profile named {', '.join(map(repr, missing))} in "
                              f"{self.profiles_dir} (profiles: {known})")
        keep = set(names)
        return ProfileSet(
            tuple(p for p in found.profiles if p.name in keep),
            tuple(e for e in found.errors if Path(e.path).stem in keep),
            {k: v for k, v in found.paths.items() if k in keep},
        )

    def keyring(self) -> Keyring | None:
        """The link-signing keys from the environment; None without a current secret."""
        secret = self.config.secret()
        if not secret:
            return None
        return Keyring(secret, self.config.previous_secrets(),
                       self.config.server.previous_secrets_until)

    def links(self) -> Links:
        keys = self.keyring()
        base = self.config.server.public_url
        if not base or keys is None:
            return Links(None)
        return Links(base, lambda profile: keys.sign(profile, "act"),
                     lambda profile: keys.sign(profile, "feed"), keys.sign_vote)

    def renderer(self) -> Renderer:
        return Renderer(templates_dir=self.config.templates_dir, links=self.links())

    def make_transport(self) -> Transport:
        if self.transport is not None:
            return self.transport
        smtp = self.config.smtp
        if smtp is None:
            return EmlTransport(self.out_dir)
        return SmtpTransport(SmtpSettings(
            host=smtp.host, port=smtp.port, security=smtp.security, user=smtp.user,
            password_env=smtp.password_env, timeout=smtp.timeout, retries=smtp.retries,
        ))

    def model(self, store: Store, *, force: bool = False) -> LoadedModel:
        if self.models is not None and not force:
            return self.models.get(store, model_dir(self.out_dir), now=self.clock(),
                                   notify=self.notice)
        return ensure(store, model_dir(self.out_dir), now=self.clock(), force=force,
                      notify=self.notice)

    # -- jobs ------------------------------------------------------------------------------------

    def ingest(self, sources: Sequence[Source], *, today: dt.date | None = None,
               progress: ProgressHook | None = None) -> list[SourceResult]:
        now = self.clock()
        http = self.http()
        with self.open_store() as store, http, store.locked("ingest", now=now):
            ctx = IngestContext(now=now, today=today or now.date(), http=http, store=store)
            return ingest(store, sources, ctx, progress=progress)

    def http(self) -> HttpClient:
        if self.http_factory is not None:
            return self.http_factory()
        return HttpClient(contact=self.config.http.contact, timeout=self.config.http.timeout,
                          max_retries=self.config.http.retries)

    def rank(self, profiles: Sequence[Profile], *, until: dt.date | None = None,
             since: dt.date | None = None, top: int | None = None) -> list[Ranking]:
        """Rank without writing anything (the ledger and the profiles stay as they are)."""
        with self.open_store() as store:
            ranker = recommender(store, self.model(store),
                                 first_digest_days=self.config.first_digest_days)
            return ranker.rank(profiles, until=until or self.clock().date(), since=since,
                               top=top)

    def run(self, profiles: Sequence[Profile], *, day: dt.date | None = None,
            dry_run: bool = False) -> list[RunResult]:
        """Build, render and deliver the due digests of `day` (default today)."""
        day = day or self.clock().date()
        if self.config.server.public_url and self.keyring() is None and not dry_run:
            # Mail without its List-Unsubscribe link cannot be taken back: refuse instead.
            raise DigestError(
                f"server.public_url is set but the secret that signs its links is not: set "
                f"the environment variable {self.config.server.secret_env} (as `digest serve` "
                f"has it), or remove public_url to send digests without links; nothing was sent"
            )
        with self.open_store() as store, contextlib.ExitStack() as stack:
            if not dry_run:
                stack.enter_context(store.locked("run", now=self.clock()))
            loaded = self.model(store)
            ranker = recommender(store, loaded,
                                 first_digest_days=self.config.first_digest_days)

            def rank(due: Sequence[Profile],
                     until: dt.date) -> dict[str, list[Recommendation]]:
                return {r.profile: r.items for r in ranker.rank(due, until=until)}

            deliverer = self.deliverer(store, self.make_transport())
            return deliverer.run(profiles, day, rank, dry_run=dry_run)

    def deliverer(self, store: Store, transport: Transport,
                  renderer: Renderer | None = None) -> Deliverer:
        """Delivery through `transport` with the configured sender, list and feeds."""
        return Deliverer(
            store, renderer or self.renderer(), transport,
            DeliverySettings(
                out_dir=self.out_dir, sender=self.config.email.sender,
                list_id=self.config.email.list_id,
                unsubscribe_mailto=self.config.email.unsubscribe_mailto,
                feed_window_days=self.config.feeds.window_days,
                feed_max_items=self.config.feeds.max_items,
            ),
            clock=self.clock,
        )


def _error_names(found: ProfileSet) -> set[str]:
    return {Path(e.path).stem for e in found.errors}
