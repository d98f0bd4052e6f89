"""What the benchmark stages share: child processes and their peak memory, the bench corpora
(stores and fitted models cached under ``out/bench-cache``), synthetic profiles, and the one
scoring call sequence (`score_all`).

The corpora (docs/benchmarks.md, "Corpora and profiles"): papers sorted by (day, id); the *new*
papers are every paper announced on or after the day of the `NEW`-th most recent one (5,020 with
the shared file); profiles are `POOL` real authors with at least `SEEDS` earlier papers, their
first `SEEDS` earlier papers as seeds. A corpus of N papers is the new papers, every seed paper
and a random sample of the other earlier papers, so that every corpus size holds the same new
papers and the same profiles: only the corpus (the model's vocabulary and statistics) changes.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import os
import pickle
import platform
import random
import resource
import shutil
import subprocess
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from digest.modelstore import LoadedModel
    from digest.profiles import Profile
    from digest.recommend import Recommender
    from digest.store import Store

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "arxiv_cs_cv_cl_2025-2026.jsonl.gz"
CACHE = ROOT / "out" / "bench-cache"

#: New papers ranked at every scaling point (a week of a busy arXiv listing, rounded to whole
#: days: 5,020 with the shared file).
NEW = 5000
#: Seed papers per synthetic profile, and the authors profiles are drawn from.
SEEDS = 20
POOL = 200
#: Top-k kept per profile when only scoring (what `Recommender.rank` asks of a chunk at most:
#: 3 x max_papers of 12).
TOP_K = 36

#: arxiv-sanity-lite's TF-IDF as bench/rank.py and docs/evaluation.md use it (its compute.py with
#: `--num 20000 --max_df 0.1`); the baseline of the fit stage and the features of the SVM.
ASL_TFIDF: dict[str, Any] = {
    "ngram_range": (1, 2), "max_features": 20000, "min_df": 5, "max_df": 0.1,
    "sublinear_tf": True,
}
#: arxiv-sanity-lite's per-profile classifier (bench/rank.py, docs/evaluation.md).
ASL_SVM: dict[str, Any] = {
    "C": 0.01, "class_weight": "balanced", "max_iter": 5000, "tol": 1e-6,
}


# -- processes and memory --------------------------------------------------------------------


def peak_mb() -> float:
    """This process's peak resident memory so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """This process's resident memory now (Linux)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return peak_mb()
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


@dataclass
class ChildRun:
    stdout: str
    seconds: float
    #: Peak RSS of the largest single process of the child's tree (the child, or any process
    #: it waited for): what wait4 reports.
    peak_mb: float
    cpu_s: float

    def json(self) -> Any:
        """The JSON object the child printed on its last line of stdout."""
        return json.loads(self.stdout.strip().splitlines()[-1])


def run_child(argv: Sequence[str], *, capture: bool = True) -> ChildRun:
    """Run `argv` from the repository root and wait for it with wait4, so that its peak memory
    is its own and not the maximum over every child this process ran. stderr passes through
    (progress); stdout is captured, or passed through too when `capture` is false."""
    start = time.perf_counter()
    proc = subprocess.Popen(list(argv), cwd=ROOT, text=True,
                            stdout=subprocess.PIPE if capture else None)
    out = proc.stdout.read() if proc.stdout is not None else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.stdout is not None:
        proc.stdout.close()
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, list(argv), out)
    return ChildRun(out, seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime)


def load_average() -> float:
    return os.getloadavg()[0]


def machine() -> dict[str, Any]:
    """What a figure depends on besides the code: the machine, its load, the versions."""
    import numpy
    import scipy
    import sklearn

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    mem_gb = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = int(line.split()[1]) / 2**20
    except OSError:
        pass
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(), "memory_gb": round(mem_gb, 1),
        "platform": platform.platform(), "python": platform.python_version(),
        "numpy": numpy.__version__, "scipy": scipy.__version__, "sklearn": sklearn.__version__,
        "commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain")),
    }


# -- corpora -------------------------------------------------------------------------------


@dataclass
class Corpora:
    """The shared file split as the module docstring says."""

    records: list[dict[str, Any]]
    new: list[dict[str, Any]]
    old: list[dict[str, Any]]
    since: dt.date
    until: dt.date
    #: Seed paper ids of each pool author, in pool order.
    seeds: list[tuple[str, ...]]

    def corpus(self, n: int) -> list[dict[str, Any]]:
        """A corpus of `n` papers (all of them when `n` is at least the file), by (day, id)."""
        if n >= len(self.records):
            return self.records
        seed_ids = {k for group in self.seeds for k in group}
        keep = [r for r in self.old if r["id"] in seed_ids]
        rest = [r for r in self.old if r["id"] not in seed_ids]
        fill = n - len(self.new) - len(keep)
        if fill < 0:
            raise ValueError(f"a corpus of {n} papers cannot hold the {len(self.new)} new "
                             f"papers and {len(keep)} seed papers")
        keep += random.Random(n).sample(rest, fill)
        keep.sort(key=lambda r: (r["date"], r["id"]))
        return keep + self.new

    @property
    def spec(self) -> Spec:
        return Spec(self.since, self.until, self.seeds)


@dataclass
class Spec:
    """What a scoring run needs of the corpora, small enough to pass to a child process
    without the records (which would add ~400 MB to the child's peak memory)."""

    since: dt.date
    until: dt.date
    seeds: list[tuple[str, ...]]

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"since": self.since.isoformat(),
                                    "until": self.until.isoformat(),
                                    "seeds": self.seeds}) + "\n")

    @classmethod
    def load(cls, path: Path) -> Spec:
        raw = json.loads(path.read_text())
        return cls(dt.date.fromisoformat(raw["since"]), dt.date.fromisoformat(raw["until"]),
                   [tuple(group) for group in raw["seeds"]])

    def profiles(self, count: int) -> list[Profile]:
        """`count` seed-only profiles, each one pool author's seeds (drawn with replacement;
        the first `POOL` profiles are distinct authors)."""
        from digest.profiles import Profile

        rng = random.Random(1)
        picks = list(range(len(self.seeds)))
        rng.shuffle(picks)
        while len(picks) < count:
            picks.append(rng.randrange(len(self.seeds)))
        return [Profile(version=1, name=f"p{i:06d}", max_papers=12, min_relevance=0.0,
                        seed_papers=self.seeds[a]) for i, a in enumerate(picks[:count])]


def load_corpora(data: str | Path = DATA, *, new: int = NEW, seeds: int = SEEDS,
                 pool: int = POOL) -> Corpora:
    with gzip.open(data, "rt", encoding="utf-8") as lines:
        records = [json.loads(line) for line in lines]
    records.sort(key=lambda r: (r["date"], r["id"]))
    first_new = records[-min(new, len(records))]["date"]
    new_part = [r for r in records if r["date"] >= first_new]
    old = [r for r in records if r["date"] < first_new]
    by_author: dict[str, list[str]] = defaultdict(list)
    for r in old:
        for name in r["authors"]:
            by_author[name].append(r["id"])
    authors = sorted(a for a, ids in by_author.items() if len(ids) >= seeds)
    if not authors:
        raise ValueError(f"{data}: no author has {seeds} papers before {first_new}")
    chosen = random.Random(0).sample(authors, min(pool, len(authors)))
    return Corpora(records, new_part, old, dt.date.fromisoformat(first_new),
                   dt.date.fromisoformat(records[-1]["date"]),
                   [tuple(by_author[a][:seeds]) for a in chosen])


def _fingerprint(data: str | Path, n: int) -> dict[str, Any]:
    st = Path(data).stat()
    return {"data": str(data), "bytes": st.st_size, "mtime": st.st_mtime, "n": n,
            "new": NEW, "seeds": SEEDS, "pool": POOL}


def _code_hash() -> str:
    """Of the code a fitted model depends on: a cached model of other code is fitted again.
    Only `paper_text` of digest/recommend.py, which changes often for other reasons."""
    import inspect

    from digest import recommend

    digest = hashlib.sha1()
    for name in ("model.py", "modelstore.py", "tfidf.py", "tokenizer.py", "shorttext.py"):
        digest.update((ROOT / "digest" / name).read_bytes())
    digest.update(inspect.getsource(recommend.paper_text).encode())
    return digest.hexdigest()


@dataclass
class CorpusDir:
    """The cached store and models of one corpus size."""

    root: Path

    @classmethod
    def of(cls, cache: Path, n: int) -> CorpusDir:
        return cls(cache / f"corpus-{n}")

    @property
    def url(self) -> str:
        return f"sqlite:///{self.root / 'store.sqlite'}"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def asl(self) -> Path:
        return self.root / "asl.pkl"

    @property
    def spec(self) -> Path:
        return self.root / "spec.json"

    def store_ok(self, data: str | Path, n: int) -> bool:
        try:
            stamp = json.loads((self.root / "store.json").read_text())
        except (OSError, ValueError):
            return False
        return bool(stamp == _fingerprint(data, n))

    def model_ok(self) -> bool:
        try:
            return bool(json.loads((self.model / "bench.json").read_text())["code"]
                        == _code_hash())
        except (OSError, ValueError, KeyError):
            return False

    def mark_model(self) -> None:
        (self.model / "bench.json").write_text(json.dumps({"code": _code_hash()}) + "\n")

    def build_store(self, corpora: Corpora, data: str | Path, n: int) -> dict[str, float]:
        """Write the corpus as JSON Lines and ingest it into a new store here."""
        from digest.ingest import IngestContext, ingest
        from digest.sources.resolve import FileSource
        from digest.store import Store

        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        papers = corpora.corpus(n)
        path = self.root / "papers.jsonl.gz"
        with gzip.open(path, "wt", encoding="utf-8", compresslevel=1) as out:
            for r in papers:
                out.write(json.dumps(r) + "\n")
        now = dt.datetime.now(dt.UTC)
        start = time.perf_counter()
        with Store.open(self.url) as store:
            (result,) = ingest(store, [FileSource(str(path), "jsonl")],
                               IngestContext(now=now, today=now.date()))
        if result.error is not None:
            raise RuntimeError(f"{path}: {result.error}")
        corpora.spec.save(self.spec)
        (self.root / "store.json").write_text(json.dumps(_fingerprint(data, n)) + "\n")
        return {"papers": len(papers), "ingest_s": time.perf_counter() - start}


def open_store(corpus: CorpusDir) -> Store:
    from digest.store import Store

    return Store.open(corpus.url)


def load_model(store: Store, corpus: CorpusDir, *, refit: bool = True) -> LoadedModel:
    """The cached model, fitted now if it is missing or (`refit`) of other code."""
    from digest.modelstore import ensure

    now = dt.datetime.now(dt.UTC)
    fresh = refit and not corpus.model_ok()
    loaded = ensure(store, corpus.model, now=now, force=fresh, allow_refit=False)
    if fresh:
        corpus.mark_model()
    return loaded


def asl_features(store: Store, corpus: CorpusDir) -> dict[str, Any]:
    """arxiv-sanity-lite's features of the corpus, as its compute.py makes them: fit, then
    transform every text, float32, pickled with the ids. Returns what it pickled."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    from digest.recommend import paper_text

    keys, announced, texts = [], [], []
    for paper in store.iter_papers():
        keys.append(paper.key)
        announced.append(paper.announced.toordinal() if paper.announced else 0)
        texts.append(paper_text(paper))
    vec = TfidfVectorizer(dtype=np.float32, **ASL_TFIDF)
    vec.fit(texts)
    x = vec.transform(texts).astype(np.float32)
    features = {"keys": keys, "announced": np.array(announced), "x": x}
    with open(corpus.asl, "wb") as f:
        pickle.dump(features, f, protocol=pickle.HIGHEST_PROTOCOL)
    return features


# -- scoring ---------------------------------------------------------------------------------


def score_all(ranker: Recommender, profiles: Sequence[Profile], *, since: dt.date,
              until: dt.date, top_k: int = TOP_K) -> dict[str, float]:
    """Score every profile against the papers announced since..until, as `Recommender.rank`
    does before choosing: plans, candidates, query vectors, the chunked product with masks,
    top-k per profile. Nothing is chosen, thinned or explained. Seconds of each step;
    ``scoring_s`` (queries + product) is the figure bench/rank.py and issue 3 mean.

    The one place that knows the recommender's internals; bench/scaling.py and bench/rank.py
    go through it."""
    import numpy as np

    t0 = time.perf_counter()
    plans = ranker._plans(profiles, until=until, since=since)
    t1 = time.perf_counter()
    candidates = ranker.candidates(since, until)
    t2 = time.perf_counter()
    batch = ranker._batch(plans, candidates)
    t3 = time.perf_counter()
    n = len(candidates.papers)
    k = min(top_k, n - 1)
    for chunk in ranker._score_chunks(batch):
        scores = chunk[2]  # (c0, c1, scores, ...): what follows the scores varies by version
        if k > 0:
            np.argpartition(-scores, k, axis=1)[:, :k]
    t4 = time.perf_counter()
    return {"candidates": n, "plans_s": t1 - t0, "candidates_s": t2 - t1,
            "queries_s": t3 - t2, "product_s": t4 - t3, "scoring_s": t4 - t2,
            "total_s": t4 - t0}
