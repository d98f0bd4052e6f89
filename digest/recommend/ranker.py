"""The recommender: each profile's best new papers, with the reasons.

For every profile, in one pass over all of them:

- each interest becomes a query vector: its text and the centroid of its seed papers combined
  and sharpened (`scoring.interest_queries`); an interest given only as text is expanded with
  its best-matching corpus papers (pseudo-relevance feedback). The profile's own seed and liked
  papers form one more interest, ``seed papers``;
- each query's cosines become relevance, calibrated against its own background
  (`calibrate`); a paper's score is its best weighted interest's relevance (a narrow interest
  with high raw cosines never crowds a broad one out); avoided terms and disliked papers
  subtract from it, papers by followed authors are ranked first;
- candidates are the papers announced in the profile's window (since its last digest, or
  ``--since``), minus what was sent to it, minus its own seed/liked/disliked papers, within its
  categories if it names any; then ``min_relevance`` and ``max_papers`` apply, and
  near-duplicates are thinned (`batch.duplicate_thresholds`).

Scoring is a chunked matrix product over profiles (`scoring.similarities`): memory stays flat
whatever the number of profiles, and there is no Python loop over papers.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from .. import scoring
from ..model import TextModel
from ..profiles import Profile
from ..store import PaperRef, Store
from ..types import Paper, Recommendation, Why
from . import calibrate
from .batch import (
    Batch,
    Candidates,
    Queries,
    blas_threads,
    duplicate_thresholds,
    group_max,
    ragged,
)
from .calibrate import Calibration, weights_as_relevance
from .plan import Plan, Ranking, make_plans, normalize_author, paper_text

#: Added to the ranking key (not the relevance shown) of a paper by a followed author: enough
#: to put it ahead of every paper that is only similar, and past any min_relevance ("their new
#: papers are always wanted").
AUTHOR_BOOST = 1000.0
#: Multiplies the similarity to avoided terms / disliked papers subtracted from a score.
#: Penalties are cosines, turned into relevance with the profile's own scale (the mean of its
#: interests' `Calibration.scale`).
AVOID_WEIGHT = 1.0
DISLIKE_WEIGHT = 0.5
#: The least an avoided phrase that occurs in a paper's text takes off its score (as a cosine),
#: whatever the vectors say (a new method's name may not be in the model's vocabulary at all).
AVOID_MIN = 0.3
#: Profiles scored per chunk (memory: chunk x interests x candidates x 4 bytes).
CHUNK = 256
#: Text-only interests are expanded from the corpus once it has this many papers.
EXPAND_MIN_CORPUS = 50
#: Terms shown as the reason for a match.
WHY_TERMS = 5


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
        self._background: scoring.PreparedPapers | None = None

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
        `top` overrides ``max_papers`` and ignores ``min_relevance``."""
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
                floor = -np.inf if top else plan.profile.min_relevance
                rankings[i].items = self._choose(batch, i, row, queries.at(i),
                                                 queries.calibration_at(i), limit=limit,
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
               since: dt.date | None) -> list[Plan]:
        return make_plans(self.store, profiles, until=until, since=since,
                          first_digest_days=self.first_digest_days)

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

    def _batch(self, plans: Sequence[Plan], candidates: Candidates) -> Batch:
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
        excluded = ragged([[index[pid] for pid in plan.exclude if pid in index]
                            for plan in plans])
        boosted = ragged([sorted({j for name in plan.followed
                                   for j in candidates.by_author.get(name, ())})
                           for plan in plans])
        avoid_hits = ragged([sorted({int(j) for t in plan.profile.avoid
                                      for j in avoided.get(t.casefold(), ())})
                              for plan in plans])
        mask_keys = list(category_masks)
        mask_stack = (np.stack([category_masks[k] for k in mask_keys]) if mask_keys
                      else np.zeros((0, len(candidates.papers)), dtype=bool))
        key_id = {k: n for n, k in enumerate(mask_keys)}
        mask_of = np.array([key_id.get(frozenset(plan.profile.categories), -1)
                            if plan.profile.categories else -1 for plan in plans],
                           dtype=np.int64)
        return Batch(
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

    def background(self) -> scoring.PreparedPapers:
        """The papers every query is calibrated against (`calibrate`): a fixed sample of the
        corpus the model was fitted on, or of the store when no corpus vectors are at hand."""
        if self._background is None:
            if self.corpus is not None and self.corpus.shape[0]:
                vectors = sp.csr_matrix(self.corpus[calibrate.background_rows(
                    self.corpus.shape[0])])
            else:
                papers = list(self.store.iter_papers())
                rows = calibrate.background_rows(len(papers))
                vectors = self._vectors_of([papers[int(r)] for r in rows])
            self._background = scoring.prepare(vectors)
        return self._background

    def calibration(self, queries: sp.csr_matrix) -> Calibration:
        """Each query row's calibration against the background (one small product)."""
        return calibrate.fit(scoring.similarities(queries, self.background()))

    def _queries(self, batch: Batch, c0: int, c1: int) -> Queries:
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
        return Queries(matrix, int(batch.offsets[c0]), batch.offsets, self.calibration(matrix))

    def _penalties(self, plans: Sequence[Plan], seed_matrix: sp.csr_matrix,
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

    def _score_chunk(self, batch: Batch, c0: int,
                     c1: int) -> tuple[npt.NDArray[np.float32], Queries]:
        """Final scores of profiles c0..c1 (rows) for every candidate, -inf where a paper is
        not a candidate for the profile; and their query rows."""
        queries = self._queries(batch, c0, c1)
        q0, q1 = int(batch.offsets[c0]), int(batch.offsets[c1])
        group_offsets = batch.offsets[c0 : c1 + 1] - q0
        scores = group_max(queries.matrix, group_offsets, batch.prepared,
                            batch.weights[q0:q1], calibration=queries.calibration)
        p0, p1 = int(batch.pen_offsets[c0]), int(batch.pen_offsets[c1])
        rows, cols = batch.avoid_hits.block(c0, c1)
        if p1 > p0 or len(rows):
            penalty = group_max(batch.penalties[p0:p1], batch.pen_offsets[c0 : c1 + 1] - p0,
                                 batch.prepared, empty=0.0)
            np.maximum(penalty, 0, out=penalty)
            if len(rows):
                penalty[rows, cols] = np.maximum(penalty[rows, cols], AVOID_MIN)
            penalty *= queries.calibration.profile_scale(group_offsets)[:, None]
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

    def _score_chunks(self, batch: Batch, chunk: int = CHUNK, workers: int = scoring.WORKERS
                      ) -> Iterator[tuple[int, int, npt.NDArray[np.float32], Queries]]:
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
        with ThreadPoolExecutor(workers) as pool, blas_threads(1):
            pending: deque[tuple[int, int, Future[tuple[npt.NDArray[np.float32], Queries]]]]
            pending = deque()
            for c0, c1 in bounds:
                pending.append((c0, c1, pool.submit(self._score_chunk, batch, c0, c1)))
                if len(pending) > workers:
                    d0, d1, done = pending.popleft()
                    yield d0, d1, *done.result()
            while pending:
                d0, d1, done = pending.popleft()
                yield d0, d1, *done.result()

    def _choose(self, batch: Batch, i: int, row: npt.NDArray[np.float32],
                queries: sp.csr_matrix, calibration: Calibration, *, limit: int,
                floor: float) -> list[Recommendation]:
        """The best `limit` papers at or above `floor`, near-duplicates thinned, explained."""
        k = min(len(row), limit * 2 + 5)
        top = np.argpartition(-row, k - 1)[:k]
        top = top[np.argsort(-row[top], kind="stable")]
        top = top[np.isfinite(row[top]) & (row[top] >= floor)]
        if not len(top):
            return []
        sub = batch.candidates.vectors[top]
        similar = scoring.row_dots(sub, sub) - duplicate_thresholds(batch.candidates.short[top])
        chosen: list[int] = []
        for pos in range(len(top)):
            if chosen and similar[pos, chosen].max() > 0:
                continue
            chosen.append(pos)
            if len(chosen) >= limit:
                break
        picked = top[chosen]
        return self._explain(batch, i, queries, calibration, picked, row[picked], sub[chosen])

    def _explain(self, batch: Batch, i: int, queries: sp.csr_matrix, calibration: Calibration,
                 picked: npt.NDArray[np.int64], scores: npt.NDArray[np.float32],
                 items: sp.csr_matrix | None = None) -> list[Recommendation]:
        """Recommendations for profile `i`'s chosen candidates (`picked`, rows of the
        candidates; `items` their vectors if at hand; `queries` the profile's query rows and
        `calibration` theirs; `scores` their ranking keys), with the reasons: a few sparse
        products per profile, not per paper."""
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
            weights = batch.weights[q0 : q0 + queries.shape[0]]
            weighted = calibration.apply(sims) + weights_as_relevance(weights)[:, None]
            best = np.argmax(weighted, axis=0)
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
            # The boost only orders followed authors first; the score shown is the relevance.
            score = float(scores[r]) - (AUTHOR_BOOST if authors else 0.0)
            out.append(Recommendation(paper, score, Why(
                interest=interest_of[r], similarity=float(similarity[r]), terms=terms[r],
                authors=authors, seed_key=seed_key, seed_title=seed_title,
                seed_similarity=seed_sim, penalties=penalties,
            )))
        return out
