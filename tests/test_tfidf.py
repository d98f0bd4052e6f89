"""The fast TF-IDF fit: the same vocabulary, idf and vectors as scikit-learn's own
``TfidfVectorizer.fit_transform``, in one process or two, on real paper texts."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from importlib import resources
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from digest import tfidf
from digest.model import TFIDF_PARAMS, TextModel
from digest.tokenizer import Worker, WorkerError, tokenize


def sample_texts() -> list[str]:
    path = resources.files("digest") / "data" / "sample.jsonl.gz"
    with gzip.open(str(path), "rt", encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    texts = [f"{r['title']} {r['abstract']}" for r in records]
    # Text the ASCII fast path does not take, and edge cases of the token pattern.
    return [
        *texts,
        "Über-große Modelle für Bildsegmentierung: ÄÖÜ façade naïve résumé",
        "x y z a b c",  # only one-letter words
        "",
        "snake_case under_score 3D-GS 2x2 e.g. i.e. C++ π-calculus ∑ α-β",
        "the and of to in",  # only stop words
        "Dense captions DENSE CAPTIONS dense-captions",
    ]


def assert_same(params: dict[str, Any], texts: list[str], **kw: Any) -> None:
    vec, x = tfidf.fit_transform(iter(texts), params, total=len(texts), **kw)
    ref = TfidfVectorizer(dtype=np.float32, **params)
    y = sp.csr_matrix(ref.fit_transform(texts))
    y.sort_indices()
    assert vec.vocabulary_ == ref.vocabulary_
    np.testing.assert_allclose(vec.idf_, ref.idf_, rtol=1e-6)
    assert x.dtype == np.float32 and x.has_sorted_indices
    assert (x.indptr == y.indptr).all() and (x.indices == y.indices).all()
    np.testing.assert_allclose(x.data, y.data, rtol=1e-5, atol=1e-7)
    # New texts go through scikit-learn's own transform, with the fitted vocabulary and idf.
    np.testing.assert_allclose(vec.transform(texts[:20]).toarray(),
                               ref.transform(texts[:20]).toarray(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("params", [
    TFIDF_PARAMS,
    {**TFIDF_PARAMS, "ngram_range": (1, 1)},
    {**TFIDF_PARAMS, "stop_words": None, "min_df": 2, "max_df": 0.1},
    {"ngram_range": (1, 2), "sublinear_tf": False},
    {**TFIDF_PARAMS, "token_pattern": r"(?u)\b\w+\b"},
])
def test_fit_transform_gives_what_scikit_learn_gives(params: dict[str, Any]) -> None:
    assert_same(params, sample_texts(), workers=1)


def test_a_second_process_tokenizes_half_with_the_same_result(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tfidf, "PARALLEL_MIN_DOCS", 100)
    monkeypatch.setattr(tfidf, "SLICE", 50)
    seen: list[str] = []
    real = tfidf.Worker

    class Spy(real):  # type: ignore[misc, valid-type]
        def send(self, texts: Any) -> None:
            seen.extend(texts)
            super().send(texts)

    monkeypatch.setattr(tfidf, "Worker", Spy)
    assert_same(TFIDF_PARAMS, sample_texts(), workers=2)
    assert 200 <= len(seen) <= 300  # every other slice of 50


def test_a_failing_worker_is_reported_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    worker = Worker(r"(?u)\b\w\w+\b")
    worker.proc.kill()
    worker.send(["some text here"] * 10)
    with pytest.raises(WorkerError, match="tokenizer process failed"):
        worker.results()


def test_the_model_fits_in_one_process_when_the_worker_fails(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    from digest import modelstore
    from digest.store import Store

    class Broken(Worker):
        def __init__(self, pattern: str) -> None:
            super().__init__(pattern)
            self.proc.kill()

    monkeypatch.setattr(tfidf, "PARALLEL_MIN_DOCS", 100)
    monkeypatch.setattr(tfidf, "Worker", Broken)
    texts = [t for t in sample_texts() if t][:300]
    lines: list[str] = []
    # SQLite only: about the tokenizer process; fits read PostgreSQL in test_recommend's world.
    with Store.open(f"sqlite:///{tmp_path}/s.sqlite") as store:
        with store.transaction() as tx:
            tx.insert_papers([_row(i, t) for i, t in enumerate(texts)])
        loaded = modelstore.fit(store, tmp_path / "model", now=_NOW, notify=lines.append)
    assert any("tokenizer process failed" in line for line in lines)
    fresh = TextModel().fit(texts)
    assert loaded.model.n_words == fresh.n_words
    assert loaded.corpus.shape == (300, loaded.model.n_features)


def test_tokenize_matches_the_analyzer_on_ascii_and_unicode() -> None:
    texts = sample_texts()
    tokens = tokenize(texts)
    analyzer = TfidfVectorizer().build_analyzer()
    for i, text in enumerate(texts):
        words = [tokens.words[j] for j in tokens.ids[tokens.offsets[i]:tokens.offsets[i + 1]]]
        assert [w for w in words if len(w) > 1] == analyzer(text)


_NOW = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)


def _row(i: int, text: str) -> dict[str, Any]:
    return {"key": f"k{i}", "arxiv_id": None, "version": None, "title": text or "t",
            "abstract": "", "title_raw": None, "abstract_raw": None,
            "norm_title": f"t{i}", "authors": "[]", "categories": "[]",
            "announced": "2026-07-01", "first_seen": _NOW, "updated_at": _NOW, "url": None,
            "authority": 0, "content_hash": f"h{i}"}
