"""The benchmark suite (bench/, docs/benchmarks.md) on tiny sizes: it runs, its results file has
the figures beside their baselines, and the scoring call sequence still matches the
recommender."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from digest.cli import sample_path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "arxiv_cs_cv_cl_2025-2026.jsonl.gz"
TINY = {"quick": {"ingest": ["--limit", "1000"], "smtp": ["--messages", "20", "--rounds", "1"]}}


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(ROOT))
    import bench.__main__

    return bench.__main__


@pytest.mark.skipif(not DATA.exists(), reason="needs ../shared/data")
def test_suite_writes_figures_beside_baselines(bench: Any, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results.json"
    status = bench.main(["--quick", "--only", "ingest,smtp", "--json", str(out),
                         "--cache", str(tmp_path / "cache")], sizes=TINY)
    assert status == 0
    report = json.loads(out.read_text())
    assert report["mode"] == "quick"
    assert {"cpu_count", "python", "date", "commit"} <= report["machine"].keys()
    assert isinstance(report["load_before"], float) and isinstance(report["load_after"], float)
    assert list(report["stages"]) == ["ingest", "smtp"]
    for stage in report["stages"].values():
        assert stage["peak_mb"] > 0 and stage["seconds"] > 0
        assert stage["rows"]
        for row in stage["rows"]:
            assert row["ours"] > 0 and row["baseline"] > 0
            assert row["ratio"] > 0
            assert row["peak_mb"] > 0
    table = capsys.readouterr().out
    assert "| ingest | ingest into an empty store, 1,000 papers | papers/s |" in table
    assert "(conn/message)" in table


def test_only_rejects_an_unknown_stage(bench: Any) -> None:
    with pytest.raises(SystemExit) as exc:
        bench.main(["--only", "ingest,nope"])
    assert exc.value.code == 2


def test_merge_keeps_other_stages_in_suite_order(bench: Any) -> None:
    old = {"mode": "full", "stages": {"smtp": {"rows": [1]}, "ingest": {"rows": [2]}}}
    new = {"mode": "full", "stages": {"fit": {"rows": [3]}}}
    assert list(bench.merge(old, new)["stages"]) == ["ingest", "fit", "smtp"]


def test_score_all_runs_the_recommender_on_a_small_corpus(bench: Any, tmp_path: Path) -> None:
    from bench import common
    from digest.modelstore import recommender

    corpora = common.load_corpora(sample_path(), new=100, seeds=3, pool=5)
    corpus = common.CorpusDir.of(tmp_path, 400)
    built = corpus.build_store(corpora, sample_path(), 400)
    assert built["papers"] == 400
    spec = common.Spec.load(corpus.spec)
    store = common.open_store(corpus)
    try:
        ranker = recommender(store, common.load_model(store, corpus), first_digest_days=1)
        profiles = spec.profiles(7)
        assert [p.name for p in profiles] == [f"p{i:06d}" for i in range(7)]
        assert {p.seed_papers for p in profiles} <= set(spec.seeds)
        times = common.score_all(ranker, profiles, since=spec.since, until=spec.until)
    finally:
        store.close()
    assert times["candidates"] == len(corpora.new)
    assert times["scoring_s"] == pytest.approx(times["queries_s"] + times["product_s"])
    assert corpus.model_ok()


@pytest.mark.parametrize("script", ["fit", "scaling"])
def test_stage_scripts_run_as_scripts(script: str) -> None:
    done = subprocess.run([sys.executable, f"bench/{script}.py", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--json" in done.stdout


def test_the_web_stage_measures_both_servers(bench: Any, tmp_path: Path) -> None:
    out = tmp_path / "web.json"
    done = subprocess.run([sys.executable, "bench/web.py", "--profiles", "3", "--seconds",
                           "0.2", "--slow", "20", "--json", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = bench._web_rows(json.loads(out.read_text()))
    assert [row["unit"] for row in rows] == ["requests/s", "s"]
    for row in rows:
        assert row["ours"] > 0 and row["baseline"] > 0 and row["baseline_name"] == "wsgiref"
