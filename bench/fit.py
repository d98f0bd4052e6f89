"""Model fit benchmark: the text model fitted on stores of 10k, 30k and 75k papers.

    python bench/fit.py [--corpus 10000,30000,75000] [--cache out/bench-cache]
                        [--json bench/results/fit.json]

Ours: `digest.modelstore.fit` on the store, what ``digest model refit`` does (read every paper,
fit the TF-IDF vectorizer, vectorize the corpus, save the model and the corpus vectors).
Baseline, measured in the same run on the same texts read from the same store: scikit-learn's
own ``TfidfVectorizer(**TFIDF_PARAMS).fit_transform`` (our parameters: unigrams and bigrams,
min_df 3, max_df 0.5, sublinear tf, English stop words), which gives the same vectors; nothing
saved. Each fit runs in a fresh process: its seconds and its peak memory (max RSS) are its own.
The corpora and the fitted models stay in the cache for bench/scaling.py (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import common  # noqa: E402


def _child(kind: str, n: int, cache: Path, data: str) -> dict[str, Any]:
    corpus = common.CorpusDir.of(cache, n)
    if kind == "store":
        return corpus.build_store(common.load_corpora(data), data, n)
    store = common.open_store(corpus)
    papers = store.info().papers
    before = common.rss_mb()
    start = time.perf_counter()
    if kind == "ours":
        from digest.modelstore import fit

        loaded = fit(store, corpus.model, now=dt.datetime.now(dt.UTC))
        seconds = time.perf_counter() - start
        corpus.mark_model()
        terms = loaded.model.n_features
    else:
        import numpy as np
        from sklearn.feature_extraction.text import TfidfVectorizer

        from digest.model import TFIDF_PARAMS

        texts = [f"{title} {abstract}" for _, title, abstract in store.iter_texts()]
        x = TfidfVectorizer(dtype=np.float32, **TFIDF_PARAMS).fit_transform(texts)
        seconds = time.perf_counter() - start
        terms = x.shape[1]
    store.close()
    return {"papers": papers, "seconds": seconds, "terms": terms, "rss_before_mb": before,
            "peak_mb": common.peak_mb()}


def ensure_store(n: int, cache: Path, data: str) -> dict[str, Any] | None:
    """Build the corpus of `n` papers in the cache unless it is there; what building cost."""
    if common.CorpusDir.of(cache, n).store_ok(data, n):
        return None
    return _run("store", n, cache, data)


def _run(kind: str, n: int, cache: Path, data: str) -> dict[str, Any]:
    run = common.run_child([sys.executable, "-m", "bench.fit", "--child", kind, "--corpus",
                            str(n), "--cache", str(cache), "--data", data])
    result: dict[str, Any] = run.json()
    result["wall_s"] = run.seconds
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--data", default=str(common.DATA))
    parser.add_argument("--corpus", default="10000,30000,75000",
                        help="corpus sizes, comma-separated (75000 or more: the whole file)")
    parser.add_argument("--cache", type=Path, default=common.CACHE)
    parser.add_argument("--json", dest="json_out", default=str(ROOT / "bench/results/fit.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(s) for s in args.corpus.split(",")]
    if args.child:
        print(json.dumps(_child(args.child, sizes[0], args.cache, args.data)))
        return
    if not Path(args.data).exists():
        sys.exit(f"bench/fit.py: {args.data} not found (it lives in ../shared/data)")

    points = []
    for n in sizes:
        built = ensure_store(n, args.cache, args.data)
        if built:
            print(f"corpus {n}: built the store ({built['papers']} papers, ingest "
                  f"{built['ingest_s']:.1f} s)", file=sys.stderr)
        ours = _run("ours", n, args.cache, args.data)
        base = _run("sklearn", n, args.cache, args.data)
        points.append({"corpus": n, "papers": ours["papers"], "ours": ours, "baseline": base,
                       "ratio": base["seconds"] / ours["seconds"],
                       "time_share": ours["seconds"] / base["seconds"]})

    print("model fit: ours = digest.modelstore.fit; baseline = scikit-learn's "
          "TfidfVectorizer.fit_transform with our parameters, same texts, same run")
    print("| papers | ours s | peak MB | terms | baseline s | peak MB | terms | ours / baseline |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for p in points:
        o, b = p["ours"], p["baseline"]
        print(f"| {p['papers']:,} | {o['seconds']:.1f} | {o['peak_mb']:.0f} | {o['terms']:,} "
              f"| {b['seconds']:.1f} | {b['peak_mb']:.0f} | {b['terms']:,} "
              f"| {p['time_share']:.2f}x |")
    print("(ours / baseline: our seconds as a share of the baseline's; the goal is at most 0.6x)")
    from digest.model import TFIDF_PARAMS

    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_out).write_text(json.dumps(
        {"data": args.data, "baseline": {"tfidf": {k: list(v) if isinstance(v, tuple) else v
                                                   for k, v in TFIDF_PARAMS.items()}},
         "points": points}, indent=2) + "\n")


if __name__ == "__main__":
    main()
