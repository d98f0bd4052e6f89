"""Build digest/data/sample.jsonl.gz: the bundled sample of real papers for the demo.

The papers of the last two announcement days in ../shared/data (what a digest would offer
"today"), plus every paper the example profiles name as a seed or like, so that the demo's
profiles resolve. arXiv metadata is CC0. Run from the repository root:

    python scripts/make_sample.py [../shared/data/arxiv_cs_cv_cl_2025-2026.jsonl.gz]
"""

from __future__ import annotations

import gzip
import json
import re
import sys
from pathlib import Path

DAYS = {"2026-06-29", "2026-07-01"}
ID = re.compile(r"\b\d{4}\.\d{4,5}\b")


def main() -> None:
    corpus = Path(sys.argv[1] if len(sys.argv) > 1 else
                  "../shared/data/arxiv_cs_cv_cl_2025-2026.jsonl.gz")
    from digest.profiles import load_profiles
    from digest.text import normalize_title

    refs: set[str] = set()
    for profile in load_profiles("profiles").profiles:
        refs.update(profile.seed_papers, profile.liked, profile.disliked)
        for interest in profile.interests:
            refs.update(interest.seed_papers)
    named = {r for r in refs if ID.fullmatch(r)}
    titles = {normalize_title(r) for r in refs - named}
    kept = []
    with gzip.open(corpus, "rt", encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            if (record["date"] in DAYS or record["id"] in named
                    or (titles and normalize_title(record["title"]) in titles)):
                record.pop("source", None)
                kept.append(record)
    out = Path("digest/data/sample.jsonl.gz")
    # mtime=0 keeps the file byte-identical across rebuilds.
    with open(out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        for record in kept:
            gz.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
    missing = named - {r["id"] for r in kept}
    print(f"{out}: {len(kept)} papers; ids named by profiles but not in the corpus: "
          f"{sorted(missing) or 'none'}")


if __name__ == "__main__":
    main()
