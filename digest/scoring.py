"""Scoring math: interest query vectors and the chunked profile x paper product.

Pure functions over matrices; nothing here knows about the store. Rows of every matrix are
unit-length TF-IDF vectors (`digest.model.TextModel.transform`), so a dot product is a cosine.

The pipeline, as the product runs it::

    centroids = group_means(corpus_vectors, seed_offsets, rows=seed_rows)
    text = expand(model.transform(texts), corpus_vectors)   # text-only interests
    queries = interest_queries(centroids, text, idf=model.idf)
    papers = prepare(new_paper_vectors)
    top = score(queries, papers, offsets=profile_offsets, weights=interest_weights)

Vocabulary used below:

- a *group* is a run of consecutive query rows that belong together (the interests of one
  profile). Groups are given as `offsets`, like CSR ``indptr``: group ``g`` owns rows
  ``offsets[g]:offsets[g+1]``. A paper's score for a group is its best row score, each row
  multiplied by its weight: a narrow second interest is scored on its own and is never diluted
  by a broad first one.
- `score` keeps memory flat: it multiplies a chunk of query rows at a time and keeps only
  the top-k per group (`argpartition`), never the full groups x papers matrix.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]

#: Weight of the interest text against the seed centroid when an interest has both. Not
#: measured (the evaluation has seed-only and text-only interests): an even split, so a
#: phrase the person wrote steers the ranking as much as their dozen seed papers.
TEXT_WEIGHT = 0.5

#: Query terms kept per interest vector; None keeps all. Pruning a sharpened centroid to its
#: 1000 heaviest terms saves ~20% of scoring time and costs 4% recall@50 (400 terms: 9%,
#: docs/evaluation.md): the light terms are the rare n-grams one seed shares with a paper.
MAX_QUERY_TERMS: int | None = None

#: Query terms are multiplied by idf ** IDF_POWER (`sharpen`): paper vectors already carry
#: idf once, so a query's rare terms (a method's name, a dataset) count more than in a plain
#: cosine. Measured: +11% recall@50 over the unsharpened centroid (docs/evaluation.md).
IDF_POWER = 1.5

#: Pseudo-relevance feedback for interests given only as text: the top `PRF_DOCS` corpus papers
#: for the text are averaged into the query with weight `PRF_WEIGHT`.
PRF_DOCS = 20
PRF_WEIGHT = 0.7
#: Against drift (`expand`): a feedback paper scores at least this share of the best one.
PRF_MIN_RATIO = 0.5
#: Corpus papers per feedback paper in a small corpus (`feedback_docs`).
PRF_CORPUS_PER_DOC = 250


@dataclass(frozen=True, slots=True)
class TopK:
    """Best papers per group, best first. Rows with fewer than k papers are padded with
    index -1 and score -inf."""

    indices: IntArray
    scores: FloatArray


def normalize_rows(m: sp.spmatrix) -> sp.csr_matrix:
    """Rows scaled to unit L2 length (all-zero rows stay zero); CSR float32."""
    return _normalize_inplace(sp.csr_matrix(m, dtype=np.float32, copy=True))


def _row_norms(m: sp.csr_matrix) -> FloatArray:
    """L2 length of each row of a CSR matrix (float32, summed in float64)."""
    lengths = np.diff(m.indptr)
    sums = np.zeros(m.shape[0])
    nonempty = lengths > 0
    if nonempty.any():
        sums[nonempty] = np.add.reduceat(np.square(m.data, dtype=np.float64),
                                         m.indptr[:-1][nonempty])
    return np.sqrt(sums).astype(np.float32)


def _normalize_inplace(m: sp.csr_matrix) -> sp.csr_matrix:
    """`normalize_rows` on a CSR float32 matrix the caller owns, without a copy."""
    norms = _row_norms(m)
    norms[norms == 0] = 1.0
    m.data *= np.repeat(np.reciprocal(norms), np.diff(m.indptr))
    return m


def _check_offsets(offsets: npt.ArrayLike, n_rows: int) -> IntArray:
    off = np.asarray(offsets, dtype=np.int64)
    if off.ndim != 1 or len(off) < 1 or off[0] != 0 or off[-1] != n_rows:
        raise ValueError(f"offsets must run from 0 to {n_rows} (the number of rows)")
    if np.any(np.diff(off) < 0):
        raise ValueError("offsets must be non-decreasing")
    return off


def group_means(
    vectors: sp.spmatrix,
    offsets: npt.ArrayLike,
    *,
    max_terms: int | None = MAX_QUERY_TERMS,
    rows: npt.ArrayLike | None = None,
    chunk: int = 1024,
    normalize: bool = True,
) -> sp.csr_matrix:
    """One unit-length centroid per group of rows: the seed centroid of each interest
    (`normalize` False: the plain mean, for a caller that normalises later).

    Group ``g`` is rows ``rows[offsets[g]:offsets[g+1]]`` of `vectors` (`rows` defaults to
    all rows in order, so seeds can be picked straight out of the corpus matrix without a
    copy). An empty group gives an all-zero row. Each centroid keeps its `max_terms` heaviest
    terms (None: all). Sparse products over `chunk` groups at a time: no loop per group, and
    memory bounded by the chunk.
    """
    vecs = sp.csr_matrix(vectors)
    picked = np.arange(vecs.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
    off = _check_offsets(offsets, len(picked))
    sizes = np.diff(off)
    parts = []
    for g0 in range(0, len(sizes), chunk):
        g1 = min(g0 + chunk, len(sizes))
        r0, r1 = int(off[g0]), int(off[g1])
        owner = np.repeat(np.arange(g1 - g0), sizes[g0:g1])
        weights = (1.0 / np.maximum(sizes[g0:g1], 1))[owner].astype(np.float32)
        avg = sp.csr_matrix((weights, (owner, picked[r0:r1])), shape=(g1 - g0, vecs.shape[0]))
        means = avg @ vecs
        means = sp.csr_matrix(means, dtype=np.float32)
        if max_terms is not None:
            means = prune(means, max_terms)
        elif normalize:
            means = _normalize_inplace(means)
        parts.append(means)
    if not parts:
        return sp.csr_matrix((0, vecs.shape[1]), dtype=np.float32)
    if len(parts) == 1:
        return parts[0]
    return sp.csr_matrix(sp.vstack(parts, format="csr"), dtype=np.float32)


def prune(queries: sp.spmatrix, max_terms: int, *, chunk: int = 1024) -> sp.csr_matrix:
    """Keep each row's `max_terms` largest weights (ties at the cut kept), renormalised.
    Works on `chunk` rows at a time to bound memory."""
    q = sp.csr_matrix(queries, dtype=np.float32, copy=True)
    lengths = np.diff(q.indptr)
    thresholds = np.full(q.shape[0], -np.inf, dtype=np.float32)
    for r0 in range(0, q.shape[0], chunk):
        rows = r0 + np.flatnonzero(lengths[r0 : r0 + chunk] > max_terms)
        if not len(rows):
            continue
        # Scatter the long rows into a padded dense block and find every row's cut with one
        # partition along the rows, instead of a loop over rows.
        lens = lengths[rows]
        width = int(lens.max())
        block = np.full((len(rows), width), -np.inf, dtype=np.float32)
        slot = np.repeat(np.arange(len(rows)), lens)
        pos = np.arange(len(slot)) - np.repeat(np.cumsum(lens) - lens, lens)
        block[slot, pos] = q.data[np.repeat(q.indptr[rows], lens) + pos]
        thresholds[rows] = np.partition(block, width - max_terms, axis=1)[:, width - max_terms]
    q.data[q.data < np.repeat(thresholds, lengths)] = 0
    q.eliminate_zeros()
    return normalize_rows(q)


def sharpen(
    queries: sp.spmatrix, idf: npt.ArrayLike, *, power: float = IDF_POWER
) -> sp.csr_matrix:
    """Queries with each term scaled by ``idf ** power``, rows renormalised."""
    q = sp.csr_matrix(queries, dtype=np.float32, copy=True)
    scale = np.asarray(idf, dtype=np.float32) ** np.float32(power)
    if len(scale) != q.shape[1]:
        raise ValueError(f"idf has {len(scale)} terms, queries have {q.shape[1]}")
    q.data *= scale[q.indices]
    return normalize_rows(q)


def interest_queries(
    seed_centroids: sp.spmatrix | None,
    text_vectors: sp.spmatrix | None,
    *,
    idf: npt.ArrayLike | None = None,
    text_weight: float = TEXT_WEIGHT,
) -> sp.csr_matrix:
    """Query vector per interest from its seed centroid and its text vector (same row order),
    sharpened by `idf` when given (`sharpen`).

    Either input may be None; rows that are all-zero in one input (an interest without seeds,
    or without text) take the other input alone. Rows are unit length.
    """
    if seed_centroids is None and text_vectors is None:
        raise ValueError("an interest needs seeds or text")
    # One copy, scaled in place: normalising a row before the final normalisation only matters
    # where the two sides are mixed; where one side is absent the other takes full weight.
    total: sp.csr_matrix | None = None
    for side, w in ((seed_centroids, 1.0 - text_weight), (text_vectors, text_weight)):
        if side is None:
            continue
        part = sp.csr_matrix(side, dtype=np.float32, copy=True)
        if not part.nnz and total is not None:
            continue
        norms = _row_norms(part)
        scale = np.where(norms > 0, np.float32(w) / np.maximum(norms, np.float32(1e-30)), 0)
        part.data *= np.repeat(scale.astype(np.float32), np.diff(part.indptr))
        total = part if total is None or not total.nnz else sp.csr_matrix(total + part)
    assert total is not None
    if idf is not None:
        scale_terms = np.asarray(idf, dtype=np.float32) ** np.float32(IDF_POWER)
        if len(scale_terms) != total.shape[1]:
            raise ValueError(f"idf has {len(scale_terms)} terms, queries have {total.shape[1]}")
        total.data *= scale_terms[total.indices]
    total = _normalize_inplace(total)
    return total if MAX_QUERY_TERMS is None else prune(total, MAX_QUERY_TERMS)


def expand(
    queries: sp.spmatrix,
    corpus: sp.spmatrix,
    *,
    n_docs: int | None = None,
    weight: float = PRF_WEIGHT,
    chunk: int = 512,
    prepared: PreparedPapers | None = None,
) -> sp.csr_matrix:
    """Pseudo-relevance feedback (Rocchio): add to each query the mean of its best corpus
    papers, with `weight`. Meant for short text-only interests, whose few words miss the
    synonyms and method names papers on the topic use. `n_docs`: how many papers feed back
    (default `feedback_docs` of the corpus size). `prepared`: `corpus` laid out by `prepare`,
    when expanding many batches against it.

    Guarded against drift (a query whose words also fit another topic: "dense captions" and
    dense LiDAR SLAM): a feedback paper must score at least `PRF_MIN_RATIO` of the best one,
    and a term only one feedback paper has is not added, so one off-topic paper's vocabulary
    ("lidar", "gaussians") does not enter the query. What is dropped is not made up by the
    others: the feedback keeps the weight its terms had in the plain mean. Measured on the
    keyword evaluation (docs/evaluation.md): AP@1000 0.625 against 0.627 unguarded."""
    q = sp.csr_matrix(queries, dtype=np.float32)
    n = feedback_docs(corpus.shape[0]) if n_docs is None else n_docs
    top = score(q, corpus if prepared is None else prepared, top_k=n, chunk=chunk)
    best = top.scores[:, :1] if top.scores.shape[1] else np.zeros((q.shape[0], 1), np.float32)
    valid = (top.indices >= 0) & (top.scores > 0) & (top.scores >= PRF_MIN_RATIO * best)
    per_query = valid.sum(axis=1)
    rows = np.repeat(np.arange(q.shape[0]), per_query)
    docs = sp.csr_matrix(corpus)[top.indices[valid]]  # one row per (query, feedback paper)
    picks = np.arange(len(rows))
    counts = np.maximum(per_query, 1).astype(np.float32)
    avg = sp.csr_matrix(((1.0 / counts[rows]).astype(np.float32), (rows, picks)),
                        shape=(q.shape[0], len(rows)))
    feedback = sp.csr_matrix(avg @ docs)
    norms = _row_norms(feedback)
    # How many feedback papers have each term (the same pattern as `feedback`).
    having = sp.csr_matrix(avg @ _ones_like(docs))
    having.data = (having.data * np.repeat(counts, np.diff(having.indptr)) > 1.5).astype(
        np.float32)
    feedback = sp.csr_matrix(feedback.multiply(having))
    norms[norms == 0] = 1
    feedback.data /= np.repeat(norms, np.diff(feedback.indptr))
    mixed = normalize_rows(q) * np.float32(1.0 - weight) + feedback * np.float32(weight)
    return normalize_rows(mixed) if MAX_QUERY_TERMS is None else prune(mixed, MAX_QUERY_TERMS)


def feedback_docs(n_corpus: int) -> int:
    """Papers that feed back into a text-only interest: `PRF_DOCS`, fewer in a small corpus
    (one in `PRF_CORPUS_PER_DOC`, at least 3), where 20 papers are no longer a topic."""
    return max(3, min(PRF_DOCS, n_corpus // PRF_CORPUS_PER_DOC))


def _ones_like(m: sp.csr_matrix) -> sp.csr_matrix:
    """`m`'s pattern with every stored value 1."""
    return sp.csr_matrix((np.ones_like(m.data), m.indices, m.indptr), shape=m.shape)


def _chunks(off: IntArray, chunk: int) -> list[tuple[int, int]]:
    """Split groups into runs of at most `chunk` rows (a bigger group gets a run alone)."""
    out: list[tuple[int, int]] = []
    g, n = 0, len(off) - 1
    while g < n:
        end = int(np.searchsorted(off, off[g] + chunk, side="right")) - 1
        end = min(max(end, g + 1), n)
        out.append((g, end))
        g = end
    return out


#: Terms most frequent among the papers scored, handled by a dense BLAS product. A common term
#: makes every query that has it add to thousands of papers; as a dense block it costs little,
#: and the sparse kernel keeps the rarer terms (docs/design.md, "Scoring speed").
HEAD_TERMS = 1024
#: Memory the dense head block may take: with many papers (query expansion scores the whole
#: corpus) the head shrinks to fit.
HEAD_BYTES = 64 << 20

#: Threads scoring chunks at once: the kernel and BLAS release the GIL.
WORKERS = 2


@dataclass(frozen=True, slots=True)
class PreparedPapers:
    """A paper matrix laid out for repeated scoring (see `prepare`)."""

    n_papers: int
    #: Postings of the tail terms, by term of the model (CSR, terms x papers; a head term or
    #: a term no paper has owns an empty range): the papers having it, with their weights.
    tail_ptr: npt.NDArray[np.int32]
    tail_papers: npt.NDArray[np.int32]
    tail_weights: FloatArray
    #: A (terms x head) selector picking the head terms out of queries, and the head block,
    #: dense (head terms x papers).
    head_select: sp.csr_matrix
    head_t: FloatArray


def prepare(papers: sp.spmatrix, *, head_terms: int = HEAD_TERMS,
            head_bytes: int = HEAD_BYTES) -> PreparedPapers:
    """Lay out `papers` for scoring: a dense block of their most frequent terms (BLAS) and
    postings of the rest (`similarities`)."""
    p = sp.csr_matrix(papers, dtype=np.float32)
    n_papers, n_terms = p.shape
    df = np.bincount(p.indices, minlength=n_terms)
    present = np.flatnonzero(df)
    h = min(head_terms, len(present), head_bytes // max(4 * n_papers, 1))
    head = (np.sort(present[np.argpartition(-df[present], h - 1)[:h]]) if h > 0
            else np.zeros(0, dtype=np.int64))
    pt = p.T.tocsr()
    head_t = np.asarray(pt[head].todense(), dtype=np.float32).reshape(len(head), n_papers)
    keep = np.ones(n_terms, dtype=np.float32)
    keep[head] = 0
    tail_t = sp.csr_matrix(sp.diags(keep) @ pt, dtype=np.float32)
    tail_t.eliminate_zeros()
    if tail_t.nnz >= 2**31:  # pragma: no cover - billions of postings
        raise ValueError("too many papers to score at once")
    select = sp.csr_matrix(
        (np.ones(len(head), dtype=np.float32), (head, np.arange(len(head)))),
        shape=(n_terms, len(head)),
    )
    return PreparedPapers(
        n_papers, tail_t.indptr.astype(np.int32), tail_t.indices.astype(np.int32),
        tail_t.data, select, np.ascontiguousarray(head_t),
    )


@numba.njit(nogil=True, cache=True)
def _accumulate(qptr: Any, qidx: Any, qval: Any, tptr: Any, tpapers: Any, tweights: Any,
                out: Any) -> None:  # pragma: no cover - compiled
    # For each query row, each of its terms adds its postings, weighted, to the row of `out`
    # (a few kB: it stays in cache). The cost is one lookup per query term plus its postings.
    for r in range(len(qptr) - 1):
        row = out[r]
        for a in range(qptr[r], qptr[r + 1]):
            t = qidx[a]
            w = qval[a]
            for b in range(tptr[t], tptr[t + 1]):
                row[tpapers[b]] += w * tweights[b]


def similarities(queries: sp.spmatrix, papers: PreparedPapers) -> FloatArray:
    """Dense (queries x papers) cosine block: a compiled kernel walks the postings of the
    rarer terms, BLAS multiplies the head."""
    q = sp.csr_matrix(queries, dtype=np.float32)
    if not q.nnz or not papers.head_t.shape[0]:
        out = np.zeros((q.shape[0], papers.n_papers), dtype=np.float32)
    else:  # the head product first, then the kernel adds the tail into it: no extra pass
        out = np.ascontiguousarray((q @ papers.head_select).toarray() @ papers.head_t,
                                   dtype=np.float32)
    if q.nnz:
        _accumulate(q.indptr, q.indices, q.data, papers.tail_ptr, papers.tail_papers,
                    papers.tail_weights, out)
    return out


@numba.njit(nogil=True, cache=True)
def _merge_dots(aptr: Any, aidx: Any, aval: Any, bptr: Any, bidx: Any, bval: Any,
                out: Any) -> None:  # pragma: no cover - compiled
    # Each pair of rows: one merge of their sorted term lists.
    for i in range(len(aptr) - 1):
        for j in range(len(bptr) - 1):
            x, x_end, y, y_end = aptr[i], aptr[i + 1], bptr[j], bptr[j + 1]
            total = 0.0
            while x < x_end and y < y_end:
                tx, ty = aidx[x], bidx[y]
                if tx == ty:
                    total += aval[x] * bval[y]
                    x += 1
                    y += 1
                elif tx < ty:
                    x += 1
                else:
                    y += 1
            out[i, j] = total


def _sorted_csr(m: sp.spmatrix) -> sp.csr_matrix:
    m = sp.csr_matrix(m, dtype=np.float32)
    return m if m.has_sorted_indices else m.sorted_indices()


def row_dots(a: sp.spmatrix, b: sp.spmatrix) -> FloatArray:
    """``a @ b.T`` as a dense array, for matrices of a few rows (a profile's queries, its
    chosen papers): merges each pair of rows instead of transposing `b`, which for a model of
    half a million terms costs a millisecond per call whatever the rows hold."""
    a, b = _sorted_csr(a), _sorted_csr(b)
    out = np.zeros((a.shape[0], b.shape[0]), dtype=np.float32)
    if a.nnz and b.nnz:
        _merge_dots(a.indptr, a.indices, a.data, b.indptr, b.indices, b.data, out)
    return out


def shared_terms(a: sp.spmatrix, b: sp.spmatrix) -> list[tuple[IntArray, FloatArray]]:
    """For each row pair (a[r], b[r]): the terms both have and the products of their weights
    (what each term adds to the rows' dot product)."""
    a, b = _sorted_csr(a), _sorted_csr(b)
    out = []
    for r in range(a.shape[0]):
        ai, av = a.indices[a.indptr[r] : a.indptr[r + 1]], a.data[a.indptr[r] : a.indptr[r + 1]]
        bi, bv = b.indices[b.indptr[r] : b.indptr[r + 1]], b.data[b.indptr[r] : b.indptr[r + 1]]
        common, ia, ib = np.intersect1d(ai, bi, assume_unique=True, return_indices=True)
        out.append((common.astype(np.int64), (av[ia] * bv[ib]).astype(np.float32)))
    return out


def score(
    queries: sp.spmatrix,
    papers: sp.spmatrix | PreparedPapers,
    *,
    offsets: npt.ArrayLike | None = None,
    weights: npt.ArrayLike | None = None,
    top_k: int = 50,
    chunk: int = 1024,
    workers: int = WORKERS,
) -> TopK:
    """Top-k papers per group of query rows, by the best weighted cosine within the group.

    `offsets` groups the rows (default: each row alone); `weights` scales each row's scores
    (default 1). `chunk` bounds the query rows multiplied at once, so memory is about
    ``workers * chunk * n_papers * 12`` bytes whatever the number of queries (`workers`
    chunks are scored at once, in threads). Pass `prepare(papers)`
    when scoring several batches against the same papers.
    """
    q = sp.csr_matrix(queries, dtype=np.float32)
    prepared = papers if isinstance(papers, PreparedPapers) else prepare(papers)
    n_rows, n_papers = q.shape[0], prepared.n_papers
    off = _check_offsets(np.arange(n_rows + 1) if offsets is None else offsets, n_rows)
    w = None if weights is None else np.asarray(weights, dtype=np.float32).reshape(-1, 1)
    if w is not None and len(w) != n_rows:
        raise ValueError(f"weights has {len(w)} entries for {n_rows} query rows")
    n_groups = len(off) - 1
    k = min(top_k, n_papers)
    idx = np.full((n_groups, top_k), -1, dtype=np.int64)
    val = np.full((n_groups, top_k), -np.inf, dtype=np.float32)
    if k == 0 or n_groups == 0:
        return TopK(idx, val)

    def run(bounds: tuple[int, int]) -> None:
        g0, g1 = bounds
        r0, r1 = int(off[g0]), int(off[g1])
        block = similarities(q[r0:r1], prepared)
        if w is not None:
            block *= w[r0:r1]
        sizes = np.diff(off[g0 : g1 + 1])
        if np.all(sizes == 1):
            best = block
        else:
            best = np.full((g1 - g0, n_papers), -np.inf, dtype=np.float32)
            nonempty = sizes > 0
            if nonempty.any():
                starts = off[g0:g1][nonempty] - r0
                best[nonempty] = np.maximum.reduceat(block, starts, axis=0)
        _top_into(best, k, idx[g0:g1], val[g0:g1])  # each chunk writes its own rows

    chunks = _chunks(off, chunk)
    if workers <= 1 or len(chunks) == 1:
        for bounds in chunks:
            run(bounds)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(run, chunks))
    return TopK(idx, val)


def _top_into(best: npt.NDArray[Any], k: int, idx: IntArray, val: FloatArray) -> None:
    n = best.shape[1]
    if k < n:
        part = np.argpartition(best, n - k, axis=1)[:, n - k :]
    else:
        part = np.broadcast_to(np.arange(n), best.shape)
    part_scores = np.take_along_axis(best, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    top = np.take_along_axis(part, order, axis=1)
    top_scores = np.take_along_axis(part_scores, order, axis=1)
    # A group with no query rows scores -inf everywhere: report no papers for it.
    top[~np.isfinite(top_scores)] = -1
    idx[:, :k] = top
    val[:, :k] = top_scores
