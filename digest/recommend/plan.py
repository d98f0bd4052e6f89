"""Planning: each profile resolved against the store before scoring (its interests, seeds,
window, exclusions), and the result of a ranking."""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..profiles import Profile
from ..store import PaperRef, Store
from ..types import Paper, Recommendation

#: Name of the implicit interest made of the profile's own seed and liked papers.
SEED_INTEREST = "seed papers"


def paper_text(paper: Paper) -> str:
    """What a paper is scored on: its clean title and abstract."""
    return f"{paper.title} {paper.abstract}"


def normalize_author(name: str) -> str:
    """Author names compared without case, accents, dots or extra spaces."""
    text = name.casefold()
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(text.replace(".", " ").replace("-", " ").split())


@dataclass
class Ranking:
    """The result of ranking one profile."""

    profile: str
    items: list[Recommendation]
    #: Problems that did not stop the ranking (a seed paper not in the store ...).
    warnings: list[str] = field(default_factory=list)
    #: Candidates considered (after the window, ledger and category filters).
    considered: int = 0


@dataclass
class Plan:
    """One profile, resolved against the store."""

    profile: Profile
    interests: list[str]
    weights: list[float]
    texts: list[str]
    seeds: list[list[PaperRef]]  # per interest
    all_seeds: list[PaperRef]
    disliked: list[PaperRef]
    exclude: set[int]
    followed: dict[str, str]  # normalized -> as written
    since: dt.date
    warnings: list[str]


def make_plans(store: Store, profiles: Sequence[Profile], *, until: dt.date,
               since: dt.date | None, first_digest_days: int) -> list[Plan]:
    """Each profile resolved against the store: seed references, the window (its last digest,
    `since`, or `first_digest_days` back from `until`), the papers it must not get again."""
    refs: set[str] = set()
    for profile in profiles:
        refs.update(profile.seed_papers, profile.liked, profile.disliked)
        for interest in profile.interests:
            refs.update(interest.seed_papers)
    resolved = store.find_refs(refs)
    names = [p.name for p in profiles]
    default_start = until - dt.timedelta(days=first_digest_days)
    covered = {} if since else store.last_covered(names)
    earliest = min([since or default_start, *covered.values()])
    sent = store.sent_pids_many(names, announced_from=earliest)
    plans = []

    def find(ref_list: Iterable[str], where: str, warnings: list[str]) -> list[PaperRef]:
        found = []
        for ref in ref_list:
            paper = resolved.get(ref)
            if paper is None:
                warnings.append(f"{where}: paper {ref!r} is not in the store")
            else:
                found.append(paper)
        return found

    for profile in profiles:
        warnings: list[str] = []

        interests, weights, texts, seeds = [], [], [], []
        for interest in profile.interests:
            interests.append(interest.name)
            weights.append(interest.weight)
            texts.append(interest.text)
            seeds.append(find(interest.seed_papers, f"interest {interest.name!r}", warnings))
        own = (find(profile.seed_papers, "seed_papers", warnings)
               + find(profile.liked, "liked", warnings))
        if own:
            interests.append(SEED_INTEREST)
            weights.append(1.0)
            texts.append("")
            seeds.append(own)
        disliked = find(profile.disliked, "disliked", warnings)
        all_seeds = [p for group in seeds for p in group]
        exclude = set(sent.get(profile.name, set()))
        exclude.update(p.pid for p in all_seeds)
        exclude.update(p.pid for p in disliked)
        start = since or covered.get(profile.name) or default_start
        plans.append(Plan(
            profile, interests, weights, texts, seeds, all_seeds, disliked, exclude,
            {normalize_author(a): a for a in profile.authors}, start, warnings,
        ))
    return plans


def rank_json(ranking: Ranking) -> dict[str, Any]:
    """The ranking contract: ``{"profile", "papers": [{"id", "title", "score", "cosine",
    "why"}]}``. ``score`` is the calibrated relevance (what ``min_relevance`` thresholds),
    ``cosine`` the raw similarity to the best interest (also ``why.similarity``)."""
    return {
        "profile": ranking.profile,
        "papers": [
            {"id": r.paper.key, "title": r.paper.title, "score": round(r.score, 4),
             "cosine": round(r.why.similarity, 4), "why": r.why.as_dict()}
            for r in ranking.items
        ],
        "warnings": ranking.warnings,
    }
