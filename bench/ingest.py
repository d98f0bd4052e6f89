"""Ingest benchmark: the 74,728-paper shared corpus into an empty store, then again unchanged.

    python bench/ingest.py [--data PATH] [--limit N] [--json bench/results/ingest.json]

Each stage runs in a fresh subprocess so that its peak memory (max RSS) is its own. Beside each
figure, the baseline measured in the same run: reading the file alone (gunzip + json.loads of
every line), the floor any ingest pays. Machines here are shared and noisy: read the ratios.
Targets (issue 2): first ingest < 30 s and < 500 MB peak; unchanged re-ingest < 15 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "arxiv_cs_cv_cl_2025-2026.jsonl.gz"


def _stage(kind: str, data: str, db: str, limit: int) -> dict[str, float]:
    """Run one stage in this process (called in a child); print its figures as JSON."""
    import datetime as dt
    import gzip

    start = time.perf_counter()
    if kind == "read":
        n = 0
        with gzip.open(data, "rt", encoding="utf-8") as lines:
            for n, line in enumerate(lines, start=1):
                json.loads(line)
                if limit and n >= limit:
                    break
        papers = n
    else:
        from digest.ingest import IngestContext, ingest
        from digest.sources.files import parse_jsonl
        from digest.sources.resolve import FileSource
        from digest.store import Store

        source = FileSource(data, "jsonl")
        if limit:
            class Limited(FileSource):
                def open(self, ctx: IngestContext):  # type: ignore[no-untyped-def]
                    from itertools import islice

                    from digest.ingest import Opened
                    from digest.sources.files import open_text

                    stream = open_text(self.path)
                    return Opened(islice(parse_jsonl(stream, origin=self.path), limit))

            source = Limited(data, "jsonl")
        now = dt.datetime.now(dt.UTC)
        with Store.open(db) as store:
            (result,) = ingest(store, [source], IngestContext(now=now, today=now.date()))
        assert result.error is None, result.error
        papers = result.new + result.updated + result.unchanged
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "peak_mb": peak_mb, "papers": papers}


def _run_child(kind: str, data: str, db: str, limit: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--data", data, "--db", db,
         "--limit", str(limit)],
        check=True, capture_output=True, text=True, cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--limit", type=int, default=0, help="only the first N records")
    parser.add_argument("--json", dest="json_out", default=str(ROOT / "bench/results/ingest.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_stage(args.child, args.data, args.db, args.limit)))
        return
    if not Path(args.data).exists():
        sys.exit(f"bench/ingest.py: {args.data} not found (it lives in ../shared/data)")
    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{tmp}/bench.sqlite"
        read = _run_child("read", args.data, db, args.limit)
        first = _run_child("ingest", args.data, db, args.limit)
        again = _run_child("ingest", args.data, db, args.limit)
        size_mb = os.path.getsize(f"{tmp}/bench.sqlite") / 2**20
    rows = [
        ("read only (baseline)", read, 1.0),
        ("ingest into empty store", first, first["seconds"] / read["seconds"]),
        ("re-ingest unchanged", again, again["seconds"] / read["seconds"]),
    ]
    print(f"{int(first['papers'])} papers from {args.data}; store {size_mb:.0f} MB")
    print("| stage | seconds | papers/s | peak MB | x baseline |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, fig, ratio in rows:
        rate = fig["papers"] / fig["seconds"]
        print(f"| {name} | {fig['seconds']:.1f} | {rate:,.0f} | {fig['peak_mb']:.0f} "
              f"| {ratio:.1f} |")
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_out).write_text(json.dumps(
        {"data": args.data, "store_mb": size_mb, "read": read, "first": first, "again": again},
        indent=2) + "\n")


if __name__ == "__main__":
    main()
