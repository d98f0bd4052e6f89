"""The recommender: each profile's best new papers, with the reasons.

For every profile, in one pass over all of them:

- each interest becomes a query vector: its text and the centroid of its seed papers combined
  and sharpened (`scoring.interest_queries`); an interest given only as text is expanded with
  its best-matching corpus papers (pseudo-relevance feedback). The profile's own seed and liked
  papers form one more interest, ``seed papers``;
- a paper's similarity is its best weighted interest (a narrow second interest is never
  drowned by a broad first one); avoided terms and disliked papers subtract from it, papers by
  followed authors gain a fixed boost;
- candidates are the papers announced in the profile's window (since its last digest, or
  ``--since``), minus what was sent to it, minus its own seed/liked/disliked papers, within its
  categories if it names any; then ``min_score`` and ``max_papers`` apply, and near-duplicates
  (cosine above `DUPLICATE`) are thinned.

Scoring is a chunked matrix product over profiles (`scoring.similarities`): memory stays flat
whatever the number of profiles, and there is no Python loop over papers.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from . import scoring
from .model import TextModel
from .profiles import Profile
from .store import Store
from .types import Paper, Recommendation, Why

#: Name of the implicit interest made of the profile's own seed and liked papers.
SEED_INTEREST = "seed papers"
#: Added to the score of a paper by a followed author.
AUTHOR_BOOST = 0.2
#: Multiplies the similarity to avoided terms / disliked papers subtracted from a score.
AVOID_WEIGHT = 1.0
DISLIKE_WEIGHT = 0.5
#: Two papers of one digest more similar than this: only the better one is kept.
DUPLICATE = 0.8
#: Profiles scored per chunk (memory: chunk x interests x candidates x 4 bytes).
CHUNK = 256
#: Terms shown as the reason for a match.
WHY_TERMS = 5


def paper_text(paper: Paper) -> str:
    """What a paper is scored on: its clean title and abstract."""
    return f"{paper.title} {paper.abstract}"


def normalize_author(name: str) -> str:
    """Author names compared without case, accents, dots or extra spaces."""
    text = unicodedata.normalize("NFKD", name).casefold()
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
class _Plan:
    """One profile, resolved against the store."""

    profile: Profile
    interests: list[str]
    weights: list[float]
    texts: list[str]
    seeds: list[list[Paper]]  # per interest
    all_seeds: list[Paper]
    disliked: list[Paper]
    exclude: set[int]
    followed: dict[str, str]  # normalized -> as written
    since: dt.date
    warnings: list[str]


@dataclass
class Candidates:
    """The papers scored in one ranking, and their vectors."""

    papers: list[Paper]
    vectors: sp.csr_matrix
    announced: npt.NDArray[np.int64]
    categories: list[frozenset[str]]
    by_author: dict[str, list[int]]
    index: dict[int, int]  # pid -> row


class Recommender:
    """Ranks the papers of a store for profiles with a fitted text model."""

    def __init__(self, store: Store, model: TextModel, *, first_digest_days: int = 7,
                 corpus: sp.csr_matrix | None = None,
                 corpus_pids: npt.NDArray[np.int64] | None = None) -> None:
        self.store = store
        self.model = model
        self.first_digest_days = first_digest_days
        #: Vectors of the corpus the model was fit on (for expanding text-only interests).
        self.corpus = corpus
        self.corpus_pids = corpus_pids

    # -- public --------------------------------------------------------------------------------

    def rank(
        self,
        profiles: Sequence[Profile],
        *,
        until: dt.date,
        since: dt.date | None = None,
        top: int | None = None,
    ) -> list[Ranking]:
        """Rank each profile's candidates; `since` overrides every profile's window start,
        `top` overrides ``max_papers`` and ignores ``min_score``."""
        if not profiles:
            return []
        plans = self._plans(profiles, until=until, since=since)
        start = min(p.since for p in plans)
        candidates = self.candidates(start, until)
        rankings = [Ranking(p.profile.name, [], list(p.warnings)) for p in plans]
        if not candidates.papers:
            return rankings
        queries, offsets, weights = self._queries(plans)
        penalties, pen_offsets = self._penalties(plans)
        prepared = scoring.prepare(candidates.vectors)
        for c0 in range(0, len(plans), CHUNK):
            c1 = min(c0 + CHUNK, len(plans))
            scores, best_row = self._score_chunk(
                plans[c0:c1], queries, offsets[c0 : c1 + 1], weights, penalties,
                pen_offsets[c0 : c1 + 1], candidates, prepared,
            )
            for i, plan in enumerate(plans[c0:c1]):
                ranking = rankings[c0 + i]
                row = scores[i]
                ranking.considered = int(np.isfinite(row).sum())
                limit = top or plan.profile.max_papers
                floor = -np.inf if top else plan.profile.min_score
                ranking.items = self._choose(
                    plan, row, best_row[i], queries, int(offsets[c0 + i]), candidates,
                    limit=limit, floor=floor,
                )
        return rankings

    def candidates(self, start: dt.date, until: dt.date) -> Candidates:
        papers = list(self.store.iter_papers(announced_from=start, announced_to=until))
        vectors = (self.model.transform(paper_text(p) for p in papers) if papers
                   else sp.csr_matrix((0, self.model.n_features), dtype=np.float32))
        announced = np.array(
            [(p.announced or until).toordinal() for p in papers], dtype=np.int64
        )
        by_author: dict[str, list[int]] = {}
        for i, paper in enumerate(papers):
            for name in paper.authors:
                by_author.setdefault(normalize_author(name), []).append(i)
        return Candidates(
            papers, vectors, announced, [frozenset(p.categories) for p in papers], by_author,
            {p.pid: i for i, p in enumerate(papers)},
        )

    # -- planning --------------------------------------------------------------------------------

    def _plans(self, profiles: Sequence[Profile], *, until: dt.date,
               since: dt.date | None) -> list[_Plan]:
        refs: set[str] = set()
        for profile in profiles:
            refs.update(profile.seed_papers, profile.liked, profile.disliked)
            for interest in profile.interests:
                refs.update(interest.seed_papers)
        resolved = self.store.resolve_refs(refs)
        names = [p.name for p in profiles]
        sent = self.store.sent_pids_many(names)
        covered = {} if since else self.store.last_covered(names)
        default_start = until - dt.timedelta(days=self.first_digest_days)
        plans = []

        def find(ref_list: Iterable[str], where: str, warnings: list[str]) -> list[Paper]:
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
            plans.append(_Plan(
                profile, interests, weights, texts, seeds, all_seeds, disliked, exclude,
                {normalize_author(a): a for a in profile.authors}, start, warnings,
            ))
        return plans

    def _vectors_of(self, papers: Sequence[Paper]) -> sp.csr_matrix:
        """Vectors of papers, from the saved corpus matrix where possible."""
        if not papers:
            return sp.csr_matrix((0, self.model.n_features), dtype=np.float32)
        return self.model.transform(paper_text(p) for p in papers)

    def _queries(self, plans: Sequence[_Plan]) -> tuple[sp.csr_matrix, npt.NDArray[np.int64],
                                                          npt.NDArray[np.float32]]:
        """One query row per interest of every profile, grouped per profile by `offsets`."""
        texts = [t for plan in plans for t in plan.texts]
        seed_groups = [group for plan in plans for group in plan.seeds]
        unique: dict[int, Paper] = {}
        for group in seed_groups:
            for paper in group:
                unique.setdefault(paper.pid, paper)
        order = list(unique)
        seed_matrix = self._vectors_of([unique[pid] for pid in order])
        row_of = {pid: i for i, pid in enumerate(order)}
        seed_rows = np.array([row_of[p.pid] for g in seed_groups for p in g], dtype=np.int64)
        seed_offsets = np.concatenate(([0], np.cumsum([len(g) for g in seed_groups])))
        centroids = scoring.group_means(seed_matrix, seed_offsets, rows=seed_rows)
        text_vectors = self.model.transform(texts)
        has_seeds = np.array([len(g) > 0 for g in seed_groups])
        text_only = np.flatnonzero(~has_seeds & (text_vectors.getnnz(axis=1) > 0))
        if len(text_only) and self.corpus is not None and self.corpus.shape[0] >= 50:
            expanded = scoring.expand(text_vectors[text_only], self.corpus)
            text_vectors = sp.lil_matrix(text_vectors)
            text_vectors[text_only] = expanded
            text_vectors = sp.csr_matrix(text_vectors)
        queries = scoring.interest_queries(centroids, text_vectors, idf=self.model.idf)
        offsets = np.concatenate(([0], np.cumsum([len(p.interests) for p in plans])))
        weights = np.array([w for plan in plans for w in plan.weights], dtype=np.float32)
        return queries, offsets.astype(np.int64), weights

    def _penalties(self, plans: Sequence[_Plan]) -> tuple[sp.csr_matrix, npt.NDArray[np.int64]]:
        """Rows that push papers down: each avoided term, each disliked paper (weighted)."""
        texts: list[str] = []
        disliked: list[Paper] = []
        kinds: list[str] = []
        counts = []
        for plan in plans:
            texts.extend(plan.profile.avoid)
            kinds.extend(["avoid"] * len(plan.profile.avoid))
            disliked.extend(plan.disliked)
            counts.append((len(plan.profile.avoid), len(plan.disliked)))
        avoid_m = self.model.transform(texts) if texts else None
        dislike_m = self._vectors_of(disliked) if disliked else None
        rows: list[sp.csr_matrix] = []
        a = d = 0
        for n_avoid, n_dis in counts:
            if n_avoid and avoid_m is not None:
                rows.append(avoid_m[a : a + n_avoid] * np.float32(AVOID_WEIGHT))
                a += n_avoid
            if n_dis and dislike_m is not None:
                rows.append(dislike_m[d : d + n_dis] * np.float32(DISLIKE_WEIGHT))
                d += n_dis
        offsets = np.concatenate(([0], np.cumsum([x + y for x, y in counts]))).astype(np.int64)
        matrix = (sp.csr_matrix(sp.vstack(rows, format="csr"), dtype=np.float32) if rows
                  else sp.csr_matrix((0, self.model.n_features), dtype=np.float32))
        return matrix, offsets

    # -- scoring ---------------------------------------------------------------------------------

    def _score_chunk(
        self, plans: Sequence[_Plan], queries: sp.csr_matrix, offsets: npt.NDArray[np.int64],
        weights: npt.NDArray[np.float32], penalties: sp.csr_matrix,
        pen_offsets: npt.NDArray[np.int64], candidates: Candidates,
        prepared: scoring.PreparedPapers,
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Final scores (profiles x candidates; -inf where a paper is not a candidate) and the
        query row of the best interest of each (profile, paper)."""
        n = len(candidates.papers)
        r0, r1 = int(offsets[0]), int(offsets[-1])
        scores = np.full((len(plans), n), -np.inf, dtype=np.float32)
        best_row = np.zeros((len(plans), n), dtype=np.int64)
        if r1 > r0:
            block = scoring.similarities(queries[r0:r1], prepared)
            block *= weights[r0:r1, None]
            for i in range(len(plans)):
                a, b = int(offsets[i]) - r0, int(offsets[i + 1]) - r0
                if b > a:
                    arg = np.argmax(block[a:b], axis=0)
                    best_row[i] = arg + a + r0
                    scores[i] = block[a:b][arg, np.arange(n)]
        p0, p1 = int(pen_offsets[0]), int(pen_offsets[-1])
        if p1 > p0:
            pen = scoring.similarities(penalties[p0:p1], prepared)
            for i in range(len(plans)):
                a, b = int(pen_offsets[i]) - p0, int(pen_offsets[i + 1]) - p0
                if b > a:
                    scores[i] -= np.maximum(pen[a:b].max(axis=0), 0)
        for i, plan in enumerate(plans):
            for name in plan.followed:
                hits = candidates.by_author.get(name)
                if hits:
                    scores[i, hits] += AUTHOR_BOOST
            scores[i, candidates.announced < plan.since.toordinal()] = -np.inf
            excluded = [candidates.index[pid] for pid in plan.exclude
                        if pid in candidates.index]
            if excluded:
                scores[i, excluded] = -np.inf
            if plan.profile.categories:
                wanted = set(plan.profile.categories)
                outside = [j for j, cats in enumerate(candidates.categories)
                           if not (cats & wanted)]
                if outside:
                    scores[i, outside] = -np.inf
        return scores, best_row

    def _choose(
        self, plan: _Plan, row: npt.NDArray[np.float32], best_row: npt.NDArray[np.int64],
        queries: sp.csr_matrix, first_row: int, candidates: Candidates, *, limit: int,
        floor: float,
    ) -> list[Recommendation]:
        """The best `limit` papers at or above `floor`, near-duplicates thinned, explained."""
        k = min(len(row), limit * 3 + 5)
        if k == 0:
            return []
        top = np.argpartition(-row, k - 1)[:k]
        top = top[np.argsort(-row[top], kind="stable")]
        chosen: list[int] = []
        for j in top:
            if not np.isfinite(row[j]) or row[j] < floor:
                break
            if chosen:
                sims = candidates.vectors[chosen] @ candidates.vectors[int(j)].T
                if sims.size and float(sims.max()) > DUPLICATE:
                    continue
            chosen.append(int(j))
            if len(chosen) >= limit:
                break
        return [self._explain(plan, j, float(row[j]), int(best_row[j]), queries, first_row,
                              candidates) for j in chosen]

    def _explain(self, plan: _Plan, j: int, score: float, qrow: int,
                 queries: sp.csr_matrix, first_row: int,
                 candidates: Candidates) -> Recommendation:
        paper = candidates.papers[j]
        vec = candidates.vectors[j]
        interest = plan.interests[qrow - first_row] if plan.interests else ""
        similarity = float((queries[qrow] @ vec.T).toarray()[0, 0]) if plan.interests else 0.0
        terms = tuple(t for t, _ in self.model.top_terms(queries[qrow], vec, WHY_TERMS))
        authors = tuple(plan.followed[normalize_author(a)] for a in paper.authors
                        if normalize_author(a) in plan.followed)
        seed_key = seed_title = None
        seed_sim = None
        if plan.all_seeds:
            seed_vecs = self._vectors_of(plan.all_seeds)
            sims = np.asarray((seed_vecs @ vec.T).todense()).ravel()
            best = int(np.argmax(sims))
            seed_key, seed_title = plan.all_seeds[best].key, plan.all_seeds[best].title
            seed_sim = float(sims[best])
        penalties = tuple(term for term in plan.profile.avoid
                          if term.casefold() in paper_text(paper).casefold())
        return Recommendation(paper, score, Why(
            interest=interest, similarity=similarity, terms=terms, authors=authors,
            seed_key=seed_key, seed_title=seed_title, seed_similarity=seed_sim,
            penalties=penalties,
        ))


def rank_json(ranking: Ranking) -> dict[str, Any]:
    """The ranking contract: ``{"profile", "papers": [{"id", "title", "score", "why"}]}``."""
    return {
        "profile": ranking.profile,
        "papers": [
            {"id": r.paper.key, "title": r.paper.title, "score": round(r.score, 4),
             "why": r.why.as_dict()}
            for r in ranking.items
        ],
        "warnings": ranking.warnings,
    }


def by_name(rankings: Iterable[Ranking]) -> Mapping[str, list[Recommendation]]:
    return {r.profile: r.items for r in rankings}
