"""The title block: character n-grams for short texts (a title-only record, an interest phrase).

Words alone serve titles poorly: ten words share little with other ten-word titles unless they
share a word's exact form ("segment", "segmentation", "segmenter"). Character n-grams within
words (3 to 5 characters) match those forms. On abstracts they cost a lot (measured: recall@50
0.154 -> 0.116 when every paper gets its title's n-grams at weight 0.5), so the block is given
to short texts only, by length: a text of at most `SHORT_CHARS` characters gets
``[sqrt(1 - w) * words, sqrt(w) * title n-grams]`` (w = `WEIGHT`), a longer text its words
alone. So two short texts compare by (1 - w) * word cosine + w * n-gram cosine, and anything
with a long text by its words only: full-text ranking and keyword interests against abstracts
rank exactly as without the block. Measured on title-only pseudo-users in docs/evaluation.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

#: A text of at most this many characters (stripped) is short: it gets the title block.
#: Titles run to ~250 characters at most; the shortest abstracts are several times longer.
SHORT_CHARS = 300
#: Share of the similarity of two short texts that comes from the title block.
WEIGHT = 0.5
PARAMS: dict[str, Any] = {
    "analyzer": "char_wb", "ngram_range": (3, 5), "min_df": 3, "sublinear_tf": True,
}
#: The n-grams and their idf are learnt from this many titles at most (evenly spread), which
#: keeps the block a small part of a fit. Measured (docs/evaluation.md): 20,000 titles gave
#: title-only recall@50 +10% / +17% (seeds 0 / 1), 5,000 only +5% / +12%.
FIT_SAMPLE = 20_000
#: Rows joined at a time (`TitleBlock.join`).
JOIN_ROWS = 8192
#: Marks a title n-gram among the terms (the words are plain).
MARK = "~"


def short_rows(texts: Sequence[str]) -> list[int]:
    """Which of `texts` are short (get the title block)."""
    return [i for i, t in enumerate(texts) if len(t.strip()) <= SHORT_CHARS]


class TitleBlock:
    """A fitted character n-gram vectorizer of titles and the way it joins the words."""

    def __init__(self, vectorizer: TfidfVectorizer) -> None:
        self.vectorizer = vectorizer

    @classmethod
    def fit(cls, titles: Sequence[str]) -> TitleBlock | None:
        """Learn the n-grams of `titles` (a sample of them); None when there are none."""
        step = max(1, len(titles) // FIT_SAMPLE)
        sample = [t for t in titles[::step] if t.strip()]
        for params in (PARAMS, {**PARAMS, "min_df": 1}):  # a handful of titles: keep all
            vec = TfidfVectorizer(dtype=np.float32, **params)
            try:
                vec.fit(sample)
            except ValueError:
                continue
            vec.stop_words_ = None
            return cls(vec)
        return None

    @property
    def n_features(self) -> int:
        return len(self.vectorizer.vocabulary_)

    @property
    def idf(self) -> npt.NDArray[np.float32]:
        return np.asarray(self.vectorizer.idf_, dtype=np.float32)

    def terms(self) -> npt.NDArray[np.object_]:
        return np.array([MARK + t.strip() for t in self.vectorizer.get_feature_names_out()],
                        dtype=object)

    def join(self, words: sp.csr_matrix, rows: Sequence[int],
             short_texts: Sequence[str]) -> sp.csr_matrix:
        """The word vectors with the title block beside them: `rows` (of `words`) are the
        short texts `short_texts`. Unit-length float32 CSR rows, sorted indices. A corpus is
        joined by slices of rows, so the scratch memory is a slice's, not the corpus's."""
        n = words.shape[0]
        if not len(rows) or n <= JOIN_ROWS:
            return self._join(words, rows, short_texts)
        at = np.asarray(rows)
        parts = []
        for start in range(0, n, JOIN_ROWS):
            inside = np.flatnonzero((at >= start) & (at < start + JOIN_ROWS))
            parts.append(self._join(words[start : start + JOIN_ROWS],
                                    [int(at[i]) - start for i in inside],
                                    [short_texts[int(i)] for i in inside]))
        out: sp.csr_matrix = sp.vstack(parts, format="csr", dtype=np.float32)
        out.sort_indices()
        return out

    def _join(self, words: sp.csr_matrix, rows: Sequence[int],
              short_texts: Sequence[str]) -> sp.csr_matrix:
        n = words.shape[0]
        if not len(rows):
            # Only long texts (a whole corpus of abstracts): `words` itself, made wider in
            # place (no copy of a corpus-sized matrix).
            words.resize((n, words.shape[1] + self.n_features))
            words.sort_indices()
            return words
        grams = sp.csr_matrix((n, self.n_features), dtype=np.float32)
        scale = np.ones(n, dtype=np.float32)
        if len(rows):
            picked = sp.csr_matrix(self.vectorizer.transform(list(short_texts)),
                                   dtype=np.float32)
            select = sp.csr_matrix((np.ones(len(rows), dtype=np.float32),
                                    (np.asarray(rows), np.arange(len(rows)))),
                                   shape=(n, len(rows)))
            grams = sp.csr_matrix(select @ picked, dtype=np.float32) * np.float32(np.sqrt(WEIGHT))
            scale[np.asarray(rows)] = np.sqrt(1 - WEIGHT)
        joined = sp.hstack([sp.diags(scale) @ words, grams], format="csr", dtype=np.float32)
        # A short text of no known word has only its n-grams: back to unit length.
        out: sp.csr_matrix = normalize(joined, copy=False)
        out = sp.csr_matrix(out, dtype=np.float32)
        out.sort_indices()
        return out
