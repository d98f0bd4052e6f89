"""What one ranking shares between its chunks of profiles: the candidates, per-profile masks as
flat arrays, the query rows of a chunk with their calibration, and the chunked product."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from .. import scoring
from ..types import Paper
from .calibrate import Calibration, weights_as_relevance
from .plan import Plan

#: Two papers of one digest more similar than this: only the better one is kept.
DUPLICATE = 0.8
#: A paper known by a few words only (a title without abstract, under `SHORT_WORDS` words)
#: shares most of them with any paper on its topic: two such papers are duplicates only when
#: nearly identical ("Gaussian Splatting for X" and "... for Y" are 0.8 apart and distinct).
SHORT_WORDS = 40
DUPLICATE_SHORT = 0.95


@dataclass
class Candidates:
    """The papers scored in one ranking, and their vectors."""

    papers: list[Paper]
    vectors: sp.csr_matrix
    announced: npt.NDArray[np.int64]
    categories: list[frozenset[str]]
    by_author: dict[str, list[int]]
    index: dict[int, int]  # pid -> row

    @cached_property
    def short(self) -> npt.NDArray[np.bool_]:
        """Which papers are short texts (`is_short`)."""
        return np.array([is_short(p) for p in self.papers], dtype=bool)


@dataclass
class Batch:
    """What one ranking computes once and its chunks share."""

    plans: Sequence[Plan]
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
    excluded: Ragged
    boosted: Ragged
    avoid_hits: Ragged
    #: One row per distinct category set, and each profile's row (-1: no category filter).
    mask_stack: npt.NDArray[np.bool_]
    mask_of: npt.NDArray[np.int64]


@dataclass(frozen=True)
class Queries:
    """The query rows of a run of profiles: rows ``offsets[i] - base`` onwards are profile
    i's."""

    matrix: sp.csr_matrix
    base: int
    offsets: npt.NDArray[np.int64]
    #: Each row's calibration (cosine to relevance).
    calibration: Calibration

    def at(self, i: int) -> sp.csr_matrix:
        """Profile i's rows."""
        return self.matrix[self._rows(i)]

    def calibration_at(self, i: int) -> Calibration:
        """Profile i's rows' calibration."""
        return self.calibration[self._rows(i)]

    def _rows(self, i: int) -> slice:
        return slice(int(self.offsets[i]) - self.base, int(self.offsets[i + 1]) - self.base)


@dataclass
class Ragged:
    """Lists of candidate rows, one per profile, flat (like CSR ``indptr``/``indices``)."""

    ptr: npt.NDArray[np.int64]
    cols: npt.NDArray[np.int64]

    def block(self, c0: int, c1: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(row in the chunk, candidate) pairs of profiles c0..c1."""
        lo, hi = int(self.ptr[c0]), int(self.ptr[c1])
        rows = np.repeat(np.arange(c1 - c0, dtype=np.int64), np.diff(self.ptr[c0 : c1 + 1]))
        return rows, self.cols[lo:hi]


def duplicate_thresholds(short: npt.NDArray[np.bool_]) -> npt.NDArray[np.float32]:
    """For each pair of papers (`short`: which are short texts, `is_short`), the similarity
    above which they are near-duplicates: `DUPLICATE`, or `DUPLICATE_SHORT` when either is
    short."""
    either = short[:, None] | short[None, :]
    return np.where(either, np.float32(DUPLICATE_SHORT), np.float32(DUPLICATE))


def is_short(paper: Paper) -> bool:
    """A paper known by a few words only: a title without (much of an) abstract. Counted on
    the text, not the vector, whose features a model may multiply for short texts."""
    return len(paper.title.split()) + len(paper.abstract.split()) < SHORT_WORDS


def ragged(lists: Sequence[Sequence[int]]) -> Ragged:
    ptr = np.zeros(len(lists) + 1, dtype=np.int64)
    ptr[1:] = np.cumsum([len(x) for x in lists])
    cols = np.fromiter((j for x in lists for j in x), dtype=np.int64, count=int(ptr[-1]))
    return Ragged(ptr, cols)


@contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """BLAS limited to `n` threads (when threadpoolctl is at hand): the chunks already run
    in parallel, and two multi-threaded BLAS calls on two cores only fight."""
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - installed with scikit-learn
        yield
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield


def group_max(rows: sp.csr_matrix, offsets: npt.NDArray[np.int64],
               prepared: scoring.PreparedPapers, weights: npt.NDArray[np.float32] | None = None,
               *, empty: float = -np.inf,
               calibration: Calibration | None = None) -> npt.NDArray[np.float32]:
    """The best (calibrated, weighted) similarity of each group's rows (group g: rows
    offsets[g] to offsets[g+1], from 0) to each paper; `empty` for a group without rows."""
    sizes = np.diff(offsets)
    n_papers = prepared.n_papers
    if not len(sizes) or not sizes.any():
        return np.full((len(sizes), n_papers), empty, dtype=np.float32)
    block = scoring.similarities(rows, prepared)
    if calibration is not None:
        calibration.apply(block, out=block)
        if weights is not None and np.any(weights != 1):
            block += weights_as_relevance(weights)[:, None]
    elif weights is not None and np.any(weights != 1):
        block *= weights[:, None]
    if np.all(sizes == 1):
        return block
    out = np.full((len(sizes), n_papers), empty, dtype=np.float32)
    nonempty = np.flatnonzero(sizes > 0)
    out[nonempty] = np.maximum.reduceat(block, offsets[:-1][nonempty], axis=0)
    return out
