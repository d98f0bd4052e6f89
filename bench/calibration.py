"""Calibration check: do digests carry papers on most days, with every default?

    python bench/calibration.py [--db URL --model DIR | --cache out/bench-cache]
                                [--authors 40] [--cut 2026-06-01] [--json PATH]

Seed-only pseudo-users: authors with at least 10 papers announced before `--cut`, each a
profile of their ten latest papers before it and nothing else (the way people use
arxiv-sanity or zotero-arxiv-daily); keyword profiles: one bare interest each (the replay's
topics);
and two-interest profiles, a narrow interest beside a broad one (`PAIRS`). Every weekday from
the cut to the store's last day is one digest (that day's papers), ranked with every default.

One ranking per day gives both figures: ranked with ``top = max_papers`` (12), the papers with a
raw cosine of at least 0.1 are what the old default ``min_score: 0.1`` sent (for one-interest
profiles the order is the same), the papers with relevance of at least T are what
``min_relevance: T`` sends. Reported: the share of empty digests, papers per digest, the share
of each pseudo-user's own later papers that reached them, the spread of the day's best score
across profiles, and, for the two-interest profiles, how many papers each interest got.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import common  # noqa: E402
from bench.replay import TOPICS  # noqa: E402

#: Keyword profiles (each one bare interest): the replay's topics.
KEYWORDS = TOPICS
#: Two-interest profiles: a narrow topic (high raw cosines) beside a broad one.
PAIRS = [
    ("gaussian splatting", "large language model reasoning"),
    ("sign language", "vision-language models"),
    ("image super-resolution", "retrieval augmented generation"),
    ("knowledge graphs", "diffusion models for image generation"),
]
OLD_MIN_SCORE = 0.1
THRESHOLDS = (1.0, 1.5, 1.7, 2.0, 2.5, 3.0)
SEEDS = 10
#: The bench cache's whole-corpus size (as bench/fit.py names it).
FULL = 75_000


def _profiles(store: Any, cut: dt.date, n_authors: int) -> tuple[list[Any], dict[str, set[str]]]:
    from digest.profiles import Profile

    before: dict[str, list[tuple[dt.date, str]]] = defaultdict(list)
    after: dict[str, set[str]] = defaultdict(set)
    for paper in store.iter_papers():
        if paper.announced is None:
            continue
        for name in paper.authors:
            if paper.announced < cut:
                before[name].append((paper.announced, paper.key))
            else:
                after[name].add(paper.key)
    pool = sorted(a for a, papers in before.items() if len(papers) >= SEEDS)
    chosen = random.Random(0).sample(pool, min(n_authors, len(pool)))
    profiles: list[Any] = []
    own: dict[str, set[str]] = {}
    for n, author in enumerate(chosen):
        latest = [key for _, key in sorted(before[author])[-SEEDS:]]
        name = f"author{n:03d}"
        profiles.append(Profile(version=1, name=name, seed_papers=tuple(latest)))
        own[name] = after.get(author, set())
    for n, keyword in enumerate(KEYWORDS):
        profiles.append(Profile(version=1, name=f"keyword{n:03d}", interests=(keyword,)))
    for n, (narrow, broad) in enumerate(PAIRS):
        profiles.append(Profile(version=1, name=f"pair{n:03d}", interests=(narrow, broad)))
    return profiles, own


def _share(values: list[bool]) -> float:
    return sum(values) / len(values) if values else 0.0


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    cuts = statistics.quantiles(values, n=10) if len(values) > 1 else [values[0]] * 9
    return {"p10": round(cuts[0], 4), "median": round(statistics.median(values), 4),
            "p90": round(cuts[-1], 4)}


def run(db_url: str, model: Path, *, cut: dt.date, n_authors: int) -> dict[str, Any]:
    from digest.modelstore import ensure, recommender
    from digest.store import Store

    started = time.perf_counter()
    with Store.open(db_url) as store:
        loaded = ensure(store, model, now=dt.datetime.now(dt.UTC), allow_refit=False)
        ranker = recommender(store, loaded, first_digest_days=7)
        profiles, own = _profiles(store, cut, n_authors)
        days = sorted({p.announced for p in store.iter_papers(announced_from=cut)
                       if p.announced is not None and p.announced.weekday() < 5})
        default = profiles[0].min_relevance
        kinds: dict[str, list[dict[str, Any]]] = {"author": [], "keyword": [], "pair": []}
        for day in days:
            for profile, ranking in zip(profiles, ranker.rank(profiles, until=day, since=day,
                                                              top=profile_top(profiles)),
                                        strict=True):
                items = ranking.items[: profile.max_papers]
                kind = profile.name.rstrip("0123456789")
                kinds[kind].append({
                    "profile": profile.name, "day": day.isoformat(),
                    "best_cosine": max((r.why.similarity for r in items), default=0.0),
                    "best_relevance": max((r.score for r in items), default=float("-inf")),
                    "old": [r.paper.key for r in items if r.why.similarity >= OLD_MIN_SCORE],
                    "new": {t: [r.paper.key for r in items if r.score >= t]
                            for t in (*THRESHOLDS, default)},
                    "interest": {t: [r.why.interest for r in items if r.score >= t]
                                 for t in (*THRESHOLDS, default)},
                    "old_interest": [r.why.interest for r in items
                                     if r.why.similarity >= OLD_MIN_SCORE],
                })
        honest = {kind: shares(ranker, [p for p in profiles if p.name.startswith(kind)],
                               days[0], days[-1]) for kind in ("author", "keyword", "pair")}
    report = _report(kinds, own, days, default, time.perf_counter() - started)
    report["share_above"] = honest
    return report


def shares(ranker: Any, profiles: list[Any], since: dt.date, until: dt.date
           ) -> dict[str, Any]:
    """How honest the scale is: for each profile, the share of the period's new papers at or
    above each relevance (the scale promises 10^-t), and at or above a raw cosine of 0.1 (the
    old threshold), across profiles. Uses the recommender's internals (as bench.common)."""
    from digest.recommend.batch import group_max

    plans = ranker._plans(profiles, until=until, since=since)
    candidates = ranker.candidates(since, until)
    batch = ranker._batch(plans, candidates)
    by_t: dict[str, list[float]] = defaultdict(list)
    raw_share: list[float] = []
    for c0 in range(0, len(plans), 64):
        c1 = min(c0 + 64, len(plans))
        queries = ranker._queries(batch, c0, c1)
        q0 = int(batch.offsets[c0])
        offsets = batch.offsets[c0 : c1 + 1] - q0
        weights = batch.weights[q0 : int(batch.offsets[c1])]
        relevance = group_max(queries.matrix, offsets, batch.prepared, weights,
                               calibration=queries.calibration)
        raw = group_max(queries.matrix, offsets, batch.prepared, weights)
        n = relevance.shape[1]
        for row, raw_row in zip(relevance, raw, strict=True):
            for t in (1.0, 2.0, 3.0):
                by_t[f"relevance>={t:g} (promised {10 ** -t:.3g})"].append(
                    float((row >= t).sum()) / n)
            raw_share.append(float((raw_row >= OLD_MIN_SCORE).sum()) / n)
    out: dict[str, Any] = {"papers": len(candidates.papers)}
    for key, values in by_t.items():
        out[key] = _quantiles(values)
    out[f"cosine>={OLD_MIN_SCORE:g}"] = _quantiles(raw_share)
    return out


def profile_top(profiles: list[Any]) -> int:
    return max(p.max_papers for p in profiles)


def _report(kinds: dict[str, list[dict[str, Any]]], own: dict[str, set[str]],
            days: list[dt.date], default: float, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {"days": len(days), "first_day": days[0].isoformat() if days else None,
                           "last_day": days[-1].isoformat() if days else None,
                           "default_min_relevance": default, "seconds": round(seconds, 1)}
    for kind, rows in kinds.items():
        if not rows:
            continue
        entry: dict[str, Any] = {"profile_days": len(rows)}
        entry["old"] = {
            "empty_share": round(_share([not r["old"] for r in rows]), 3),
            "papers_per_digest": round(statistics.mean(len(r["old"]) for r in rows), 2),
        }
        for t in (*THRESHOLDS, default):
            entry[f"relevance>={t:g}"] = {
                "empty_share": round(_share([not r["new"][t] for r in rows]), 3),
                "papers_per_digest": round(statistics.mean(len(r["new"][t]) for r in rows), 2),
            }
        entry["best_cosine"] = _quantiles([r["best_cosine"] for r in rows])
        entry["best_relevance"] = _quantiles([r["best_relevance"] for r in rows
                                              if r["best_relevance"] > float("-inf")])
        if kind == "author":
            later = sum(len(keys) for keys in own.values())
            reached_old = {(r["profile"], k) for r in rows for k in r["old"]
                           if k in own.get(r["profile"], ())}
            reached_new = {(r["profile"], k) for r in rows for k in r["new"][default]
                           if k in own.get(r["profile"], ())}
            entry["own_later_papers"] = later
            entry["own_reached_old"] = len(reached_old)
            entry["own_reached_new"] = len(reached_new)
        if kind == "pair":
            # Papers each interest got over the period, per profile: raw cosine >= 0.1 (old)
            # and relevance >= the default (new).
            balance: dict[str, dict[str, dict[str, int]]] = {}
            for r in rows:
                pair = PAIRS[int(r["profile"][len("pair"):])]
                got = balance.setdefault(" + ".join(pair), {
                    "old": dict.fromkeys(pair, 0), "new": dict.fromkeys(pair, 0)})
                for name in r["old_interest"]:
                    got["old"][name] += 1
                for name in r["interest"][default]:
                    got["new"][name] += 1
            entry["papers_by_interest"] = balance
        out[kind] = entry
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="store URL (default: the bench cache's full corpus)")
    parser.add_argument("--model", type=Path, help="model directory of that store")
    parser.add_argument("--cache", type=Path, default=ROOT / "out" / "bench-cache")
    parser.add_argument("--data", default=str(common.DATA))
    parser.add_argument("--authors", type=int, default=40)
    parser.add_argument("--cut", type=dt.date.fromisoformat, default=dt.date(2026, 6, 1))
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" /
                        "calibration.json")
    args = parser.parse_args()
    if args.db and args.model:
        db_url, model = args.db, args.model
    else:
        corpus = common.CorpusDir.of(args.cache, FULL)
        if not corpus.store_ok(args.data, FULL):
            corpus.build_store(common.load_corpora(args.data), args.data, FULL)
        with common.open_store(corpus) as store:
            common.load_model(store, corpus)
        db_url, model = corpus.url, corpus.model
    result = run(db_url, model, cut=args.cut, n_authors=args.authors)
    result["machine"] = common.machine()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))


if __name__ == "__main__":
    main()
