"""Scoring throughput as profiles and the corpus grow, beside arxiv-sanity-lite's SVM.

    python bench/scaling.py [--profiles 1000,10000,100000] [--corpus 10000,30000,75000]
                            [--at-corpus 75000] [--at-profiles 10000] [--svm 4]
                            [--cache out/bench-cache] [--json bench/results/scaling.json]

Two curves: profiles (1k, 10k, 100k) against a fixed corpus (`--at-corpus`, 75k: the whole
file), and the corpus (10k, 30k, 75k papers) at a fixed number of profiles (`--at-profiles`).
Every point ranks the same new papers (the last 5,000, whole days: 5,020) for the same
profiles (20 seed papers of one of 200 real authors), so only the one variable changes; see
bench/common.py. A point is one fresh process that loads the cached store and model and runs
`common.score_all` (query vectors, the chunked product with masks, top-k; what
`Recommender.rank` does before choosing); a point under 3 s is run three times, the median kept.
Figure: profiles x papers scored per second, and the process's peak memory.

Baseline in the same run, per corpus size: arxiv-sanity-lite's LinearSVC (C=0.01, balanced)
trained per profile on its own TF-IDF of the corpus (seeds positive, every other paper
negative), then scoring the new papers; `--svm` profiles, ~2 s each on the full corpus.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import common  # noqa: E402
from bench.fit import ensure_store  # noqa: E402


def _prepare(n: int, cache: Path) -> dict[str, Any]:
    """Child: the corpus's model and arxiv-sanity-lite features, fitted if not cached."""
    corpus = common.CorpusDir.of(cache, n)
    store = common.open_store(corpus)
    start = time.perf_counter()
    fitted = not corpus.model_ok()
    common.load_model(store, corpus)
    asl = not corpus.asl.exists()
    if asl:
        common.asl_features(store, corpus)
    store.close()
    return {"fitted_model": fitted, "fitted_asl": asl, "seconds": time.perf_counter() - start}


def _score(n: int, profiles: int, cache: Path) -> dict[str, Any]:
    """Child: one point of the curves."""
    from digest.modelstore import recommender

    corpus = common.CorpusDir.of(cache, n)
    spec = common.Spec.load(corpus.spec)
    store = common.open_store(corpus)
    papers = store.info().papers
    # The prepare step fitted what was stale; a point never fits (it would count in its peak).
    loaded = common.load_model(store, corpus, refit=False)
    t = time.perf_counter()
    people = spec.profiles(profiles)
    profiles_s = time.perf_counter() - t
    ranker = recommender(store, loaded, first_digest_days=1)
    before, before_peak = common.rss_mb(), common.peak_mb()
    runs = [common.score_all(ranker, people, since=spec.since, until=spec.until)]
    if runs[0]["scoring_s"] < 3:
        runs += [common.score_all(ranker, people, since=spec.since, until=spec.until)
                 for _ in range(2)]
    run = sorted(runs, key=lambda r: r["scoring_s"])[len(runs) // 2]
    store.close()
    pairs = profiles * run["candidates"]
    return {
        "corpus": papers, "profiles": profiles, **run, "runs": [r["scoring_s"] for r in runs],
        "profiles_s": profiles_s, "pairs_per_s": pairs / run["scoring_s"],
        "profiles_per_s": profiles / run["scoring_s"], "terms": loaded.model.n_features,
        "rss_before_mb": before, "peak_before_mb": before_peak, "peak_mb": common.peak_mb(),
    }


def _svm(n: int, count: int, cache: Path) -> dict[str, Any]:
    """Child: arxiv-sanity-lite's per-profile SVM on `count` profiles."""
    import pickle

    import numpy as np
    from sklearn.svm import LinearSVC

    corpus = common.CorpusDir.of(cache, n)
    spec = common.Spec.load(corpus.spec)
    with open(corpus.asl, "rb") as f:
        features = pickle.load(f)
    x, keys = features["x"], features["keys"]
    row_of = {k: i for i, k in enumerate(keys)}
    new_rows = np.flatnonzero(features["announced"] >= spec.since.toordinal())
    x_new = x[new_rows]
    seconds = []
    for profile in spec.profiles(count):
        start = time.perf_counter()
        y = np.zeros(x.shape[0], dtype=np.int8)
        y[[row_of[k] for k in profile.seed_papers]] = 1
        clf = LinearSVC(**common.ASL_SVM)
        clf.fit(x, y)
        clf.decision_function(x_new)
        seconds.append(time.perf_counter() - start)
    per_profile = statistics.median(seconds)
    return {"corpus": x.shape[0], "profiles": count, "candidates": len(new_rows),
            "s_per_profile": per_profile, "seconds": seconds,
            "pairs_per_s": len(new_rows) / per_profile, "peak_mb": common.peak_mb()}


def _run(kind: str, n: int, cache: Path, data: str, count: int = 0) -> dict[str, Any]:
    run = common.run_child([sys.executable, "-m", "bench.scaling", "--child", kind,
                            "--at-corpus", str(n), "--at-profiles", str(count),
                            "--cache", str(cache), "--data", data])
    result: dict[str, Any] = run.json()
    result["wall_s"] = run.seconds
    result["peak_mb"] = max(result.get("peak_mb", 0.0), run.peak_mb)
    return result


def _sizes(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--data", default=str(common.DATA))
    parser.add_argument("--profiles", default="1000,10000,100000",
                        help="profile counts of the first curve")
    parser.add_argument("--corpus", default="10000,30000,75000",
                        help="corpus sizes of the second curve (75000 or more: the whole file)")
    parser.add_argument("--at-corpus", type=int, default=75000,
                        help="the corpus of the profiles curve")
    parser.add_argument("--at-profiles", type=int, default=10000,
                        help="the profiles of the corpus curve")
    parser.add_argument("--svm", type=int, default=4, help="profiles the SVM is timed on")
    parser.add_argument("--cache", type=Path, default=common.CACHE)
    parser.add_argument("--json", dest="json_out",
                        default=str(ROOT / "bench/results/scaling.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child = {"prepare": lambda: _prepare(args.at_corpus, args.cache),
                 "score": lambda: _score(args.at_corpus, args.at_profiles, args.cache),
                 "svm": lambda: _svm(args.at_corpus, args.at_profiles, args.cache)}
        print(json.dumps(child[args.child]()))
        return
    if not Path(args.data).exists():
        sys.exit(f"bench/scaling.py: {args.data} not found (it lives in ../shared/data)")

    wanted = [(args.at_corpus, p) for p in _sizes(args.profiles)]
    wanted += [(c, args.at_profiles) for c in _sizes(args.corpus)
               if (c, args.at_profiles) not in wanted]
    corpora = sorted({c for c, _ in wanted})
    svm: dict[int, dict[str, Any]] = {}
    for n in corpora:
        ensure_store(n, args.cache, args.data)
        prepared = _run("prepare", n, args.cache, args.data)
        if prepared["fitted_model"] or prepared["fitted_asl"]:
            print(f"corpus {n}: fitted what the cache lacked in {prepared['seconds']:.0f} s",
                  file=sys.stderr)
        svm[n] = _run("svm", n, args.cache, args.data, args.svm)
    points = []
    for n, p in sorted(wanted):
        point = _run("score", n, args.cache, args.data, p)
        point["size"] = n
        base = svm[n]
        point["series"] = [name for name, hit in (
            ("profiles", n == args.at_corpus and p in _sizes(args.profiles)),
            ("corpus", p == args.at_profiles and n in _sizes(args.corpus))) if hit]
        point["baseline_pairs_per_s"] = base["pairs_per_s"]
        point["ratio"] = point["pairs_per_s"] / base["pairs_per_s"]
        points.append(point)
        print(f"corpus {point['corpus']:,}, {p:,} profiles: {point['scoring_s']:.2f} s, "
              f"peak {point['peak_mb']:.0f} MB", file=sys.stderr)

    print(f"scoring {points[0]['candidates']:,} new papers; figure: profiles x papers per "
          "second (queries + chunked product + masks + top-k)")
    print("| series | corpus | profiles | scoring s | pairs/s | SVM pairs/s | x SVM "
          "| peak MB | before MB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for pt in points:
        print(f"| {'+'.join(pt['series'])} | {pt['corpus']:,} | {pt['profiles']:,} "
              f"| {pt['scoring_s']:.2f} | {pt['pairs_per_s']:,.0f} "
              f"| {pt['baseline_pairs_per_s']:,.0f} | {pt['ratio']:,.0f} | {pt['peak_mb']:.0f} "
              f"| {pt['rss_before_mb']:.0f} |")
    print("SVM (arxiv-sanity-lite, per profile): " + "; ".join(
        f"corpus {b['corpus']:,}: {b['s_per_profile']:.2f} s ({b['profiles']} profiles)"
        for b in svm.values()))
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_out).write_text(json.dumps(
        {"data": args.data, "at_corpus": args.at_corpus, "at_profiles": args.at_profiles,
         "points": points,
         "svm": {str(n): b for n, b in svm.items()}}, indent=2) + "\n")


if __name__ == "__main__":
    main()
