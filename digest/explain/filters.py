"""The filters of `explain`: every reason a paper is not a candidate of a profile, in the order
the recommender applies them (window, ledger, own papers, categories)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from ..profiles import Profile
from ..store import Store
from ..types import Paper


@dataclass
class Facts:
    """What `explain` learns about the paper on the way through the filters."""

    profile: Profile
    paper: Paper
    start: dt.date
    until: dt.date
    sent_in: str | None = None
    sent_at: dt.datetime | None = None

    def filters(self, store: Store, *, since: dt.date | None,
                first_digest_days: int) -> tuple[list[str], list[str]]:
        """Reasons and causes of every filter that keeps the paper out, in the recommender's
        order."""
        profile, paper = self.profile, self.paper
        reasons: list[str] = []
        causes: list[str] = []
        window = f"{self.start.isoformat()} to {self.until.isoformat()}"
        if paper.announced is not None and paper.announced < self.start:
            if since is not None:
                began = f"--since {since.isoformat()}"
            elif (last := store.last_covered([profile.name]).get(profile.name)) is not None:
                began = f"its last digest covered papers up to {last.isoformat()}"
            else:
                began = f"a first digest covers the last {first_digest_days} days"
            causes.append("before_window")
            reasons.append(f"It was announced on {paper.announced.isoformat()}, before the "
                           f"profile's window ({window}; {began}).")
        if paper.announced is not None and paper.announced > self.until:
            causes.append("after_until")
            reasons.append(f"It was announced on {paper.announced.isoformat()}, after the "
                           f"window's end {self.until.isoformat()}.")
        if paper.pid in store.sent_pids(profile.name):
            carried = [d for d in store.deliveries_of(profile.name)
                       if paper.pid in d.pids and d.status == "sent"]
            first = min(carried, key=lambda d: d.sent_at or d.created_at, default=None)
            causes.append("already_sent")
            if first is None:
                reasons.append("It was already sent to this profile (the ledger has it).")
            else:
                self.sent_in, self.sent_at = first.key, first.sent_at
                when = f" on {first.sent_at:%Y-%m-%d %H:%M} UTC" if first.sent_at else ""
                reasons.append(f"It was already sent to this profile, in the digest of "
                               f"{first.key}{when}.")
        own = _own_lists(store, profile, paper)
        if own:
            causes.append("own_paper")
            reasons.append(f"It is one of the profile's own papers ({'; '.join(own)}), which "
                           "are never recommended back.")
        if profile.categories and not set(paper.categories) & set(profile.categories):
            causes.append("category")
            cats = ", ".join(paper.categories) or "none"
            reasons.append(f"Its categories ({cats}) are outside the profile's "
                           f"({', '.join(profile.categories)}).")
        return reasons, causes


def _own_lists(store: Store, profile: Profile, paper: Paper) -> list[str]:
    """Where the profile names the paper: ``liked as '2506.01234'`` ..."""
    lists: list[tuple[str, Sequence[str]]] = [
        (f"seed paper of interest {i.name!r}", i.seed_papers) for i in profile.interests
    ]
    lists += [("seed_papers", profile.seed_papers), ("liked", profile.liked),
              ("disliked", profile.disliked)]
    resolved = store.resolve_refs({ref for _, refs in lists for ref in refs})
    out = []
    for label, refs in lists:
        for ref in refs:
            found = resolved.get(ref)
            if found is not None and found.pid == paper.pid:
                out.append(f"{label} as {ref!r}")
    return out
