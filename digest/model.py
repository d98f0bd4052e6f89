"""The text model: a fitted TF-IDF vectorizer that turns papers and interest texts into vectors.

Vectors are sparse, float32, with unit-length rows, so a dot product is a cosine similarity.
The parameters below are the ones `bench/eval.py` chose on real data (see docs/evaluation.md):
unigrams and bigrams with a low `min_df` keep method and dataset names ("gaussian splatting",
"lora"), which are what tells one author's papers from another's; sublinear term frequency stops
a word repeated in one abstract from dominating it.

A saved model is a directory with ``vectorizer.pkl`` (pickle: load only files you wrote) and
``meta.json`` (parameters, corpus size, fit time, format version).
"""

from __future__ import annotations

import datetime as dt
import json
import pickle
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from digest.errors import DigestError
from digest.text import clean

#: Bumped whenever a saved model could score differently from a fresh one (parameters,
#: text recipe, vectorizer layout). Older files are rejected, not silently reused.
FORMAT_VERSION = 1

#: TF-IDF parameters chosen by the evaluation.
TFIDF_PARAMS: dict[str, Any] = {
    "ngram_range": (1, 2),
    "min_df": 3,
    "max_df": 0.5,
    "sublinear_tf": True,
    "stop_words": "english",
}

#: How many times the title is repeated in front of the abstract. Measured: twice scored the
#: same as once (recall@50 0.156 vs 0.154, nDCG@10 0.109 vs 0.110), see docs/evaluation.md.
TITLE_REPEAT = 1

_VECTORIZER_FILE = "vectorizer.pkl"
_META_FILE = "meta.json"


class ModelError(DigestError, ValueError):
    """A text model could not be used: not fitted, or a saved model is missing or incompatible."""


def paper_text(title: str, abstract: str, *, title_repeat: int = TITLE_REPEAT) -> str:
    """The text a paper is scored on: clean title (repeated `title_repeat` times) and abstract."""
    t = clean(title)
    return " ".join([t] * title_repeat + [clean(abstract)])


class TextModel:
    """A TF-IDF vectorizer with the project's parameters, fit once on a corpus and persisted."""

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        self.params: dict[str, Any] = dict(TFIDF_PARAMS if params is None else params)
        self.n_docs = 0
        self.fitted_at: dt.datetime | None = None
        self._vectorizer: TfidfVectorizer | None = None
        self._terms: np.ndarray[Any, np.dtype[np.object_]] | None = None

    @property
    def fitted(self) -> bool:
        return self._vectorizer is not None

    @property
    def n_features(self) -> int:
        return len(self._require().vocabulary_)

    def fit(self, texts: Iterable[str], *, now: dt.datetime | None = None) -> TextModel:
        """Learn vocabulary and IDF from `texts` (paper texts, see `paper_text`)."""
        vec = TfidfVectorizer(dtype=np.float32, norm="l2", **self.params)
        docs = list(texts)
        if not docs:
            raise ModelError("cannot fit a text model on an empty corpus")
        try:
            vec.fit(docs)
        except ValueError:
            # A corpus of a handful of papers cannot satisfy min_df/max_df: keep every term.
            small = {**self.params, "min_df": 1, "max_df": 1.0}
            vec = TfidfVectorizer(dtype=np.float32, norm="l2", **small)
            try:
                vec.fit(docs)
            except ValueError as exc:
                raise ModelError(f"cannot fit a text model on {len(docs)} papers: {exc}") \
                    from None
        # Every pruned n-gram is kept here; it is only for introspection and would make the
        # saved file tens of megabytes larger.
        vec.stop_words_ = None
        self._vectorizer = vec
        self._terms = None
        self.n_docs = len(docs)
        self.fitted_at = now or dt.datetime.now(dt.UTC)
        return self

    def transform(self, texts: Iterable[str]) -> sp.csr_matrix:
        """Vectors of `texts`: CSR, float32, unit-length rows (all-zero for texts of no known
        term)."""
        m = self._require().transform(list(texts))
        out: sp.csr_matrix = sp.csr_matrix(m, dtype=np.float32)
        out.sort_indices()
        return out

    @property
    def idf(self) -> npt.NDArray[np.float32]:
        """Inverse document frequency of each term (vector column), for `scoring.sharpen`."""
        return np.asarray(self._require().idf_, dtype=np.float32)

    def terms(self) -> np.ndarray[Any, np.dtype[np.object_]]:
        """Feature names, indexed like the vector columns."""
        if self._terms is None:
            self._terms = self._require().get_feature_names_out()
        return self._terms

    def top_terms(
        self, query_vec: sp.spmatrix, doc_vec: sp.spmatrix, k: int = 5
    ) -> list[tuple[str, float]]:
        """The `k` terms contributing most to the similarity of two vectors (one row each),
        largest first, with their share of the dot product. Only terms present in both."""
        contrib = sp.csr_matrix(query_vec).multiply(sp.csr_matrix(doc_vec)).tocsr()
        if contrib.shape[0] != 1:
            raise ModelError(f"top_terms takes one row per vector, got {contrib.shape[0]}")
        cols, vals = contrib.indices, contrib.data
        keep = vals > 0
        cols, vals = cols[keep], vals[keep]
        order = np.argsort(-vals, kind="stable")[:k]
        names = self.terms()
        return [(str(names[c]), float(v)) for c, v in zip(cols[order], vals[order], strict=True)]

    def save(self, path: str | Path) -> None:
        """Write the model to directory `path` (created if needed)."""
        vec = self._require()
        d = Path(path)
        d.mkdir(parents=True, exist_ok=True)
        with open(d / _VECTORIZER_FILE, "wb") as f:
            pickle.dump(vec, f, protocol=pickle.HIGHEST_PROTOCOL)
        meta = {
            "version": FORMAT_VERSION,
            "params": {k: list(v) if isinstance(v, tuple) else v for k, v in self.params.items()},
            "title_repeat": TITLE_REPEAT,
            "n_docs": self.n_docs,
            "n_features": len(vec.vocabulary_),
            "fitted_at": self.fitted_at.isoformat() if self.fitted_at else None,
        }
        (d / _META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> TextModel:
        """Read a model written by `save`; `ModelError` if it is missing or of another version."""
        d = Path(path)
        try:
            meta = json.loads((d / _META_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelError(f"{d}: no text model here (missing {_META_FILE})") from None
        except json.JSONDecodeError as e:
            raise ModelError(f"{d / _META_FILE}: not valid JSON: {e}") from None
        version = meta.get("version")
        if version != FORMAT_VERSION:
            raise ModelError(
                f"{d}: text model format {version!r}, this digest reads {FORMAT_VERSION}; "
                "refit the model"
            )
        try:
            with open(d / _VECTORIZER_FILE, "rb") as f:
                vec = pickle.load(f)
        except (OSError, pickle.UnpicklingError, EOFError) as e:
            raise ModelError(f"{d / _VECTORIZER_FILE}: cannot read: {e}") from None
        if not isinstance(vec, TfidfVectorizer):
            raise ModelError(f"{d / _VECTORIZER_FILE}: not a TF-IDF vectorizer")
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["params"].items()}
        model = cls(params)
        model._vectorizer = vec
        model.n_docs = int(meta["n_docs"])
        fitted = meta.get("fitted_at")
        model.fitted_at = dt.datetime.fromisoformat(fitted) if fitted else None
        return model

    def _require(self) -> TfidfVectorizer:
        if self._vectorizer is None:
            raise ModelError("the text model is not fitted; call fit() or load()")
        return self._vectorizer


def paper_texts(papers: Sequence[tuple[str, str]]) -> list[str]:
    """`paper_text` over (title, abstract) pairs."""
    return [paper_text(t, a) for t, a in papers]
