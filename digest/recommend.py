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
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from . import scoring
from .model import TextModel
from .profiles import Profile
from .store import PaperRef, Store
from .types import Paper, Recommendation, Why

#: Name of the implicit interest made of the profile's own seed and liked papers.
SEED_INTEREST = "seed papers"
#: Added to the score of a paper by a followed author: enough to put it ahead of every paper
#: that is only similar, and past any min_score ("their new papers are always wanted").
AUTHOR_BOOST = 1.0
#: Multiplies the similarity to avoided terms / disliked papers subtracted from a score.
AVOID_WEIGHT = 1.0
DISLIKE_WEIGHT = 0.5
#: The least an avoided phrase that occurs in a paper's text takes off its score, whatever the
#: vectors say (a new method's name may not be in the model's vocabulary at all).
AVOID_MIN = 0.3
#: Two papers of one digest more similar than this: only the better one is kept.
DUPLICATE = 0.8
#: Profiles scored per chunk (memory: chunk x interests x candidates x 4 bytes).
CHUNK = 256
#: Text-only interests are expanded from the corpus once it has this many papers.
EXPAND_MIN_CORPUS = 50
#: Terms shown as the reason for a match.
WHY_TERMS = 5


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
class _Plan:
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
        self._sharpening: npt.NDArray[np.float32] | None = None

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
        rankings = [Ranking(p.profile.name, [], list(p.warnings)) for p in plans]
        candidates = self.candidates(min(p.since for p in plans), until)
        if not candidates.papers:
            return rankings
        batch = self._batch(plans, candidates)
        for c0, c1, scores, queries in self._score_chunks(batch):
            for i in range(c0, c1):
                plan, row = plans[i], scores[i - c0]
                finite = np.isfinite(row)
                rankings[i].considered = int(finite.sum())
                limit = top or plan.profile.max_papers
                floor = -np.inf if top else plan.profile.min_score
                rankings[i].items = self._choose(batch, i, row, queries.at(i), limit=limit,
                                                 floor=floor)
        return rankings

    def candidates(self, start: dt.date, until: dt.date) -> Candidates:
        papers = list(self.store.iter_papers(announced_from=start, announced_to=until))
        vectors = self._vectors_of(papers)
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
        resolved = self.store.find_refs(refs)
        names = [p.name for p in profiles]
        default_start = until - dt.timedelta(days=self.first_digest_days)
        covered = {} if since else self.store.last_covered(names)
        earliest = min([since or default_start, *covered.values()])
        sent = self.store.sent_pids_many(names, announced_from=earliest)
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
            plans.append(_Plan(
                profile, interests, weights, texts, seeds, all_seeds, disliked, exclude,
                {normalize_author(a): a for a in profile.authors}, start, warnings,
            ))
        return plans

    def _vectors_of(self, papers: Sequence[Paper]) -> sp.csr_matrix:
        """Vectors of papers (see `_vectors_by_pid`)."""
        by_pid = {p.pid: p for p in papers}
        return self._vectors_by_pid([p.pid for p in papers],
                                    lambda pids: [paper_text(by_pid[i]) for i in pids])

    def _vectors_by_pid(self, pids: Sequence[int],
                        texts: Callable[[Sequence[int]], list[str]]) -> sp.csr_matrix:
        """Vectors of the papers `pids`: rows of the saved corpus matrix where the paper is in
        it (no text processing), the rest vectorized now from ``texts(those pids)``."""
        n = len(pids)
        if not n:
            return sp.csr_matrix((0, self.model.n_features), dtype=np.float32)
        corpus, corpus_pids = self.corpus, self.corpus_pids
        if corpus is None or corpus_pids is None or not len(corpus_pids):
            return self.model.transform(texts(pids))
        wanted = np.array(pids, dtype=np.int64)
        rows = np.clip(np.searchsorted(corpus_pids, wanted), 0, len(corpus_pids) - 1)
        found = corpus_pids[rows] == wanted
        if found.all():
            return sp.csr_matrix(corpus[rows])
        fresh = np.flatnonzero(~found)
        parts = self.model.transform(texts([pids[int(i)] for i in fresh]))
        if not found.any():
            return parts
        stacked = sp.vstack([corpus[rows[found]], parts], format="csr")
        order = np.concatenate([np.flatnonzero(found), fresh])
        inverse = np.empty(n, dtype=np.int64)
        inverse[order] = np.arange(n)
        return sp.csr_matrix(stacked[inverse], dtype=np.float32)

    def _texts_by_pid(self, pids: Sequence[int]) -> list[str]:
        found = self.store.papers_by_pid(pids)
        return [paper_text(found[pid]) for pid in pids]

    def _batch(self, plans: Sequence[_Plan], candidates: Candidates) -> _Batch:
        """Everything the chunks share: penalty rows, seed vectors, masks. Query vectors are
        built chunk by chunk (`_queries`), in the scoring threads: memory stays flat."""
        unique: dict[int, PaperRef] = {}
        for plan in plans:
            for paper in [*plan.all_seeds, *plan.disliked]:
                unique.setdefault(paper.pid, paper)
        seed_pids = list(unique)
        seed_matrix = self._vectors_by_pid(seed_pids, self._texts_by_pid)
        seed_row = {pid: i for i, pid in enumerate(seed_pids)}
        # Seed rows with each term scaled by idf ** IDF_POWER once, so a chunk's centroids come
        # out sharpened (`scoring.sharpen` is linear in the rows).
        seed_sharp = sp.csr_matrix(seed_matrix, copy=True)
        seed_sharp.data *= self._idf_power()[seed_sharp.indices]
        offsets = np.concatenate(([0], np.cumsum([len(p.interests) for p in plans])))
        weights = np.array([w for plan in plans for w in plan.weights], dtype=np.float32)
        corpus_prepared = None
        if self.corpus is not None and self.corpus.shape[0] >= EXPAND_MIN_CORPUS and any(
            text and not seeds for plan in plans
            for text, seeds in zip(plan.texts, plan.seeds, strict=True)
        ):
            corpus_prepared = scoring.prepare(self.corpus)
        penalties, pen_offsets = self._penalties(plans, seed_matrix, seed_row)
        category_masks: dict[frozenset[str], npt.NDArray[np.bool_]] = {}
        for plan in plans:
            wanted = frozenset(plan.profile.categories)
            if wanted and wanted not in category_masks:
                category_masks[wanted] = np.array(
                    [bool(cats & wanted) for cats in candidates.categories], dtype=bool
                )
        avoided: dict[str, npt.NDArray[np.int64]] = {}
        terms = {t.casefold() for plan in plans for t in plan.profile.avoid}
        if terms:
            texts = [paper_text(p).casefold() for p in candidates.papers]
            for term in terms:
                avoided[term] = np.array([j for j, t in enumerate(texts) if term in t],
                                         dtype=np.int64)
        # Per-profile masks as flat (ptr, columns) arrays, so a chunk applies them with a few
        # fancy-index writes instead of a Python loop per profile.
        index = candidates.index
        excluded = _ragged([[index[pid] for pid in plan.exclude if pid in index]
                            for plan in plans])
        boosted = _ragged([sorted({j for name in plan.followed
                                   for j in candidates.by_author.get(name, ())})
                           for plan in plans])
        avoid_hits = _ragged([sorted({int(j) for t in plan.profile.avoid
                                      for j in avoided.get(t.casefold(), ())})
                              for plan in plans])
        mask_keys = list(category_masks)
        mask_stack = (np.stack([category_masks[k] for k in mask_keys]) if mask_keys
                      else np.zeros((0, len(candidates.papers)), dtype=bool))
        key_id = {k: n for n, k in enumerate(mask_keys)}
        mask_of = np.array([key_id.get(frozenset(plan.profile.categories), -1)
                            if plan.profile.categories else -1 for plan in plans],
                           dtype=np.int64)
        return _Batch(
            plans, candidates, scoring.prepare(candidates.vectors), offsets.astype(np.int64),
            weights, penalties, pen_offsets, seed_matrix, seed_sharp, seed_row, corpus_prepared,
            category_masks,
            np.array([p.since.toordinal() for p in plans], dtype=np.int64), avoided,
            excluded, boosted, avoid_hits, mask_stack, mask_of,
        )

    def _idf_power(self) -> npt.NDArray[np.float32]:
        if self._sharpening is None:
            idf = np.asarray(self.model.idf, dtype=np.float32)
            self._sharpening = idf ** np.float32(scoring.IDF_POWER)
        return self._sharpening

    def _queries(self, batch: _Batch, c0: int, c1: int) -> _Queries:
        """The query rows of profiles c0..c1: one per interest, each its seed centroid and its
        text (expanded from the corpus when it has no seeds), sharpened, unit length."""
        plans = batch.plans[c0:c1]
        seed_groups = [group for plan in plans for group in plan.seeds]
        rows = np.array([batch.seed_row[p.pid] for g in seed_groups for p in g], dtype=np.int64)
        seed_offsets = np.concatenate(([0], np.cumsum([len(g) for g in seed_groups])))
        centroids = scoring.group_means(batch.seed_sharp, seed_offsets, rows=rows,
                                        normalize=False)
        texts = [t for plan in plans for t in plan.texts]
        text_vectors = None
        if any(texts):
            text_vectors = self.model.transform(texts, title_block=False)
            has_seeds = np.diff(seed_offsets) > 0
            text_only = np.flatnonzero(~has_seeds & (text_vectors.getnnz(axis=1) > 0))
            if len(text_only) and batch.corpus_prepared is not None:
                # Short keyword interests miss the words papers on the topic use: add the
                # centroid of their best corpus matches (docs/evaluation.md).
                assert self.corpus is not None
                expanded = scoring.expand(text_vectors[text_only], self.corpus,
                                          prepared=batch.corpus_prepared)
                keep = np.ones(text_vectors.shape[0], dtype=np.float32)
                keep[text_only] = 0
                scatter = sp.csr_matrix(
                    (np.ones(len(text_only), dtype=np.float32),
                     (text_only, np.arange(len(text_only)))),
                    shape=(text_vectors.shape[0], len(text_only)),
                )
                text_vectors = sp.csr_matrix(sp.diags(keep) @ text_vectors + scatter @ expanded)
            text_vectors = scoring.sharpen(text_vectors, self.model.idf)
        # Both sides are sharpened already: mix them and make the rows unit length.
        matrix = scoring.interest_queries(centroids, text_vectors)
        return _Queries(matrix, int(batch.offsets[c0]), batch.offsets)

    def _penalties(self, plans: Sequence[_Plan], seed_matrix: sp.csr_matrix,
                   seed_row: Mapping[int, int]) -> tuple[sp.csr_matrix, npt.NDArray[np.int64]]:
        """Rows that push papers down: each avoided term, each disliked paper (weighted)."""
        texts = [term for plan in plans for term in plan.profile.avoid]
        avoid = self.model.transform(texts, title_block=False) if texts else None
        parts: list[sp.csr_matrix] = []
        counts: list[int] = []
        a = 0
        for plan in plans:
            n_avoid = len(plan.profile.avoid)
            if n_avoid and avoid is not None:
                parts.append(avoid[a : a + n_avoid] * np.float32(AVOID_WEIGHT))
                a += n_avoid
            if plan.disliked:
                rows = [seed_row[p.pid] for p in plan.disliked]
                parts.append(seed_matrix[rows] * np.float32(DISLIKE_WEIGHT))
            counts.append(n_avoid + len(plan.disliked))
        offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        matrix = (sp.csr_matrix(sp.vstack(parts, format="csr"), dtype=np.float32) if parts
                  else sp.csr_matrix((0, self.model.n_features), dtype=np.float32))
        return matrix, offsets

    # -- scoring ---------------------------------------------------------------------------------

    def _score_chunk(self, batch: _Batch, c0: int,
                     c1: int) -> tuple[npt.NDArray[np.float32], _Queries]:
        """Final scores of profiles c0..c1 (rows) for every candidate, -inf where a paper is
        not a candidate for the profile; and their query rows."""
        queries = self._queries(batch, c0, c1)
        q0, q1 = int(batch.offsets[c0]), int(batch.offsets[c1])
        scores = _group_max(queries.matrix, batch.offsets[c0 : c1 + 1] - q0, batch.prepared,
                            batch.weights[q0:q1])
        p0, p1 = int(batch.pen_offsets[c0]), int(batch.pen_offsets[c1])
        rows, cols = batch.avoid_hits.block(c0, c1)
        if p1 > p0 or len(rows):
            penalty = _group_max(batch.penalties[p0:p1], batch.pen_offsets[c0 : c1 + 1] - p0,
                                 batch.prepared, empty=0.0)
            np.maximum(penalty, 0, out=penalty)
            if len(rows):
                penalty[rows, cols] = np.maximum(penalty[rows, cols], AVOID_MIN)
            scores -= penalty
            del penalty
        scores[batch.candidates.announced[None, :] < batch.since[c0:c1, None]] = -np.inf
        rows, cols = batch.boosted.block(c0, c1)
        if len(rows):
            scores[rows, cols] += AUTHOR_BOOST
        rows, cols = batch.excluded.block(c0, c1)
        if len(rows):
            scores[rows, cols] = -np.inf
        masked = np.flatnonzero(batch.mask_of[c0:c1] >= 0)
        if len(masked):
            keep = batch.mask_stack[batch.mask_of[c0:c1][masked]]
            block = scores[masked]
            block[~keep] = -np.inf
            scores[masked] = block
        return scores, queries

    def _score_chunks(self, batch: _Batch, chunk: int = CHUNK, workers: int = scoring.WORKERS
                      ) -> Iterator[tuple[int, int, npt.NDArray[np.float32], _Queries]]:
        """`_score_chunk` over all profiles, in order, `chunk` profiles at a time: (c0, c1,
        scores, queries). `workers` chunks are scored at once in threads (the kernel, the
        sparse products and BLAS release the GIL); at most ``workers + 1`` chunks are held at
        a time."""
        bounds = [(c0, min(c0 + chunk, len(batch.plans)))
                  for c0 in range(0, len(batch.plans), chunk)]
        if workers <= 1 or len(bounds) <= 1:
            for c0, c1 in bounds:
                yield c0, c1, *self._score_chunk(batch, c0, c1)
            return
        with ThreadPoolExecutor(workers) as pool, _blas_threads(1):
            pending: deque[tuple[int, int, Future[tuple[npt.NDArray[np.float32], _Queries]]]]
            pending = deque()
            for c0, c1 in bounds:
                pending.append((c0, c1, pool.submit(self._score_chunk, batch, c0, c1)))
                if len(pending) > workers:
                    d0, d1, done = pending.popleft()
                    yield d0, d1, *done.result()
            while pending:
                d0, d1, done = pending.popleft()
                yield d0, d1, *done.result()

    def _choose(self, batch: _Batch, i: int, row: npt.NDArray[np.float32],
                queries: sp.csr_matrix, *, limit: int, floor: float) -> list[Recommendation]:
        """The best `limit` papers at or above `floor`, near-duplicates thinned, explained."""
        k = min(len(row), limit * 2 + 5)
        top = np.argpartition(-row, k - 1)[:k]
        top = top[np.argsort(-row[top], kind="stable")]
        top = top[np.isfinite(row[top]) & (row[top] >= floor)]
        if not len(top):
            return []
        sub = batch.candidates.vectors[top]
        similar = scoring.row_dots(sub, sub)
        chosen: list[int] = []
        for pos in range(len(top)):
            if chosen and similar[pos, chosen].max() > DUPLICATE:
                continue
            chosen.append(pos)
            if len(chosen) >= limit:
                break
        picked = top[chosen]
        return self._explain(batch, i, queries, picked, row[picked], sub[chosen])

    def _explain(self, batch: _Batch, i: int, queries: sp.csr_matrix,
                 picked: npt.NDArray[np.int64], scores: npt.NDArray[np.float32],
                 items: sp.csr_matrix | None = None) -> list[Recommendation]:
        """Recommendations for profile `i`'s chosen candidates (`picked`, rows of the
        candidates; `items` their vectors if at hand; `queries` the profile's query rows),
        with the reasons: a few sparse products per profile, not per paper."""
        plan = batch.plans[i]
        if items is None:
            items = batch.candidates.vectors[picked]
        m = len(picked)
        q0 = int(batch.offsets[i])
        interest_of = [""] * m
        similarity = np.zeros(m, dtype=np.float32)
        terms: list[tuple[str, ...]] = [()] * m
        if queries.shape[0]:
            sims = scoring.row_dots(queries, items)
            best = np.argmax(sims * batch.weights[q0 : q0 + queries.shape[0], None], axis=0)
            similarity = sims[best, np.arange(m)]
            interest_of = [plan.interests[b] for b in best]
            names = self.model.terms()
            for r, (ids, vals) in enumerate(scoring.shared_terms(queries[best], items)):
                words = ids < self.model.n_words  # a title block's n-grams say nothing
                ids, vals = ids[words], vals[words]
                order = np.argsort(-vals, kind="stable")[:WHY_TERMS]
                terms[r] = tuple(str(names[c]) for c in ids[order] if vals[order[0]] > 0)
        seed_best: list[tuple[str | None, str | None, float | None]] = [(None, None, None)] * m
        if plan.all_seeds:
            rows = [batch.seed_row[p.pid] for p in plan.all_seeds]
            seed_sims = scoring.row_dots(batch.seed_matrix[rows], items)
            nearest = np.argmax(seed_sims, axis=0)
            seed_best = [(plan.all_seeds[s].key, plan.all_seeds[s].title,
                          float(seed_sims[s, r])) for r, s in enumerate(nearest)]
        out = []
        for r, j in enumerate(picked):
            paper = batch.candidates.papers[int(j)]
            authors: tuple[str, ...] = ()
            if plan.followed:
                authors = tuple(plan.followed[normalize_author(a)] for a in paper.authors
                                if normalize_author(a) in plan.followed)
            penalties: tuple[str, ...] = ()
            if plan.profile.avoid:
                text = paper_text(paper).casefold()
                penalties = tuple(t for t in plan.profile.avoid if t.casefold() in text)
            seed_key, seed_title, seed_sim = seed_best[r]
            out.append(Recommendation(paper, float(scores[r]), Why(
                interest=interest_of[r], similarity=float(similarity[r]), terms=terms[r],
                authors=authors, seed_key=seed_key, seed_title=seed_title,
                seed_similarity=seed_sim, penalties=penalties,
            )))
        return out


@dataclass
class _Batch:
    """What one ranking computes once and its chunks share."""

    plans: Sequence[_Plan]
    candidates: Candidates
    prepared: scoring.PreparedPapers
    #: Query rows of profile i: offsets[i]..offsets[i+1], weighted by `weights`.
    offsets: npt.NDArray[np.int64]
    weights: npt.NDArray[np.float32]
    penalties: sp.csr_matrix
    pen_offsets: npt.NDArray[np.int64]
    #: Vectors of every seed and disliked paper (rows by `seed_row`), and sharpened.
    seed_matrix: sp.csr_matrix
    seed_sharp: sp.csr_matrix
    seed_row: Mapping[int, int]
    #: The corpus laid out for expanding text-only interests (None: nothing to expand).
    corpus_prepared: scoring.PreparedPapers | None
    category_masks: dict[frozenset[str], npt.NDArray[np.bool_]]
    since: npt.NDArray[np.int64]
    #: Candidates whose text contains each avoided phrase (casefolded).
    avoided: dict[str, npt.NDArray[np.int64]]
    #: Per profile: candidates excluded (sent, own seeds, disliked), by followed authors,
    #: containing an avoided phrase.
    excluded: _Ragged
    boosted: _Ragged
    avoid_hits: _Ragged
    #: One row per distinct category set, and each profile's row (-1: no category filter).
    mask_stack: npt.NDArray[np.bool_]
    mask_of: npt.NDArray[np.int64]


@dataclass(frozen=True)
class _Queries:
    """The query rows of a run of profiles: rows ``offsets[i] - base`` onwards are profile
    i's."""

    matrix: sp.csr_matrix
    base: int
    offsets: npt.NDArray[np.int64]

    def at(self, i: int) -> sp.csr_matrix:
        """Profile i's rows."""
        return self.matrix[int(self.offsets[i]) - self.base : int(self.offsets[i + 1]) - self.base]


@dataclass
class _Ragged:
    """Lists of candidate rows, one per profile, flat (like CSR ``indptr``/``indices``)."""

    ptr: npt.NDArray[np.int64]
    cols: npt.NDArray[np.int64]

    def block(self, c0: int, c1: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(row in the chunk, candidate) pairs of profiles c0..c1."""
        lo, hi = int(self.ptr[c0]), int(self.ptr[c1])
        rows = np.repeat(np.arange(c1 - c0, dtype=np.int64), np.diff(self.ptr[c0 : c1 + 1]))
        return rows, self.cols[lo:hi]


def _ragged(lists: Sequence[Sequence[int]]) -> _Ragged:
    ptr = np.zeros(len(lists) + 1, dtype=np.int64)
    ptr[1:] = np.cumsum([len(x) for x in lists])
    cols = np.fromiter((j for x in lists for j in x), dtype=np.int64, count=int(ptr[-1]))
    return _Ragged(ptr, cols)


@contextmanager
def _blas_threads(n: int) -> Iterator[None]:
    """BLAS limited to `n` threads (when threadpoolctl is at hand): the chunks already run
    in parallel, and two multi-threaded BLAS calls on two cores only fight."""
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - installed with scikit-learn
        yield
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield


def _group_max(rows: sp.csr_matrix, offsets: npt.NDArray[np.int64],
               prepared: scoring.PreparedPapers, weights: npt.NDArray[np.float32] | None = None,
               *, empty: float = -np.inf) -> npt.NDArray[np.float32]:
    """The best (weighted) similarity of each group's rows (group g: rows offsets[g] to
    offsets[g+1], from 0) to each paper; `empty` for a group without rows."""
    sizes = np.diff(offsets)
    n_papers = prepared.n_papers
    if not len(sizes) or not sizes.any():
        return np.full((len(sizes), n_papers), empty, dtype=np.float32)
    block = scoring.similarities(rows, prepared)
    if weights is not None and np.any(weights != 1):
        block *= weights[:, None]
    if np.all(sizes == 1):
        return block
    out = np.full((len(sizes), n_papers), empty, dtype=np.float32)
    nonempty = np.flatnonzero(sizes > 0)
    out[nonempty] = np.maximum.reduceat(block, offsets[:-1][nonempty], axis=0)
    return out


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
