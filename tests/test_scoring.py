"""The scoring math and the text model, on tiny corpora where the right answer is known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from digest.model import TFIDF_PARAMS, ModelError, TextModel, paper_text
from digest.scoring import (
    expand,
    group_means,
    interest_queries,
    normalize_rows,
    prepare,
    prune,
    score,
    sharpen,
    similarities,
)

# Small-corpus parameters: every term counts (the real min_df would drop all of them).
TINY = {**TFIDF_PARAMS, "min_df": 1, "max_df": 1.0}

BROAD = [
    "large language model instruction tuning benchmark reasoning",
    "language model reasoning chain of thought evaluation benchmark",
    "instruction tuning of a large language model for dialogue",
    "reasoning benchmark for large language model agents",
    "language model alignment with preference data and reasoning",
    "evaluation of large language model reasoning on math benchmark",
]
NARROW = [
    "gaussian splatting for dynamic scene reconstruction",
    "fast gaussian splatting rendering of radiance fields",
]
OTHER = [
    "object detection transformer for autonomous driving",
    "medical image segmentation with unet",
    "speech recognition for low resource languages",
    "video generation with diffusion models",
]
NEW = [
    "a reasoning benchmark for large language model agents in dialogue",  # 0: broad
    "compact gaussian splatting for scene reconstruction on mobile",  # 1: narrow
    "diffusion models for video generation",  # 2: neither
    "language model instruction tuning with preference data",  # 3: broad
    "lidar object detection for autonomous driving",  # 4: neither
]


@pytest.fixture(scope="module")
def model() -> TextModel:
    return TextModel(TINY).fit(BROAD + NARROW + OTHER + NEW)


def test_narrow_interest_is_not_drowned_by_broad_one(model: TextModel) -> None:
    seeds = model.transform(BROAD + NARROW)
    new = model.transform(NEW)
    # One profile, two interests: broad (6 seeds) and narrow (2 seeds), each its own query.
    interests = group_means(seeds, [0, len(BROAD), len(BROAD) + len(NARROW)])
    profile = score(interests, new, offsets=[0, 2], top_k=len(NEW))
    narrow_alone = score(interests[1], new, top_k=len(NEW))
    # The splatting paper keeps the full score of the narrow interest ...
    got = dict(zip(profile.indices[0], profile.scores[0], strict=True))
    assert got[1] == pytest.approx(narrow_alone.scores[0, 0])
    assert narrow_alone.indices[0, 0] == 1
    # ... which is what pooling all seeds into one centroid would dilute.
    pooled = score(group_means(seeds, [0, seeds.shape[0]]), new, top_k=len(NEW))
    pooled_score = dict(zip(pooled.indices[0], pooled.scores[0], strict=True))[1]
    assert pooled_score < 0.5 * got[1]
    # And it outranks the papers the profile does not care about.
    rank = list(profile.indices[0])
    assert rank.index(1) < min(rank.index(2), rank.index(4))


def test_interest_weight_scales_its_scores(model: TextModel) -> None:
    seeds = model.transform(BROAD + NARROW)
    interests = group_means(seeds, [0, len(BROAD), len(BROAD) + len(NARROW)])
    new = model.transform(NEW)
    heavy_narrow = score(interests, new, offsets=[0, 2], weights=[0.1, 1.0], top_k=1)
    heavy_broad = score(interests, new, offsets=[0, 2], weights=[1.0, 0.1], top_k=1)
    assert heavy_narrow.indices[0, 0] == 1
    assert heavy_broad.indices[0, 0] in (0, 3)


def _random_unit_rows(rng: np.random.Generator, n: int, dim: int) -> sp.csr_matrix:
    m = sp.random(n, dim, density=0.05, random_state=rng, dtype=np.float32, format="csr")
    return normalize_rows(m)


def test_chunked_scoring_equals_unchunked_and_brute_force() -> None:
    rng = np.random.default_rng(0)
    queries = _random_unit_rows(rng, 40, 300)
    papers = _random_unit_rows(rng, 120, 300)
    offsets = np.array([0, 1, 4, 4, 10, 11, 25, 40])  # varied sizes, one empty group
    weights = rng.uniform(0.5, 1.0, size=40)
    whole = score(queries, papers, offsets=offsets, weights=weights, top_k=7, chunk=10_000)
    for chunk, workers in ((1, 1), (1, 2), (3, 2), (16, 3)):
        part = score(queries, papers, offsets=offsets, weights=weights, top_k=7, chunk=chunk,
                     workers=workers)
        np.testing.assert_array_equal(part.indices, whole.indices)
        np.testing.assert_allclose(part.scores, whole.scores, rtol=1e-6)

    dense = (queries @ papers.T).toarray() * weights[:, None]
    for g in range(len(offsets) - 1):
        lo, hi = offsets[g], offsets[g + 1]
        if lo == hi:
            assert (whole.indices[g] == -1).all()
            assert np.isneginf(whole.scores[g]).all()
            continue
        best = dense[lo:hi].max(axis=0)
        expected = np.sort(best)[::-1][:7]
        np.testing.assert_allclose(whole.scores[g], expected, rtol=1e-5)
        np.testing.assert_allclose(best[whole.indices[g]], whole.scores[g], rtol=1e-5)
        assert (np.diff(whole.scores[g]) <= 0).all(), "best first"


def test_top_k_larger_than_papers_is_padded() -> None:
    rng = np.random.default_rng(1)
    out = score(_random_unit_rows(rng, 2, 50), _random_unit_rows(rng, 3, 50), top_k=5)
    assert out.indices.shape == (2, 5)
    assert (out.indices[:, 3:] == -1).all()
    assert sorted(out.indices[0, :3].tolist()) == [0, 1, 2]


def test_group_means_is_the_normalised_mean() -> None:
    rng = np.random.default_rng(2)
    vecs = _random_unit_rows(rng, 9, 80)
    got = group_means(vecs, [0, 4, 9]).toarray()
    dense = vecs.toarray()
    for g, (lo, hi) in enumerate([(0, 4), (4, 9)]):
        mean = dense[lo:hi].mean(axis=0)
        np.testing.assert_allclose(got[g], mean / np.linalg.norm(mean), rtol=1e-5, atol=1e-7)


def test_prune_keeps_the_largest_terms() -> None:
    row = sp.csr_matrix(np.array([[0.1, 0.5, 0.0, 0.3, 0.2, 0.4]], dtype=np.float32))
    kept = prune(row, 3)
    assert sorted(kept.indices.tolist()) == [1, 3, 5]
    assert np.isclose(np.linalg.norm(kept.data), 1.0)


def test_interest_without_text_or_seeds_uses_the_other(model: TextModel) -> None:
    seeds = group_means(model.transform(NARROW), [0, 2])
    text = model.transform(["gaussian splatting"])
    empty = sp.csr_matrix((1, seeds.shape[1]), dtype=np.float32)
    only_seeds = interest_queries(sp.vstack([seeds, empty]), sp.vstack([empty, text]))
    np.testing.assert_allclose(only_seeds[0].toarray(), seeds.toarray(), rtol=1e-5)
    np.testing.assert_allclose(only_seeds[1].toarray(), text.toarray(), rtol=1e-5)


def test_query_expansion_adds_terms_of_the_nearest_papers(model: TextModel) -> None:
    corpus = model.transform(BROAD + NARROW + OTHER)
    query = model.transform(["splatting"])
    expanded = expand(query, corpus, n_docs=2)
    vocab = model.terms()
    added = {str(vocab[i]) for i in expanded.indices} - {str(vocab[i]) for i in query.indices}
    assert {"gaussian", "gaussian splatting"} <= added
    assert score(expanded, model.transform(NEW), top_k=1).indices[0, 0] == 1


def test_save_load_round_trip(model: TextModel, tmp_path: Path) -> None:
    model.save(tmp_path / "m")
    loaded = TextModel.load(tmp_path / "m")
    a, b = model.transform(NEW), loaded.transform(NEW)
    assert (a != b).nnz == 0
    assert loaded.n_docs == model.n_docs
    assert loaded.params == model.params
    assert loaded.fitted_at == model.fitted_at


def test_load_rejects_other_version(model: TextModel, tmp_path: Path) -> None:
    model.save(tmp_path / "m")
    meta_path = tmp_path / "m" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["version"] = 0
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="format 0"):
        TextModel.load(tmp_path / "m")
    with pytest.raises(ModelError, match="no text model"):
        TextModel.load(tmp_path / "nothing")


def test_vectors_are_unit_float32_csr(model: TextModel) -> None:
    m = model.transform([*NEW, "zzz unknown words only"])
    assert isinstance(m, sp.csr_matrix) and m.dtype == np.float32
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    np.testing.assert_allclose(norms[:-1], 1.0, rtol=1e-5)
    assert norms[-1] == 0


def test_top_terms_occur_in_both_texts(model: TextModel) -> None:
    query_text, doc_text = NARROW[0], NEW[1]
    q, d = model.transform([query_text]), model.transform([doc_text])
    top = model.top_terms(q, d, k=3)
    assert top, "the texts share terms"
    for term, weight in top:
        assert term in query_text and term in doc_text
        assert weight > 0
    assert [w for _, w in top] == sorted((w for _, w in top), reverse=True)
    assert sum(w for _, w in model.top_terms(q, d, k=100)) == pytest.approx(
        float((q @ d.T).toarray()[0, 0]), rel=1e-5
    )


def test_unfitted_model_says_so() -> None:
    with pytest.raises(ModelError, match="not fitted"):
        TextModel().transform(["x"])


def test_paper_text_cleans_latex() -> None:
    assert paper_text("On $\\alpha$-nets", "We study  nets.") == "On α-nets We study nets."


@pytest.mark.parametrize("head_terms", [0, 10, 10_000])
def test_head_tail_split_gives_the_plain_product(head_terms: int) -> None:
    rng = np.random.default_rng(3)
    queries = _random_unit_rows(rng, 15, 200)
    papers = _random_unit_rows(rng, 60, 200)
    got = similarities(queries, prepare(papers, head_terms=head_terms))
    np.testing.assert_allclose(got, (queries @ papers.T).toarray(), rtol=1e-5, atol=1e-7)


def test_sharpen_favours_rare_terms() -> None:
    query = sp.csr_matrix(np.array([[0.6, 0.8, 0.0]], dtype=np.float32))
    idf = np.array([4.0, 1.0, 2.0])
    got = sharpen(query, idf, power=1.5).toarray()[0]
    assert got[0] / got[1] == pytest.approx(0.6 * 8 / 0.8, rel=1e-5)
    assert got[2] == 0
    assert np.linalg.norm(got) == pytest.approx(1.0)


def test_prune_in_chunks_equals_at_once() -> None:
    rng = np.random.default_rng(4)
    queries = _random_unit_rows(rng, 30, 400)
    whole = prune(queries, 5, chunk=1000)
    for chunk in (1, 7):
        assert (prune(queries, 5, chunk=chunk) != whole).nnz == 0
    assert np.diff(whole.indptr).max() <= 5
