"""Why a paper is, or is not, in a profile's digest.

`explain` replays one profile's ranking with the recommender's own steps (`Recommender._plans`,
``candidates``, ``_batch``, ``_score_chunk``, ``_choose``), so what it says agrees with
``digest rank`` for that profile alone. It then checks every filter the paper meets on the way,
in the order the recommender applies them, and reports each one that applies:

1. the window: announced before the profile's window starts (its last digest, ``--since``, or
   ``first_digest_days`` back) or after `until`;
2. the ledger: already sent to the profile (which digest, when);
3. the profile's own seed, liked or disliked papers;
4. the profile's categories;
5. the score: below ``min_relevance``, past ``max_papers``, or thinned as a near-duplicate of a
   better paper.

The score itself is broken down whatever the filters say: the similarity to every interest
(raw cosine and calibrated relevance, weighted), what avoided terms and disliked papers took
off, the followed-author boost, and where the paper would stand among the profile's candidates.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ..errors import DigestError
from ..modelstore import recommender
from ..profiles import Profile
from ..recommend import (
    AUTHOR_BOOST,
    AVOID_MIN,
    AVOID_WEIGHT,
    DISLIKE_WEIGHT,
    Candidates,
    Recommender,
    duplicate_thresholds,
    normalize_author,
    paper_text,
)
from ..store import PaperRef
from ..types import Paper, Why
from .filters import Facts

if TYPE_CHECKING:
    from ..app import DigestApp

__all__ = [
    "Explanation",
    "InterestScore",
    "PaperNotFoundError",
    "Penalty",
    "explain",
    "explain_in",
]

#: Machine-readable causes of a paper not being chosen, in the order the recommender applies
#: the filters (`Explanation.causes`).
CAUSES = (
    "before_window", "after_until", "already_sent", "own_paper", "category",
    "no_interests", "below_min_relevance", "max_papers", "duplicate",
)


class PaperNotFoundError(DigestError, LookupError):
    """The paper to explain is not in the store."""


@dataclass(frozen=True, slots=True)
class InterestScore:
    """How similar the paper is to one interest of the profile."""

    name: str
    weight: float
    #: Cosine similarity to the interest's query vector, 0..1 (the raw figure).
    similarity: float
    #: The same similarity calibrated against the interest's background
    #: (`digest.recommend.calibrate`): -log10 of the share of papers at least this similar.
    relevance: float

    @property
    def weighted(self) -> float:
        """The relevance the ranking compares: plus ``log10(weight)``."""
        return self.relevance + math.log10(self.weight)


@dataclass(frozen=True, slots=True)
class Penalty:
    """One avoided term or disliked paper, and how much it would take off the score."""

    #: ``avoid`` or ``disliked``.
    kind: str
    #: The avoided term as written, or the disliked paper's key.
    what: str
    #: The disliked paper's title (None for an avoided term).
    title: str | None
    #: Similarity of the paper to the term or disliked paper, before weighting.
    similarity: float
    #: What it takes off the relevance (similarity x AVOID_WEIGHT or DISLIKE_WEIGHT, in the
    #: profile's relevance units); only the largest counts.
    amount: float


@dataclass(frozen=True)
class Explanation:
    """Why one paper is or is not in one profile's digest."""

    profile: str
    paper: Paper
    #: True when the paper is among the papers the digest would carry now.
    chosen: bool
    #: Human sentences: the main cause first, then every other filter that applies, then how
    #: the score came about.
    reasons: list[str]
    #: Codes of every cause that keeps the paper out (see `CAUSES`), main cause first; empty
    #: when it is chosen.
    causes: tuple[str, ...]
    #: Final score, in relevance (best weighted interest - largest penalty); None when the
    #: profile has no interest that could be scored. A followed author's paper ranks first
    #: whatever its score (`author_boost` is added to its ranking key, not to the score).
    score: float | None
    min_relevance: float
    max_papers: int
    #: Similarity to every interest of the profile (``seed papers`` for its own seeds).
    interests: tuple[InterestScore, ...]
    #: Every avoided term / disliked paper similar to the paper (largest first), and what the
    #: largest took off the score.
    penalties: tuple[Penalty, ...]
    penalty: float
    #: Followed authors who wrote the paper, and the boost they gave.
    authors: tuple[str, ...]
    author_boost: float
    #: Best interest, top terms and closest seed, as a digest would show them.
    why: Why
    #: 1-based place among the profile's candidates by score (where it would stand if it were
    #: one, when a filter keeps it out); None when there are no candidates to compare with.
    position: int | None
    #: Candidates of the profile (papers left after the window, ledger and category filters).
    considered: int
    #: The profile's window: papers announced from `window_start` to `until`, both included.
    window_start: dt.date
    until: dt.date
    #: The digest that already carried the paper (its key and when it was sent), if any.
    sent_in: str | None = None
    sent_at: dt.datetime | None = None
    #: The better paper this one was thinned as a near-duplicate of, and their similarity.
    duplicate_of: str | None = None
    duplicate_similarity: float | None = None
    #: Problems that did not stop the explanation (a seed paper not in the store ...).
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready view: the rank contract's ``id, title, score, why`` and the rest."""
        return {
            "profile": self.profile,
            "id": self.paper.key,
            "title": self.paper.title,
            "announced": _iso(self.paper.announced),
            "categories": list(self.paper.categories),
            "chosen": self.chosen,
            "causes": list(self.causes),
            "reasons": list(self.reasons),
            "score": _round(self.score),
            "min_relevance": self.min_relevance,
            "max_papers": self.max_papers,
            "position": self.position,
            "considered": self.considered,
            "window": {"from": self.window_start.isoformat(), "to": self.until.isoformat()},
            "interests": [
                {"name": s.name, "weight": s.weight, "similarity": _round(s.similarity),
                 "relevance": _round(s.relevance), "weighted": _round(s.weighted)}
                for s in self.interests
            ],
            "penalty": _round(self.penalty),
            "penalties": [
                {"kind": p.kind, "what": p.what, "title": p.title,
                 "similarity": _round(p.similarity), "amount": _round(p.amount)}
                for p in self.penalties
            ],
            "authors": list(self.authors),
            "author_boost": _round(self.author_boost),
            "why": self.why.as_dict(),
            "sent": None if self.sent_in is None and self.sent_at is None else {
                "digest": self.sent_in, "at": _iso(self.sent_at),
            },
            "duplicate_of": None if self.duplicate_of is None else {
                "id": self.duplicate_of, "similarity": _round(self.duplicate_similarity),
            },
            "warnings": list(self.warnings),
        }

    def format_text(self) -> str:
        """The explanation for a terminal: verdict, reasons, then the numbers (`warnings`
        are left to the caller, as ``digest rank`` prints them on stderr)."""
        verdict = "chosen" if self.chosen else "not chosen"
        lines = [f"{self.paper.key}  {self.paper.title}",
                 f"profile {self.profile}: {verdict}", ""]
        lines += [f"- {reason}" for reason in self.reasons]
        lines += ["", "relevance by interest (+ log10 of its weight), from the raw cosine:"]
        width = max([len(s.name) for s in self.interests] + [8])
        best = max(self.interests, key=lambda s: s.weighted, default=None)
        for s in self.interests:
            mark = "  <- best" if s is best else ""
            value = (f"{s.relevance:.2f} + log10({s.weight:g}) = {s.weighted:.2f}"
                     if s.weight != 1 else f"{s.relevance:.2f}")
            lines.append(f"  {s.name:<{width}}  {value}  (cosine {s.similarity:.3f}){mark}")
        if not self.interests:
            lines.append("  (none: the profile has no interest that could be scored)")
        for p in self.penalties:
            label = f"avoid {p.what!r}" if p.kind == "avoid" else f"disliked {p.what}"
            lines.append(f"  {label:<{width}}  -{p.amount:.2f}")
        score = "-" if self.score is None else f"{self.score:.2f}"
        lines.append(f"  {'score':<{width}}  {score} (min_relevance {self.min_relevance:g})")
        if self.author_boost:
            lines.append(f"  {'authors':<{width}}  ranked first, past min_relevance "
                         f"({', '.join(self.authors)})")
        return "\n".join(lines)


def explain(ranker: Recommender, profile: Profile, paper_key: str, *, until: dt.date,
            since: dt.date | None = None) -> Explanation:
    """Explain why the paper `paper_key` (an arXiv id in any form, another stored id, or an
    exact title) is or is not in `profile`'s digest for the window ending `until`.

    `since` overrides the window start as ``digest rank --since`` does. Raises
    `PaperNotFoundError` when the store does not hold the paper. Writes nothing.
    """
    store = ranker.store
    paper = store.resolve_refs([paper_key]).get(paper_key)
    if paper is None:
        raise PaperNotFoundError(
            f"{store.url}: no paper {paper_key!r} in the store (give an arXiv id, another id "
            "the store knows, or the exact title)"
        )
    (plan,) = ranker._plans([profile], until=until, since=since)
    facts = Facts(profile, paper, plan.since, until)

    # The score, broken down, on the paper alone: it exists whatever the filters say.
    alone = ranker._batch([plan], _alone(ranker, paper, until))
    alone_queries = ranker._queries(alone, 0, 1)
    queries, calibration = alone_queries.matrix, alone_queries.calibration
    vec = alone.candidates.vectors[0]
    sims = np.asarray((queries @ vec.T).todense(), dtype=np.float64).ravel()
    interests = tuple(
        InterestScore(name, float(w), float(s), calibration.relevance(n, float(s)))
        for n, (name, w, s) in enumerate(zip(plan.interests, plan.weights, sims, strict=True))
    )
    scale = float(calibration.scale.mean()) if len(calibration) else 0.0
    penalties = _penalties(alone.penalties, vec, profile.avoid, plan.disliked,
                           paper_text(paper).casefold(), scale)
    penalty = max([p.amount for p in penalties] + [0.0])
    followed = {normalize_author(a) for a in paper.authors} & plan.followed.keys()
    authors = tuple(plan.followed[normalize_author(a)] for a in paper.authors
                    if normalize_author(a) in followed)
    boost = AUTHOR_BOOST if followed else 0.0
    score = (max(s.weighted for s in interests) - penalty) if interests else None
    (alone_item,) = ranker._explain(alone, 0, queries, calibration,
                                    np.array([0], dtype=np.int64),
                                    np.array([(score or 0.0) + boost], dtype=np.float32))
    why = alone_item.why
    key = None if score is None else score + boost  # what the ranking sorts and thresholds

    # The ranking as `digest rank PROFILE` does it.
    candidates = ranker.candidates(plan.since, until)
    chosen = False
    position: int | None = None
    considered = 0
    duplicate: tuple[str, float, float] | None = None
    past_limit = False
    if candidates.papers:
        batch = ranker._batch([plan], candidates)
        scores, ranked_queries = ranker._score_chunk(batch, 0, 1)
        row = scores[0]
        finite = np.isfinite(row)
        considered = int(finite.sum())
        items = ranker._choose(batch, 0, row, ranked_queries.at(0),
                               ranked_queries.calibration_at(0), limit=profile.max_papers,
                               floor=profile.min_relevance)
        picked = next((r for r in items if r.paper.pid == paper.pid), None)
        j = candidates.index.get(paper.pid)
        if j is not None and finite[j]:
            key = float(row[j])
            score = key - boost  # exactly what `rank` reports
            if picked is not None:
                chosen, why = True, picked.why
            elif key >= profile.min_relevance:
                duplicate, past_limit = _thinned(row, j, candidates, profile.max_papers,
                                                 profile.min_relevance)
        if key is not None and considered:
            position = 1 + int((row[finite] > np.float32(key)).sum())

    reasons, causes = facts.filters(store, since=since,
                                     first_digest_days=ranker.first_digest_days)
    filtered = bool(causes)
    if not interests:
        causes.append("no_interests")
        reasons.append("The profile has no interest that could be scored: none of its seed "
                       "papers is in the store and it has no interest text.")
    elif key is not None and score is not None and key < profile.min_relevance:
        causes.append("below_min_relevance")
        reasons.append(f"Its relevance {score:.2f} is below the profile's min_relevance "
                       f"{profile.min_relevance:g}.")
    elif duplicate is not None:
        causes.append("duplicate")
        reasons.append(f"It was thinned as a near-duplicate of {duplicate[0]}, a better paper "
                       f"in the digest (similarity {duplicate[1]:.2f} > {duplicate[2]:g}).")
    elif past_limit or not (filtered or chosen):
        causes.append("max_papers")
        reasons.append(f"It ranks {_place(position, considered)}: below the cut of "
                       f"max_papers {profile.max_papers}.")
    if chosen and score is not None:
        reasons.insert(0, f"Chosen: it ranks {_place(position, considered)} with relevance "
                          f"{score:.2f} (min_relevance {profile.min_relevance:g}, max_papers "
                          f"{profile.max_papers}).")
    elif filtered and position is not None and score is not None:
        reasons.append(f"Were it a candidate, it would rank {_place(position, considered)} "
                       f"with relevance {score:.2f}.")
    reasons += _score_reasons(interests, penalties, authors, why)
    return Explanation(
        profile=profile.name, paper=paper, chosen=chosen, reasons=reasons, causes=tuple(causes),
        score=score, min_relevance=profile.min_relevance, max_papers=profile.max_papers,
        interests=interests, penalties=penalties, penalty=penalty, authors=authors,
        author_boost=boost, why=why, position=position, considered=considered,
        window_start=plan.since, until=until, sent_in=facts.sent_in, sent_at=facts.sent_at,
        duplicate_of=duplicate[0] if duplicate else None,
        duplicate_similarity=duplicate[1] if duplicate else None,
        warnings=tuple(plan.warnings),
    )


def explain_in(app: DigestApp, profile: Profile, paper_key: str, *,
               until: dt.date | None = None, since: dt.date | None = None) -> Explanation:
    """`explain` with the store, text model and settings of `app` (as `DigestApp.rank`);
    `until` defaults to the app's today."""
    with app.open_store() as store:
        ranker = recommender(store, app.model(store),
                             first_digest_days=app.config.first_digest_days)
        return explain(ranker, profile, paper_key, until=until or app.clock().date(),
                       since=since)


# -- the score ----------------------------------------------------------------------------------


def _alone(ranker: Recommender, paper: Paper, until: dt.date) -> Candidates:
    """Candidates holding just `paper`, to score it whatever the filters say."""
    return Candidates(
        [paper], ranker.model.transform([paper_text(paper)]),
        np.array([(paper.announced or until).toordinal()], dtype=np.int64),
        [frozenset(paper.categories)],
        {normalize_author(a): [0] for a in paper.authors}, {paper.pid: 0},
    )


def _penalties(rows: sp.csr_matrix, vec: sp.csr_matrix, avoid: Sequence[str],
               disliked: Sequence[PaperRef], text: str, scale: float) -> tuple[Penalty, ...]:
    """Every penalty row (avoided terms, then disliked papers, as
    `Recommender._penalties` lays them out) that the paper is similar to, largest first; an
    avoided phrase in the paper's `text` (casefolded) takes off at least AVOID_MIN. Amounts
    are cosines times `scale` (the profile's relevance per unit of cosine)."""
    if rows.shape[0] == 0:
        return ()
    amounts = np.asarray((rows @ vec.T).todense(), dtype=np.float64).ravel()
    for n, term in enumerate(avoid):
        if term.casefold() in text:
            amounts[n] = max(amounts[n], AVOID_MIN)
    out = []
    for n, amount in enumerate(amounts):
        if amount <= 0:
            continue
        if n < len(avoid):
            out.append(Penalty("avoid", avoid[n], None, float(amount) / AVOID_WEIGHT,
                               float(amount) * scale))
        else:
            d = disliked[n - len(avoid)]
            out.append(Penalty("disliked", d.key, d.title, float(amount) / DISLIKE_WEIGHT,
                               float(amount) * scale))
    return tuple(sorted(out, key=lambda p: -p.amount))


def _thinned(row: npt.NDArray[np.float32], j: int, candidates: Candidates, limit: int,
             floor: float) -> tuple[tuple[str, float, float] | None, bool]:
    """Why candidate `j`, above the floor, was not chosen: (the better paper it duplicates and
    their similarity, or None; whether the digest was full before it). The same greedy walk as
    `Recommender._choose`."""
    order = np.argsort(-row, kind="stable")
    order = order[np.isfinite(row[order]) & (row[order] >= floor)]
    vectors = candidates.vectors
    chosen: list[int] = []
    for k in order:
        if len(chosen) >= limit:
            return None, True
        if chosen:
            sims = np.asarray((vectors[chosen] @ vectors[int(k)].T).todense()).ravel()
            limits = duplicate_thresholds(candidates.short[[*chosen, int(k)]])[-1, :-1]
            best = int(np.argmax(sims - limits))
            if sims[best] > limits[best]:
                if k == j:
                    return (candidates.papers[chosen[best]].key, float(sims[best]),
                            float(limits[best])), False
                continue
        if k == j:
            return None, False
        chosen.append(int(k))
    return None, False


def _score_reasons(interests: Sequence[InterestScore], penalties: Sequence[Penalty],
                   authors: Sequence[str], why: Why) -> list[str]:
    out: list[str] = []
    if interests:
        best = max(interests, key=lambda s: s.weighted)
        terms = f" (shared terms: {', '.join(why.terms)})" if why.terms else ""
        weight = f", weight {best.weight:g}" if best.weight != 1 else ""
        out.append(f"Best interest: {best.name!r}, relevance {best.relevance:.2f} (cosine "
                   f"{best.similarity:.3f}){weight}{terms}.")
        others = [s for s in interests if s is not best]
        if others:
            out.append("Other interests: " + ", ".join(
                f"{s.name!r} {s.weighted:.2f}" for s in others) + ".")
    if penalties:
        top = penalties[0]
        label = (f"avoided term {top.what!r}" if top.kind == "avoid"
                 else f"disliked paper {top.what} ({top.title})")
        out.append(f"Pushed down by {top.amount:.2f} for the {label}"
                   + (f"; also similar: {', '.join(p.what for p in penalties[1:])}"
                      if len(penalties) > 1 else "") + ".")
    if authors:
        out.append(f"Ranked first, past min_relevance: by followed author(s) "
                   f"{', '.join(authors)}.")
    if why.seed_key is not None and why.seed_similarity is not None:
        out.append(f"Closest seed paper: {why.seed_key} {why.seed_title!r} (similarity "
                   f"{why.seed_similarity:.3f}).")
    return out


def _place(position: int | None, considered: int) -> str:
    if position is None:
        return "nowhere (no candidates)"
    return f"{position} of {considered} candidates"


def _round(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 4)


def _iso(value: dt.date | dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()
