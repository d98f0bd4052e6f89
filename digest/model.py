"""The text model: a fitted TF-IDF vectorizer that turns papers and interest texts into vectors.

Vectors are sparse, float32, with unit-length rows, so a dot product is a cosine similarity.
The parameters below are the ones `bench/eval.py` chose on real data (see docs/evaluation.md):
unigrams and bigrams with a low `min_df` keep method and dataset names ("gaussian splatting",
"lora"), which are what tells one author's papers from another's; sublinear term frequency stops
a word repeated in one abstract from dominating it.

A saved model is a directory with ``vectorizer.pkl`` (pickle: load only files you wrote) and
``meta.json`` (parameters, corpus size, fit time, format version, the scikit-learn version that
pickled it and the id of the store it was fitted on). A model of another format or another
scikit-learn is refused before anything is unpickled.

The fit is `digest.tfidf.fit_transform`: scikit-learn's vectorizer and vectors, computed several
times faster, and the corpus vectors come out of the fit (no second pass over the corpus).
"""

from __future__ import annotations

import datetime as dt
import json
import pickle
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer

from digest.errors import DigestError
from digest.shorttext import SHORT_CHARS, TitleBlock, short_rows
from digest.text import clean
from digest.tfidf import Progress, check_params, tokenize_stream, vectorize

#: Bumped whenever a saved model could score differently from a fresh one (parameters,
#: text recipe, vectorizer layout). Older files are rejected, not silently reused.
#: 2: the store id and the scikit-learn version are recorded (and checked).
FORMAT_VERSION = 2

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
_TITLE_BLOCK_FILE = "title_block.pkl"
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
        #: The store the model was fitted on (`Store.store_id`), None when not from a store.
        self.store_id: str | None = None
        #: This fit's id, recorded in the store (``model_version``) when saved there, so that
        #: queue workers on any machine see a new fit (`modelstore.ModelCache`).
        self.fit_id: str | None = None
        #: Character n-grams for short texts (digest.shorttext); None: words only.
        self.title_block: TitleBlock | None = None
        self._has_title_block = False
        self._vectorizer: TfidfVectorizer | None = None
        self._terms: np.ndarray[Any, np.dtype[np.object_]] | None = None

    @property
    def fitted(self) -> bool:
        return self._vectorizer is not None

    @property
    def n_features(self) -> int:
        """Vector columns: the terms, then the title block's n-grams."""
        return self.n_words + (self.title_block.n_features if self.title_block else 0)

    @property
    def n_words(self) -> int:
        """Columns of words and bigrams (the first ones)."""
        return len(self._require().vocabulary_)

    def fit(self, texts: Iterable[str], *, now: dt.datetime | None = None) -> TextModel:
        """Learn vocabulary and IDF from `texts` (paper texts, see `paper_text`)."""
        self.fit_transform(texts, now=now)
        return self

    def fit_transform(self, texts: Iterable[str], *, now: dt.datetime | None = None,
                      progress: Progress | None = None, total: int = 0,
                      workers: int = 2, titles: Sequence[str] | None = None,
                      ) -> sp.csr_matrix:
        """`fit`, returning the vectors of `texts` as `transform` would (computed by the fit
        itself). `texts` is read once, as it comes, and not kept. `progress` hears of the
        tokenizing and vectorizing; with `workers` > 1 and a `total` of 20,000 texts or more a
        second process tokenizes half (`WorkerError` if it fails: fit again with 1). With
        `titles` (of the same papers), short texts get the title block (digest.shorttext)."""
        self.title_block = None
        try:
            check_params(self.params)
        except ValueError:  # parameters only scikit-learn knows (an evaluation's variant)
            return self._sklearn_fit_transform(list(texts), now)
        short: list[tuple[int, str]] = []

        def watched() -> Iterator[str]:
            for i, text in enumerate(texts):
                if len(text) <= SHORT_CHARS or len(text.strip()) <= SHORT_CHARS:
                    short.append((i, text))
                yield text

        tokens = tokenize_stream(watched(), progress=progress, total=total, workers=workers)
        n_docs = len(tokens.offsets) - 1
        if n_docs == 0:
            raise ModelError("cannot fit a text model on an empty corpus")
        # Before the words' matrices exist: the fit's memory peak is theirs, not this one's.
        block = TitleBlock.fit(titles) if titles is not None else None
        try:
            vec, x = vectorize(tokens, self.params, progress=progress)
        except ValueError:
            # A corpus of a handful of papers cannot satisfy min_df/max_df: keep every term.
            small = {**self.params, "min_df": 1, "max_df": 1.0}
            try:
                vec, x = vectorize(tokens, small, progress=progress)
            except ValueError as exc:
                raise ModelError(f"cannot fit a text model on {n_docs} papers: {exc}") \
                    from None
        self._fitted(vec, n_docs, now)
        self.title_block = block
        if self.title_block is not None:
            kept = [(i, t) for i, t in short if len(t.strip()) <= SHORT_CHARS]
            x = self.title_block.join(x, [i for i, _ in kept], [t for _, t in kept])
        return x

    def _sklearn_fit_transform(self, docs: list[str], now: dt.datetime | None,
                               ) -> sp.csr_matrix:
        if not docs:
            raise ModelError("cannot fit a text model on an empty corpus")
        vec = TfidfVectorizer(dtype=np.float32, norm="l2", **self.params)
        try:
            x = vec.fit_transform(docs)
        except ValueError as exc:
            raise ModelError(f"cannot fit a text model on {len(docs)} papers: {exc}") from None
        self._fitted(vec, len(docs), now)
        out: sp.csr_matrix = sp.csr_matrix(x, dtype=np.float32)
        out.sort_indices()
        return out

    def _fitted(self, vec: TfidfVectorizer, n_docs: int, now: dt.datetime | None) -> None:
        # Every pruned n-gram would be kept in stop_words_; it is only for introspection
        # and would make the saved file tens of megabytes larger.
        vec.stop_words_ = None
        self._vectorizer = vec
        self._terms = None
        self.n_docs = n_docs
        self.fitted_at = now or dt.datetime.now(dt.UTC)

    def transform(self, texts: Iterable[str], *, title_block: bool = True) -> sp.csr_matrix:
        """Vectors of `texts`: CSR, float32, unit-length rows (all-zero for texts of no known
        term). Papers' texts that are short get the title block (digest.shorttext);
        `title_block=False` is for interest phrases and avoided terms: they stay words only,
        so their weight against seeds and query expansion is what it was."""
        docs = list(texts)
        m = self._require().transform(docs)
        out: sp.csr_matrix = sp.csr_matrix(m, dtype=np.float32)
        if self.title_block is not None and not title_block:
            pad = sp.csr_matrix((out.shape[0], self.title_block.n_features), dtype=np.float32)
            out = sp.csr_matrix(sp.hstack([out, pad], format="csr"), dtype=np.float32)
        elif self.title_block is not None:
            rows = short_rows(docs)
            return self.title_block.join(out, rows, [docs[i] for i in rows])
        out.sort_indices()
        return out

    @property
    def idf(self) -> npt.NDArray[np.float32]:
        """Inverse document frequency of each term (vector column), for `scoring.sharpen`."""
        words = np.asarray(self._require().idf_, dtype=np.float32)
        if self.title_block is None:
            return words
        return np.concatenate([words, self.title_block.idf])

    def terms(self) -> np.ndarray[Any, np.dtype[np.object_]]:
        """Feature names, indexed like the vector columns."""
        if self._terms is None:
            words = self._require().get_feature_names_out()
            if self.title_block is not None:  # n-grams are marked (shorttext.MARK)
                words = np.concatenate([words.astype(object), self.title_block.terms()])
            self._terms = words
        return self._terms

    def top_terms(
        self, query_vec: sp.spmatrix, doc_vec: sp.spmatrix, k: int = 5
    ) -> list[tuple[str, float]]:
        """The `k` terms contributing most to the similarity of two vectors (one row each),
        largest first, with their share of the dot product. Only terms present in both, and
        only words and bigrams: the title block's n-grams say little to a person."""
        contrib = sp.csr_matrix(query_vec).multiply(sp.csr_matrix(doc_vec)).tocsr()
        if contrib.shape[0] != 1:
            raise ModelError(f"top_terms takes one row per vector, got {contrib.shape[0]}")
        cols, vals = contrib.indices, contrib.data
        keep = (vals > 0) & (cols < self.n_words)
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
        (d / _TITLE_BLOCK_FILE).unlink(missing_ok=True)
        if self.title_block is not None:
            with open(d / _TITLE_BLOCK_FILE, "wb") as f:
                pickle.dump(self.title_block.vectorizer, f, protocol=pickle.HIGHEST_PROTOCOL)
        meta = {
            "version": FORMAT_VERSION,
            "sklearn_version": sklearn.__version__,
            "store_id": self.store_id,
            "fit_id": self.fit_id,
            "params": {k: list(v) if isinstance(v, tuple) else v for k, v in self.params.items()},
            "title_repeat": TITLE_REPEAT,
            "n_docs": self.n_docs,
            "n_features": self.n_features,
            "title_block": self.title_block is not None,
            "fitted_at": self.fitted_at.isoformat() if self.fitted_at else None,
        }
        (d / _META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> TextModel:
        """Read a model written by `save`; `ModelError` if it is missing or of another version."""
        d = Path(path)
        model = cls.peek(d)
        model._vectorizer = _unpickle(d / _VECTORIZER_FILE)
        if model._has_title_block:
            model.title_block = TitleBlock(_unpickle(d / _TITLE_BLOCK_FILE))
        return model

    @classmethod
    def peek(cls, path: str | Path) -> TextModel:
        """What `save` recorded of a model (its size, store, fit), without loading its
        vocabulary: enough to decide whether it must be fitted again. `ModelError` as `load`."""
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
        pickled_by = meta.get("sklearn_version")
        if pickled_by != sklearn.__version__:
            raise ModelError(
                f"{d}: text model pickled by scikit-learn {pickled_by}, this is "
                f"{sklearn.__version__}; refit the model"
            )
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["params"].items()}
        model = cls(params)
        model._has_title_block = bool(meta.get("title_block"))
        model.n_docs = int(meta["n_docs"])
        model.store_id = meta.get("store_id")
        model.fit_id = meta.get("fit_id")
        fitted = meta.get("fitted_at")
        model.fitted_at = dt.datetime.fromisoformat(fitted) if fitted else None
        return model

    def _require(self) -> TfidfVectorizer:
        if self._vectorizer is None:
            raise ModelError("the text model is not fitted; call fit() or load()")
        return self._vectorizer


def _unpickle(path: Path) -> TfidfVectorizer:
    try:
        with open(path, "rb") as f, warnings.catch_warnings():
            # The version was checked first; a user is never shown scikit-learn's warnings.
            warnings.simplefilter("ignore")
            vec = pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError,
            ModuleNotFoundError) as e:
        raise ModelError(f"{path}: cannot read: {e}") from None
    if not isinstance(vec, TfidfVectorizer):
        raise ModelError(f"{path}: not a TF-IDF vectorizer")
    return vec


def paper_texts(papers: Sequence[tuple[str, str]]) -> list[str]:
    """`paper_text` over (title, abstract) pairs."""
    return [paper_text(t, a) for t, a in papers]
