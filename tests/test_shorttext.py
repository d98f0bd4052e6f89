"""The title block: short texts (title-only records, interest phrases) also compare by
character n-grams; long texts are scored exactly as by their words alone."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from digest.cli import sample_path
from digest.model import TextModel
from digest.shorttext import MARK, SHORT_CHARS, WEIGHT


@pytest.fixture(scope="module")
def papers() -> list[tuple[str, str]]:
    with gzip.open(sample_path(), "rt", encoding="utf-8") as f:
        return [(r["title"], r["abstract"]) for r in map(json.loads, f)]


@pytest.fixture(scope="module")
def models(papers: list[tuple[str, str]]) -> tuple[TextModel, TextModel]:
    texts = [f"{t} {a}" for t, a in papers]
    with_block = TextModel()
    with_block.fit_transform(texts, titles=[t for t, _ in papers])
    words = TextModel().fit(texts)
    assert with_block.title_block is not None and words.title_block is None
    return with_block, words


def test_long_texts_score_as_by_their_words(models: tuple[TextModel, TextModel],
                                            papers: list[tuple[str, str]]) -> None:
    with_block, words = models
    texts = [f"{t} {a}" for t, a in papers[:50]]
    assert all(len(t) > SHORT_CHARS for t in texts)
    a, b = with_block.transform(texts), words.transform(texts)
    assert a.shape[1] == with_block.n_features > b.shape[1] == with_block.n_words
    assert (a[:, : b.shape[1]] != b).nnz == 0
    assert a[:, b.shape[1]:].nnz == 0


def test_short_texts_match_other_forms_of_their_words(
        models: tuple[TextModel, TextModel]) -> None:
    with_block, words = models
    pair = ["Segmenting point clouds with transformers",
            "Transformer-based point cloud segmentation"]
    cos_block = (lambda m: float((m[0] @ m[1].T).toarray()[0, 0]))(with_block.transform(pair))
    cos_words = (lambda m: float((m[0] @ m[1].T).toarray()[0, 0]))(words.transform(pair))
    assert cos_block > cos_words
    # A short text of no known word still has a direction, of unit length.
    (norm,) = sp.linalg.norm(with_block.transform(["Zyxqolent segmentaciones"]), axis=1)
    assert norm == pytest.approx(1, abs=1e-5)
    m = with_block.transform([*pair, "", "   "])
    assert m.dtype == np.float32 and m.has_sorted_indices
    np.testing.assert_allclose(sp.linalg.norm(m, axis=1), [1, 1, 0, 0], atol=1e-5)
    # Two short texts: (1 - w) * word cosine + w * n-gram cosine.
    x = with_block.transform(pair)
    n = with_block.n_words
    word_part = float((x[0, :n] @ x[1, :n].T).toarray()[0, 0])
    assert word_part == pytest.approx((1 - WEIGHT) * cos_words, rel=1e-4)


def test_the_block_is_saved_and_explanations_name_words_only(
        models: tuple[TextModel, TextModel], tmp_path: Path) -> None:
    with_block, _ = models
    with_block.save(tmp_path / "m")
    loaded = TextModel.load(tmp_path / "m")
    texts = ["Point cloud segmentation", "Segmenting point clouds, abstract " + "x " * 200]
    assert (loaded.transform(texts) != with_block.transform(texts)).nnz == 0
    assert loaded.n_features == with_block.n_features
    assert len(loaded.idf) == len(loaded.terms()) == loaded.n_features
    assert str(loaded.terms()[-1]).startswith(MARK)
    q, d = loaded.transform(["point cloud segmentation", "segmenting the point clouds"])
    terms = loaded.top_terms(q, d, k=10)
    assert terms and all(not name.startswith(MARK) for name, _ in terms)


def test_interest_phrases_stay_words_only(models: tuple[TextModel, TextModel]) -> None:
    """Interests and avoided terms are transformed without the block (recommend.py): their
    weight against seeds and query expansion is unchanged, so keyword profiles rank as before."""
    with_block, words = models
    phrases = ["gaussian splatting", "retrieval-augmented generation", "dense captions"]
    a = with_block.transform(phrases, title_block=False)
    b = words.transform(phrases)
    assert a.shape == (3, with_block.n_features)
    assert (a[:, : words.n_features] != b).nnz == 0 and a[:, words.n_features:].nnz == 0
    assert with_block.transform(phrases)[:, words.n_features:].nnz > 0  # as titles they would


def test_a_corpus_is_joined_by_slices_as_a_whole(models: tuple[TextModel, TextModel],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import digest.shorttext

    with_block, _ = models
    texts = ["Point cloud segmentation", "A long abstract " + "about segmentation " * 30] * 7
    whole = with_block.transform(texts)
    monkeypatch.setattr(digest.shorttext, "JOIN_ROWS", 3)
    assert (with_block.transform(texts) != whole).nnz == 0
