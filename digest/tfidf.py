"""A fast TF-IDF fit that gives what scikit-learn's ``TfidfVectorizer.fit_transform`` gives.

scikit-learn builds every n-gram of every document as a Python string and counts it in a dict:
on 75k abstracts that is 25 million strings, most of them bigrams seen once and pruned by
``min_df`` afterwards. Here each document is tokenized with the same regular expression, tokens
become integer ids (one C-level dict lookup each), and everything after that (stop words,
bigrams as pairs of ids, document frequencies, pruning, tf-idf, l2 norms) is numpy on arrays of
ids. Only the bigrams that survive pruning are ever spelled out as strings. The documents are
tokenized in slices, by a second process when there are enough of them, so both cores work.

The result is a ``TfidfVectorizer`` with that vocabulary and idf (so transforming a query or a
new paper is scikit-learn's own code, and a saved model pickles as before) and the corpus matrix,
already computed: the corpus is not tokenized a second time. Only the word analyzer with
lowercasing, no accent stripping and no preprocessor is supported; `fit_transform` checks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer

from .tokenizer import DEFAULT_PATTERN, Tokens, Worker, WorkerError, merge, tokenize

__all__ = ["Progress", "WorkerError", "fit_transform", "tokenize_stream", "vectorize"]

#: Below this many documents a second process costs more than it saves.
PARALLEL_MIN_DOCS = 20_000
#: Documents per slice (between two progress reports).
SLICE = 5_000

#: A progress callback: (stage, documents done, documents in all).
Progress = Callable[[str, int, int], None]

_SUPPORTED = {"ngram_range", "min_df", "max_df", "sublinear_tf", "stop_words", "dtype", "norm",
              "token_pattern", "lowercase"}


def tokenize_stream(texts: Iterable[str], *, pattern: str = DEFAULT_PATTERN,
                    progress: Progress | None = None, total: int = 0,
                    workers: int = 2) -> Tokens:
    """`tokenize` over `texts` as they come, in slices, keeping only the ids (never all the
    texts at once). With `workers` > 1 and a `total` of at least `PARALLEL_MIN_DOCS`, every
    other slice goes to a second process. `WorkerError` if that process fails: the caller
    reads the texts again with ``workers=1``."""
    worker = Worker(pattern) if workers > 1 and total >= PARALLEL_MIN_DOCS else None
    parts: list[Tokens | None] = []  # None: a slice the worker tokenizes
    batch: list[str] = []
    done = 0

    def flush() -> None:
        nonlocal done, batch
        if worker is not None and len(parts) % 2 == 1:
            worker.send(batch)
            parts.append(None)
        else:
            parts.append(tokenize(batch, pattern))
        done += len(batch)
        batch = []
        if progress:
            progress("reading and tokenizing", done, max(total, done))

    try:
        for text in texts:
            batch.append(text)
            if len(batch) == SLICE:
                flush()
        if batch or not parts:
            flush()
        theirs = worker.results() if worker is not None else []
    except BaseException:
        if worker is not None:
            worker.close()
        raise
    theirs.reverse()
    ordered = [part if part is not None else theirs.pop() for part in parts]
    parts.clear()  # merge empties `ordered`: no other list may hold the parts
    return merge(ordered)


def _dropped(words: list[str], stop_words: bool, one_letter: bool,
             ) -> npt.NDArray[np.bool_] | None:
    """Which word ids the analyzer drops: stop words, and one-letter words that the fast ASCII
    tokenizer lets through. None when nothing is dropped."""
    if not (stop_words or one_letter) or not words:
        return None
    stop = ENGLISH_STOP_WORDS if stop_words else frozenset()
    return np.fromiter((w in stop or (one_letter and len(w) < 2) for w in words), dtype=bool,
                       count=len(words))


def _doc_of(offsets: npt.NDArray[np.int64]) -> npt.NDArray[np.int32]:
    """The document of each position of a flat token array."""
    return np.repeat(np.arange(len(offsets) - 1, dtype=np.int32), np.diff(offsets))


def _count(rows: npt.NDArray[np.int32], cols: npt.NDArray[Any], n_rows: int,
           n_cols: int) -> sp.csr_matrix:
    """Counts of (row, col) pairs as a CSR matrix (float32, sorted indices)."""
    m = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                      shape=(n_rows, n_cols))
    m.sum_duplicates()
    return m


def _frequent(codes: npt.NDArray[np.int64], min_count: float) -> npt.NDArray[np.int64]:
    """The distinct values of `codes` that occur at least `min_count` times, sorted. With
    boolean masks only (a value starts a long enough run where it differs from the one before
    and equals the one `min_count` - 1 after), so that no array of run lengths is needed."""
    ordered = np.sort(codes)
    n, k = len(ordered), max(int(np.ceil(min_count)), 1)
    if n < k:
        return ordered[:0]
    first = np.ones(n - k + 1, dtype=bool)
    np.not_equal(ordered[1 : n - k + 1], ordered[: n - k], out=first[1:])
    first &= ordered[: n - k + 1] == ordered[k - 1 :]
    return ordered[: n - k + 1][first]


def _lookup(codes: npt.NDArray[np.int64], values: npt.NDArray[np.int64],
            ) -> npt.NDArray[np.int32]:
    """The position of each value in sorted `codes`, -1 where it is not there; a million
    values at a time, so that the int64 positions are never all held at once."""
    out = np.full(len(values), -1, dtype=np.int32)
    if not len(codes):
        return out
    for start in range(0, len(values), 1 << 20):
        chunk = values[start : start + (1 << 20)]
        pos = np.searchsorted(codes, chunk)
        pos[pos == len(codes)] = 0
        out[start : start + len(chunk)] = np.where(codes[pos] == chunk, pos, -1)
    return out


def _keep_columns(m: sp.csr_matrix, keep: npt.NDArray[np.bool_]) -> sp.csr_matrix:
    """The columns of `m` where `keep`, renumbered in order, without scipy's fancy indexing."""
    new = np.full(len(keep), -1, dtype=np.int64)
    new[keep] = np.arange(int(keep.sum()))
    cols = new[m.indices]
    alive = cols >= 0
    counts = np.add.reduceat(alive, m.indptr[:-1]) if len(alive) else np.zeros(0, np.int64)
    counts[np.diff(m.indptr) == 0] = 0  # reduceat repeats the next value for an empty row
    indptr = np.zeros(m.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return sp.csr_matrix((m.data[alive], cols[alive], indptr), shape=(m.shape[0], int(keep.sum())))


def check_params(params: dict[str, Any]) -> None:
    """ValueError unless `fit_transform` supports these `TfidfVectorizer` parameters."""
    unknown = set(params) - _SUPPORTED
    if unknown:
        raise ValueError(f"fast TF-IDF fit does not support {sorted(unknown)}")
    lo, hi = params.get("ngram_range", (1, 1))
    if lo != 1 or hi not in (1, 2) or params.get("lowercase", True) is not True:
        raise ValueError("fast TF-IDF fit supports lowercased unigrams, or uni- and bigrams")
    if params.get("stop_words") not in (None, "english"):
        raise ValueError("fast TF-IDF fit supports stop_words None or 'english'")
    if params.get("norm", "l2") not in ("l2", None):
        raise ValueError("fast TF-IDF fit supports norm 'l2' or None")


#: Rows joined at a time by `_join`: its scratch memory is this slice's, not the matrix's.
_JOIN_ROWS = 8192


def _join(blocks: list[sp.csr_matrix], position: npt.NDArray[np.int32]) -> sp.csr_matrix:
    """The blocks side by side, column j of the joined matrix renumbered `position[j]`, with
    sorted indices. Slice by slice of rows, so that scipy's whole-matrix hstack (which goes
    through COO triplets) never holds the matrix three times over."""
    n_rows = blocks[0].shape[0]
    parts = []
    for start in range(0, n_rows, _JOIN_ROWS):
        part = sp.hstack([b[start : start + _JOIN_ROWS] for b in blocks], format="csr",
                         dtype=np.float32)
        part.indices = position[part.indices]
        part.has_sorted_indices = False
        part.sort_indices()
        parts.append(part)
    blocks.clear()  # the caller's list: the blocks go as soon as the slices are made
    joined = sp.vstack(parts, format="csr", dtype=np.float32)
    joined.indices = joined.indices.astype(np.int32, copy=False)
    return joined


def fit_transform(texts: Iterable[str], params: dict[str, Any], *,
                  progress: Progress | None = None, total: int = 0, workers: int = 2,
                  ) -> tuple[TfidfVectorizer, sp.csr_matrix]:
    """A fitted `TfidfVectorizer` with `params` and the tf-idf matrix of `texts`, as its
    ``fit_transform`` would give them (float32 CSR, sorted indices). `texts` is read once, as
    it comes (`total`: how many to expect, for progress and the second process). Raises
    ValueError as scikit-learn does when pruning leaves nothing."""
    check_params(params)
    tokens = tokenize_stream(texts, pattern=params.get("token_pattern", DEFAULT_PATTERN),
                             progress=progress, total=total, workers=workers)
    return vectorize(tokens, params, progress=progress)


def vectorize(tokens: Tokens, params: dict[str, Any], *, progress: Progress | None = None,
              ) -> tuple[TfidfVectorizer, sp.csr_matrix]:
    """`fit_transform` of documents already tokenized (`tokenize_stream`)."""
    check_params(params)
    hi = params.get("ngram_range", (1, 1))[1]
    stop = params.get("stop_words")
    n_docs = len(tokens.offsets) - 1
    min_df, max_df = params.get("min_df", 1), params.get("max_df", 1.0)
    min_count = min_df if isinstance(min_df, int) else min_df * n_docs
    max_count = max_df if isinstance(max_df, int) else max_df * n_docs
    if max_count < min_count:
        raise ValueError("max_df corresponds to < documents than min_df")
    if progress:
        progress("vectorizing", 0, n_docs)
    words = tokens.words
    n_words = len(words)
    doc = _doc_of(tokens.offsets)
    pattern = params.get("token_pattern", DEFAULT_PATTERN)
    dropped = _dropped(words, stop == "english", pattern == DEFAULT_PATTERN)
    ids = tokens.ids
    if dropped is not None:
        keep = ~dropped[ids]
        ids, doc = ids[keep], doc[keep]
        del keep
        # The dropped words are gone for good (dropping again drops nothing): `tokens` keeps
        # only the rest, so the full ids are not held while the matrix is built.
        tokens.ids = ids
        tokens.offsets = np.zeros(n_docs + 1, dtype=np.int64)
        np.cumsum(np.bincount(doc, minlength=n_docs), out=tokens.offsets[1:])

    # Unigram counts, and bigram counts of the pairs seen at least `min_count` times in all
    # (a pair seen fewer times cannot be in that many documents): most pairs occur once, and
    # are dropped before any matrix holds them.
    blocks = [(_count(doc, ids, n_docs, n_words), np.arange(n_words, dtype=np.int64), False)]
    if hi == 2 and len(ids) > 1:
        same = doc[:-1] == doc[1:]
        pairs = ((ids[:-1].astype(np.int64) << 32) | ids[1:])[same]
        pair_doc = doc[:-1][same]
        del same, ids, doc
        codes = _frequent(pairs, min_count)
        col = _lookup(codes, pairs)
        del pairs
        found = col >= 0
        blocks.append((_count(pair_doc[found], col[found], n_docs, len(codes)), codes, True))
        del col, found, pair_doc
    else:
        del ids, doc

    names: list[str] = []
    kept: list[sp.csr_matrix] = []
    while blocks:
        m, codes, is_pair = blocks.pop(0)
        df = np.bincount(m.indices, minlength=m.shape[1])
        keep = (df >= min_count) & (df <= max_count)
        kept.append(_keep_columns(m, keep))
        del m
        codes = codes[keep]
        if is_pair:
            firsts, seconds = (codes >> 32).tolist(), (codes & 0xFFFFFFFF).tolist()
            names.extend(f"{words[a]} {words[b]}" for a, b in zip(firsts, seconds, strict=True))
        else:
            names.extend(words[c] for c in codes.tolist())
    if not names:
        if n_words == 0:
            raise ValueError("empty vocabulary; perhaps the documents only contain stop words")
        raise ValueError("After pruning, no terms remain. Try a lower min_df or a higher max_df.")
    # Columns in alphabetical order of their terms, as scikit-learn sorts its vocabulary.
    order = sorted(range(len(names)), key=names.__getitem__)
    position = np.empty(len(names), dtype=np.int32)
    position[np.array(order, dtype=np.int64)] = np.arange(len(names), dtype=np.int32)
    vocabulary = {names[c]: i for i, c in enumerate(order)}
    del names, order
    counts = _join(kept, position)
    del kept

    df = np.bincount(counts.indices, minlength=counts.shape[1]).astype(np.float64)
    idf = np.log((1 + n_docs) / (1 + df)) + 1
    data = counts.data
    if params.get("sublinear_tf"):
        np.log(data, out=data)
        data += 1
    data *= idf.astype(np.float32)[counts.indices]
    if params.get("norm", "l2") == "l2":
        sq = np.add.reduceat(data * data, counts.indptr[:-1]) if len(data) else np.zeros(0)
        sq = np.where(np.diff(counts.indptr) == 0, 1.0, sq)
        norms = np.sqrt(sq, dtype=np.float64).astype(np.float32)
        norms[norms == 0] = 1
        data /= np.repeat(norms, np.diff(counts.indptr))

    vec = TfidfVectorizer(**{"dtype": np.float32, **params})
    vec.vocabulary_ = vocabulary
    vec.fixed_vocabulary_ = False
    vec.idf_ = idf.astype(np.float32)
    if progress:
        progress("vectorizing", n_docs, n_docs)
    return vec, counts
