"""Run the benchmark suite: every stage in a fresh process, one table, bench/results.json.

    python -m bench [--quick] [--only STAGE[,STAGE]] [--json PATH] [--cache DIR] [--data PATH]

Stages, in order: ingest, fit, scaling, rank, render, smtp, web, schedule (docs/benchmarks.md says
what each measures and against which baseline). Each figure is printed beside its baseline,
measured in the same run, and their ratio, oriented so that above 1 always means ours is faster.
Peak MB is the largest single process of the figure (or of the stage when the stage does not
say).

`--quick` runs small sizes (a 10k-paper corpus, 1-2k profiles, few messages) in 3-5 minutes and
writes out/bench/results-quick.json unless `--json` says otherwise. `--only` re-runs some stages
and merges them into an existing results file of the same mode.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import common

STAGES = ("ingest", "fit", "scaling", "rank", "render", "smtp", "web", "schedule")

#: Arguments of each stage's script, per mode. "{cache}" is the corpus cache.
SIZES: dict[str, dict[str, list[str]]] = {
    "full": {
        "ingest": [],
        "fit": ["--corpus", "10000,30000,75000"],
        "scaling": ["--profiles", "1000,10000,100000", "--corpus", "10000,30000,75000",
                    "--at-corpus", "75000", "--at-profiles", "10000", "--svm", "4"],
        "rank": ["--profiles", "10000", "--new", "5000", "--svm", "5"],
        "render": ["--profiles", "10000"],
        "smtp": ["--messages", "1000", "--rounds", "3"],
        "web": ["--profiles", "10,10000", "--seconds", "5", "--slow", "1000"],
        # Each per-profile job reads all 1,000 profiles: its rate over the first 50 (4 min).
        "schedule": ["--profiles", "10000", "--baseline", "1000", "--baseline-stop", "50",
                     "--formats", "email,rss"],
    },
    "quick": {
        "ingest": ["--limit", "10000"],
        "fit": ["--corpus", "10000"],
        "scaling": ["--profiles", "1000,2000", "--corpus", "10000", "--at-corpus", "10000",
                    "--at-profiles", "1000", "--svm", "2"],
        # bench/rank.py on the cached 10k-paper corpus file instead of the whole one.
        "rank": ["--data", "{cache}/corpus-10000/papers.jsonl.gz", "--profiles", "1000",
                 "--new", "1000", "--seeds", "5", "--svm", "2"],
        "render": ["--profiles", "1000", "--sample", "50"],
        "smtp": ["--messages", "200", "--rounds", "3"],
        "web": ["--profiles", "10,1000", "--seconds", "2", "--slow", "300"],
        "schedule": ["--profiles", "1000", "--baseline", "100", "--formats", "email,rss"],
    },
}
#: Stages whose script reads the shared file (and takes --data).
READS_DATA = {"ingest", "fit", "scaling", "rank"}
#: Stages that keep corpora in the cache (and take --cache).
USES_CACHE = {"fit", "scaling"}


# -- rows: each stage's JSON as figures beside baselines ------------------------------------------


def _row(figure: str, unit: str, ours: float, baseline: float | None, baseline_name: str | None,
         *, better: str = "higher", peak_mb: float | None = None,
         baseline_peak_mb: float | None = None) -> dict[str, Any]:
    ratio = None
    if baseline is not None and ours > 0 and baseline > 0:
        ratio = ours / baseline if better == "higher" else baseline / ours
    return {"figure": figure, "unit": unit, "ours": ours, "baseline": baseline,
            "baseline_name": baseline_name, "better": better, "ratio": ratio,
            "peak_mb": peak_mb, "baseline_peak_mb": baseline_peak_mb}


def _ingest_rows(d: dict[str, Any]) -> list[dict[str, Any]]:
    read = d["read"]
    base = read["papers"] / read["seconds"]
    return [
        _row(f"{name}, {fig['papers']:,} papers", "papers/s", fig["papers"] / fig["seconds"],
             base, "read only", peak_mb=fig["peak_mb"], baseline_peak_mb=read["peak_mb"])
        for name, fig in (("ingest into an empty store", d["first"]),
                          ("re-ingest unchanged", d["again"]))
    ]


def _fit_rows(d: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        _row(f"fit the model, {p['papers']:,} papers", "s", p["ours"]["seconds"],
             p["baseline"]["seconds"], "sklearn fit_transform", better="lower",
             peak_mb=p["ours"]["peak_mb"], baseline_peak_mb=p["baseline"]["peak_mb"])
        for p in d["points"]
    ]


def _scaling_rows(d: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        _row(f"score {p['profiles']:,} profiles x {p['candidates']:,} papers, corpus "
             f"{p['corpus']:,}", "pairs/s", p["pairs_per_s"], p["baseline_pairs_per_s"],
             "asl SVM", peak_mb=p["peak_mb"],
             baseline_peak_mb=d["svm"][str(p["size"])]["peak_mb"])
        for p in d["points"]
    ]


def _rank_rows(d: dict[str, Any]) -> list[dict[str, Any]]:
    svm = 1 / d["svm_s_per_profile"]
    what = f"{d['profiles']:,} profiles x {d['new_papers']:,} papers, corpus {d['corpus']:,}"
    return [
        _row(f"rank.py scoring, {what}", "profiles/s", d["profiles"] / d["scoring_s"], svm,
             "asl SVM", peak_mb=d["scoring_peak_mb"]),
        _row("rank.py full rank (+ choose, thin, explain)", "profiles/s",
             d["profiles"] / d["rank_s"], svm, "asl SVM", peak_mb=d["rank_peak_mb"]),
    ]


def _render_rows(d: dict[str, Any]) -> list[dict[str, Any]]:
    per = d["ms_per_profile"]
    rows = []
    for name, ms in per.items():
        floor = None
        if name.startswith("email"):
            floor = 1000 / max(ms - d["inline_ms"], 1e-9)
        rows.append(_row(f"render {name}", "profiles/s", 1000 / ms, floor,
                         "no CSS inlining" if floor else None))
    rows.append(_row(f"render all formats, {d['profiles']:,} profiles, {d['workers']} processes",
                     "profiles/s", d["profiles"] / d["wall_s"], 1000 / sum(per.values()),
                     "1 process"))
    return rows


def _smtp_rows(d: dict[str, Any]) -> list[dict[str, Any]]:
    median = d["median"]
    return [_row(f"SMTP send, {d['messages']:,} messages of {d['mean_kb']:.0f} KB", "msg/s",
                 median["one_connection"]["per_s"], median["connection_per_message"]["per_s"],
                 "conn/message")]


def _web_rows(d: dict[str, Any]) -> list[dict[str, Any]]:
    points = {(p["server"], p["profiles"]): p for p in d["points"]}
    rows = []
    for (server, profiles), ours in points.items():
        if server != "ours":
            continue
        base = points.get(("wsgiref", profiles))
        rows.append(_row(f"serve a feed, {profiles:,} profiles", "requests/s",
                         ours["throughput"]["per_s"],
                         base["throughput"]["per_s"] if base else None, "wsgiref"))
        if "slow" in ours:
            slow = ours["slow"]
            base_slow = base["slow"] if base and "slow" in base else None
            rows.append(_row(
                f"answer a feed request while {slow['slow_clients']:,} slow clients hold "
                f"connections", "s", slow["median_s"] or 0,
                base_slow["median_s"] if base_slow else None, "wsgiref", better="lower"))
    return rows


def _schedule_rows(d: dict[str, Any]) -> list[dict[str, Any]]:
    base = d["baseline"]
    return [_row(f"daemon: {d['profiles']:,} profiles due at one minute to SMTP, last message "
                 f"after {d['seconds']:.0f} s", "digests/s", d["per_s"], base["per_s"],
                 f"per-profile jobs, {base['profiles']:,}"
                 + (f" (first {base['received']:,})" if base.get("stopped_after") else ""))]


ROWS: dict[str, Callable[[dict[str, Any]], list[dict[str, Any]]]] = {
    "ingest": _ingest_rows, "fit": _fit_rows, "scaling": _scaling_rows, "rank": _rank_rows,
    "render": _render_rows, "smtp": _smtp_rows, "web": _web_rows, "schedule": _schedule_rows,
}


# -- running ---------------------------------------------------------------------------------


def run_stage(stage: str, args: list[str], *, cache: Path, data: str,
              work: Path) -> dict[str, Any]:
    """Run one stage's script in a fresh process; its JSON, rows, time and peak memory."""
    out = work / f"{stage}.json"
    argv = [sys.executable, str(common.ROOT / "bench" / f"{stage}.py"),
            *(a.replace("{cache}", str(cache)) for a in args), "--json", str(out)]
    if stage in READS_DATA and "--data" not in args:
        argv += ["--data", data]
    if stage in USES_CACHE:
        argv += ["--cache", str(cache)]
    if stage == "rank" and "--data" in args:
        # The quick rank reads a corpus file another stage writes into the cache.
        from bench.fit import ensure_store

        ensure_store(10000, cache, data)
    load_before = common.load_average()
    print(f"\n== {stage}: {' '.join(argv[1:])}", flush=True)
    run = common.run_child(argv, capture=False)
    results = json.loads(out.read_text())
    rows = ROWS[stage](results)
    for row in rows:
        row["stage"] = stage
        if row["peak_mb"] is None:
            row["peak_mb"] = run.peak_mb
    return {"argv": argv[1:], "seconds": run.seconds, "cpu_s": run.cpu_s,
            "peak_mb": run.peak_mb, "load_before": load_before,
            "load_after": common.load_average(),
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "results": results, "rows": rows}


def run(stages: list[str], sizes: dict[str, list[str]], *, cache: Path = common.CACHE,
        data: str = str(common.DATA)) -> dict[str, Any]:
    """Run `stages` with `sizes` (script arguments per stage); the suite's results. A stage that
    fails is recorded with its error and the others go on."""
    report: dict[str, Any] = {"machine": common.machine(), "load_before": common.load_average(),
                              "stages": {}}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-") as work:
        for stage in stages:
            try:
                report["stages"][stage] = run_stage(stage, sizes[stage], cache=cache, data=data,
                                                    work=Path(work))
            except (subprocess.CalledProcessError, OSError, ValueError, KeyError) as exc:
                print(f"bench: stage {stage} failed: {exc}", file=sys.stderr)
                report["stages"][stage] = {"error": str(exc), "rows": []}
    report["seconds"] = time.perf_counter() - start
    report["load_after"] = common.load_average()
    return report


def merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """`new`'s stages over `old`'s, in suite order; machine and load of the newer run."""
    stages = {**old.get("stages", {}), **new["stages"]}
    return {**new, "stages": {s: stages[s] for s in STAGES if s in stages}}


def rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [row for stage in report["stages"].values() for row in stage["rows"]]


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if unit == "s" or value < 100:
        return f"{value:,.2f}" if value < 10 else f"{value:,.1f}"
    return f"{value:,.0f}"


def table(report: dict[str, Any]) -> str:
    lines = ["| stage | figure | unit | ours | baseline | ratio | peak MB |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for r in rows(report):
        base = (f"{_number(r['baseline'], r['unit'])} ({r['baseline_name']})"
                if r["baseline"] is not None else "—")
        ratio = "—" if r["ratio"] is None else (
            f"{r['ratio']:,.0f}x" if r["ratio"] >= 100 else f"{r['ratio']:.2f}x")
        peak = "—" if r["peak_mb"] is None else f"{r['peak_mb']:,.0f}"
        lines.append(f"| {r['stage']} | {r['figure']} | {r['unit']} "
                     f"| {_number(r['ours'], r['unit'])} | {base} | {ratio} | {peak} |")
    for name, stage in report["stages"].items():
        if "error" in stage:
            lines.append(f"| {name} | FAILED: {stage['error']} | | | | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None, *,
         sizes: dict[str, dict[str, list[str]]] = SIZES) -> int:
    """The command line; `sizes` replaces `SIZES` (tests run tiny sizes)."""
    parser = argparse.ArgumentParser(prog="python -m bench",
                                     description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, 3-5 minutes")
    parser.add_argument("--only", help=f"comma-separated stages of: {', '.join(STAGES)}")
    parser.add_argument("--json", dest="json_out", type=Path,
                        help="default bench/results.json (--quick: out/bench/results-quick.json)")
    parser.add_argument("--cache", type=Path, default=common.CACHE,
                        help="stores and models of the bench corpora, kept between runs")
    parser.add_argument("--data", default=str(common.DATA))
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    stages = list(STAGES)
    if args.only:
        stages = [s.strip() for s in args.only.split(",") if s.strip()]
        unknown = [s for s in stages if s not in STAGES]
        if unknown:
            parser.error(f"unknown stage {', '.join(unknown)}; stages: {', '.join(STAGES)}")
    if not Path(args.data).exists():
        print(f"bench: {args.data} not found (it lives in ../shared/data)", file=sys.stderr)
        return 1
    json_out = args.json_out or (common.ROOT / ("bench/results.json" if mode == "full"
                                                else "out/bench/results-quick.json"))

    report = run(stages, sizes[mode], cache=args.cache, data=args.data)
    report["mode"] = mode
    if args.only and json_out.exists():
        try:
            old = json.loads(json_out.read_text())
        except ValueError:
            old = {}
        if old.get("mode") == mode:
            report = merge(old, report)
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(report, indent=2) + "\n")

    m = report["machine"]
    shown = json_out.relative_to(common.ROOT) if json_out.is_relative_to(common.ROOT) else json_out
    print(f"\n## Results ({mode}, {m['date']}, commit {m['commit'][:10]}"
          f"{' + changes' if m['dirty'] else ''})\n")
    print(table(report))
    print(f"\n{m['cpu_count']} CPUs, {m['memory_gb']} GB, Python {m['python']}; load average "
          f"{report['load_before']:.1f} before, {report['load_after']:.1f} after; "
          f"{report['seconds'] / 60:.1f} min. Ratio: ours / baseline for rates, baseline / ours "
          f"for seconds (above 1: ours is faster). Written to {shown}")
    return 1 if any("error" in s for s in report["stages"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
