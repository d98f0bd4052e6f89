"""The year-long replay: the shared corpus day by day through the real pipeline, with invariants.

    python bench/replay.py [--days N] [--profiles 200] [--warmup-days 20] [--data PATH]
                           [--json bench/results/replay.json] [--keep DIR]

Each day of the corpus (322 days with papers) is written to a JSON Lines file and ingested with
`DigestApp.ingest` at a simulated clock (06:00 UTC of that day). After a warm-up (the first
`--warmup-days` days are only ingested, so that the pseudo-users' seed papers are in the store
before their first digest), `DigestApp.run` delivers the day's digests (07:00 UTC) to the
profiles due: email over SMTP to a loopback aiosmtpd server (tests/smtp_server.py, in a child
process that parses what it receives), markdown files and RSS/Atom feeds under the out folder.
The store is a real SQLite file, the profiles real YAML files read by the real loader each day,
and the text model is refitted by its own policy (20% growth or 30 days) at the simulated clock.

Profiles: three quarters pseudo-users (an author of the corpus with papers in the warm-up: those
papers are the seeds; every third also follows a co-author), one quarter keyword profiles (one
to three topics, some avoiding a phrase or limited to a category). One profile in ten is weekly
(its digest on the first replayed day of each week), the others daily.

At the end the invariants are checked (`check_all`) and the script exits 1 if any fails:

- every received message parses without defects, goes to a known profile, and no paper reaches
  a profile in two received messages (or twice in one);
- every paper the ledger holds as sent to a profile is in exactly one received message to it;
- every ledger delivery marked sent was received exactly once, byte for byte, with the papers
  the ledger lists; every received message is a ledger delivery (by Message-ID); nothing is
  left pending or failed;
- every markdown file named by the ledger exists and lists the ledger's papers;
- each profile's RSS and Atom feeds hold exactly the ledger's papers sent within the rolling
  window (feeds.window_days, at most feeds.max_items, newest first) as of its last run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import email
import gzip
import hashlib
import importlib
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
ABS_URL = re.compile(r"https://arxiv\.org/abs/([^\s)>\"'<]+)")
#: A numbered item of the text part ("3. Title ..." at the start of a line).
TEXT_ITEM = re.compile(r"^\d+\. ", re.M)
#: A record's date, found without parsing the whole line.
DATE_FIELD = re.compile(r'"date":\s*"(\d{4}-\d{2}-\d{2})')


# -- what the SMTP server received ------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One message the loopback server accepted, reduced to what the checks need."""

    rcpt: tuple[str, ...]
    message_id: str
    sha256: str
    size: int
    #: The paper of each numbered item of the text part (its first arXiv link), in order: a
    #: paper listed twice appears twice.
    keys: tuple[str, ...]
    defects: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Received:
        return cls(tuple(data["rcpt"]), data["message_id"], data["sha256"], data["size"],
                   tuple(data["keys"]), tuple(data["defects"]))


def parse_received(rcpt: Sequence[str], content: bytes) -> Received:
    """Parse one received message with the email package; its paper ids from the text part."""
    parsed = email.message_from_bytes(content, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    defects = [type(d).__name__ for d in parsed.defects]
    body = parsed.get_body(("plain",))
    keys: list[str] = []
    if body is None:
        defects.append("no text/plain part")
    else:
        for item in TEXT_ITEM.split(str(body.get_content()))[1:]:
            link = ABS_URL.search(item)
            keys.append(link.group(1) if link else "(an item without arXiv link)")
    return Received(tuple(rcpt), str(parsed["Message-ID"] or ""),
                    hashlib.sha256(content).hexdigest(), len(content), tuple(keys),
                    tuple(defects))


def _serve() -> None:
    """Child: run the server; on each line of stdin, print what it received since (parsed) and
    forget it, so that a year of mail never sits in memory."""
    # tests/ is on sys.path (above); imported by name so that mypy need not see tests/.
    smtp_server = importlib.import_module("smtp_server")
    with smtp_server.RecordingServer() as server:
        print(json.dumps({"port": server.port}), flush=True)
        for _ in sys.stdin:
            with server.lock:
                messages = list(server.messages)
                server.messages.clear()
                connections, server.connections = server.connections, 0
            parsed = [parse_received(m.rcpt_tos, m.content).as_dict() for m in messages]
            print(json.dumps({"messages": parsed, "connections": connections}), flush=True)


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    # The server child needs nothing of digest: it starts before the imports below.
    _serve()
    sys.exit(0)

import numpy as np  # noqa: E402

from digest.app import DigestApp  # noqa: E402
from digest.config import Config, EmailConfig, FeedConfig, ServerConfig, SmtpConfig  # noqa: E402
from digest.modelstore import LoadedModel  # noqa: E402
from digest.profiles import Profile  # noqa: E402
from digest.sources.resolve import FileSource  # noqa: E402
from digest.store import Store  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "arxiv_cs_cv_cl_2025-2026.jsonl.gz"
SENDER = "Paper Digest <digest@example.org>"
LIST_ID = "papers.example.org"
PUBLIC_URL = "https://digest.example.org"
SECRET_ENV = "DIGEST_REPLAY_SECRET"
INGEST_AT = dt.time(6, 0)
RUN_AT = dt.time(7, 0)
#: One profile in this many is weekly.
WEEKLY_EVERY = 10
TOPICS = [
    "vision language models", "diffusion models for image generation",
    "large language model reasoning", "benchmarks for evaluating language models",
    "3D reconstruction and Gaussian splatting", "robot manipulation policies",
    "video understanding", "medical image segmentation", "speech recognition",
    "reinforcement learning from human feedback", "object detection",
    "retrieval augmented generation", "autonomous driving perception",
    "hallucination in multimodal models", "image editing with text prompts",
    "efficient inference and quantization", "multilingual machine translation",
    "remote sensing imagery", "agents that use tools", "point clouds and lidar",
]
AVOIDED = ["medical imaging", "remote sensing", "autonomous driving", "speech"]
MARKDOWN_HEADING = re.compile(r"^## \d+\. .*\]\(https://arxiv\.org/abs/([^)\s]+)\)", re.M)
ATOM = "{http://www.w3.org/2005/Atom}"


class MailSink:
    """The loopback SMTP server (tests/smtp_server.py) in a child process, so that it neither
    shares the GIL with the replay nor holds a year of messages in memory."""

    def __init__(self) -> None:
        self.port = 0
        self.connections = 0
        self._child: subprocess.Popen[str] | None = None

    def __enter__(self) -> MailSink:
        self._child = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
        )
        self.port = int(json.loads(self._readline())["port"])
        return self

    def _readline(self) -> str:
        assert self._child is not None and self._child.stdout is not None
        line = self._child.stdout.readline()
        if not line:
            raise RuntimeError(f"the SMTP server child exited ({self._child.poll()})")
        return line

    def request(self) -> None:
        """Ask for what the server accepted until now; the child parses it while the replay
        goes on, and `collect` reads it."""
        assert self._child is not None and self._child.stdin is not None
        self._child.stdin.write("drain\n")
        self._child.stdin.flush()

    def collect(self) -> list[Received]:
        """The answer to the last `request`."""
        data = json.loads(self._readline())
        self.connections += int(data["connections"])
        return [Received.from_dict(m) for m in data["messages"]]

    def __exit__(self, *exc: object) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        assert child.stdin is not None
        child.stdin.close()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


# -- the corpus, day by day ---------------------------------------------------------------------


@dataclass(frozen=True)
class CorpusPaper:
    key: str
    date: dt.date
    authors: tuple[str, ...]


@dataclass(frozen=True)
class Day:
    date: dt.date
    path: Path
    papers: int


def split_days(data: Path, folder: Path, *, days: int | None = None, stride: int = 1
               ) -> tuple[list[Day], list[CorpusPaper]]:
    """Write each announcement day of `data` to ``folder/YYYY-MM-DD.jsonl`` (only the first
    `days` days when given; a file in date order, as the shared corpus is, is read only that
    far) and return them, with a light reference to each of their papers (for the profiles).
    `stride` keeps one paper in that many of each day: a smaller replay, for tests."""
    lines: dict[dt.date, list[str]] = defaultdict(list)
    latest: dt.date | None = None
    in_order = True
    with gzip.open(data, "rt", encoding="utf-8") if data.suffix == ".gz" \
            else open(data, encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            found = DATE_FIELD.search(line)
            day = dt.date.fromisoformat(found[1] if found else
                                        str(json.loads(line)["date"])[:10])
            in_order = in_order and (latest is None or day >= latest)
            latest = day if latest is None else max(latest, day)
            if days is not None and in_order and day not in lines and len(lines) >= days:
                break
            lines[day].append(line if line.endswith("\n") else line + "\n")
    folder.mkdir(parents=True, exist_ok=True)
    out: list[Day] = []
    refs: list[CorpusPaper] = []
    for date in sorted(lines)[:days]:
        kept = lines[date][::stride]
        path = folder / f"{date.isoformat()}.jsonl"
        path.write_text("".join(kept), encoding="utf-8")
        out.append(Day(date, path, len(kept)))
        for line in kept:
            record = json.loads(line)
            refs.append(CorpusPaper(str(record["id"]), date, tuple(record.get("authors") or ())))
    return out, refs


# -- profiles -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileSpec:
    name: str
    kind: str  # pseudo | keyword
    weekly: bool
    data: dict[str, Any]
    author: str | None = None
    #: The pseudo-user's own papers announced after the warm-up (what it would like to get).
    own_later: frozenset[str] = frozenset()

    def yaml(self) -> str:
        head = f"# replay: {self.kind} profile" + (f" for {self.author}" if self.author else "")
        # JSON is YAML, and quotes the arXiv ids.
        return head + "\n" + "".join(f"{k}: {json.dumps(v)}\n" for k, v in self.data.items())


def make_profiles(refs: Sequence[CorpusPaper], *, warmup_end: dt.date, last_day: dt.date,
                  count: int, seed: int = 2025) -> list[ProfileSpec]:
    """`count` profiles: three quarters pseudo-users whose seeds are an author's papers of the
    warm-up (at most 5; authors with 2+ of them and 3+ later papers first), the rest keyword
    profiles."""
    rng = random.Random(seed)
    warm: dict[str, list[str]] = defaultdict(list)
    later: dict[str, set[str]] = defaultdict(set)
    coauthors: dict[str, Counter[str]] = defaultdict(Counter)
    for ref in refs:
        names = [a for a in ref.authors if len(a) >= 4]
        for name in names:
            if ref.date <= warmup_end:
                warm[name].append(ref.key)
                coauthors[name].update(a for a in names if a != name)
            elif ref.date <= last_day:
                later[name].add(ref.key)
    n_pseudo = round(count * 0.75)
    chosen: list[str] = []
    tiers: list[Callable[[str], bool]] = [
        lambda a: len(warm[a]) >= 2 and len(later[a]) >= 3,
        lambda a: len(warm[a]) >= 2 and len(later[a]) >= 1,
        lambda a: len(later[a]) >= 1,
        lambda a: True,
    ]
    for tier in tiers:
        pool = sorted(a for a in warm if a not in chosen and tier(a))
        rng.shuffle(pool)
        chosen += pool[: n_pseudo - len(chosen)]
    specs: list[ProfileSpec] = []
    sizes = [5, 8, 10, 12, 15]
    for i, author in enumerate(chosen):
        data: dict[str, Any] = {
            "version": 1, "email": f"u{i:03d}@example.org",
            "formats": ["email", "markdown", "rss"], "max_papers": sizes[i % len(sizes)],
            "seed_papers": warm[author][:5],
        }
        if i % 3 == 2 and coauthors[author]:
            data["authors"] = [coauthors[author].most_common(1)[0][0]]
        specs.append(ProfileSpec(f"u{i:03d}", "pseudo", False, data, author,
                                 frozenset(later[author])))
    for i in range(count - len(specs)):
        topics = rng.sample(TOPICS, 1 + i % 3)
        data = {
            "version": 1, "email": f"k{i:03d}@example.org",
            "formats": ["email", "markdown", "rss"], "max_papers": sizes[(i + 2) % len(sizes)],
            "interests": topics,
        }
        if i % 4 == 1:
            data["avoid"] = [AVOIDED[i % len(AVOIDED)]]
        if i % 5 == 3:
            data["categories"] = ["cs.CL"] if "language" in " ".join(topics) else ["cs.CV"]
        specs.append(ProfileSpec(f"k{i:03d}", "keyword", False, data))
    weekly = []
    for n, spec in enumerate(specs):
        if n % WEEKLY_EVERY == WEEKLY_EVERY - 1:
            spec = dataclasses.replace(spec, weekly=True,
                                       data={**spec.data, "schedule": "0 7 * * mon"})
        weekly.append(spec)
    return weekly


def write_profiles(specs: Iterable[ProfileSpec], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        (folder / f"{spec.name}.yaml").write_text(spec.yaml(), encoding="utf-8")


# -- the app at a simulated clock ---------------------------------------------------------------


@dataclass
class SimClock:
    """The clock seam: whatever time the replay says it is."""

    now: dt.datetime

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class ModelCall:
    day: str
    seconds: float
    refit_because: str | None
    papers: int


@dataclass
class TimedApp(DigestApp):
    """`DigestApp` that times each model load or refit (what `run` does first)."""

    model_calls: list[ModelCall] = field(default_factory=list)

    def model(self, store: Store, *, force: bool = False) -> LoadedModel:
        start = time.perf_counter()
        loaded = super().model(store, force=force)
        self.model_calls.append(ModelCall(self.clock().date().isoformat(),
                                          time.perf_counter() - start, loaded.fitted_because,
                                          loaded.model.n_docs))
        return loaded


def site_config(out_dir: Path, port: int, *, window_days: int = 30,
                max_items: int = 100) -> Config:
    return Config(
        out_dir=str(out_dir),
        smtp=SmtpConfig(host="127.0.0.1", port=port, security="none", timeout=30, retries=3),
        email=EmailConfig.model_validate({"from": SENDER, "list_id": LIST_ID}),
        server=ServerConfig(public_url=PUBLIC_URL, secret_env=SECRET_ENV),
        feeds=FeedConfig(window_days=window_days, max_items=max_items),
    )


def at(day: dt.date, when: dt.time) -> dt.datetime:
    return dt.datetime.combine(day, when, tzinfo=dt.UTC)


# -- the replay ---------------------------------------------------------------------------------


@dataclass
class DayRow:
    day: str
    papers: int
    ingest_s: float
    new: int = 0
    ingest_cpu_s: float = 0.0
    profiles_s: float = 0.0
    run_s: float = 0.0
    #: CPU seconds of this process (all its threads) for profiles + run: steadier than the
    #: wall time on a shared machine.
    cpu_s: float = 0.0
    model_s: float = 0.0
    refit: str | None = None
    drain_s: float = 0.0
    due: int = 0
    sent: int = 0
    empty: int = 0
    failed: int = 0
    delivered: int = 0
    received: int = 0


@dataclass
class ReplayResult:
    root: Path
    db_url: str
    out_dir: Path
    profiles_dir: Path
    specs: list[ProfileSpec]
    days: list[DayRow]
    received: list[Received]
    #: Per digest (profile, day): papers delivered (0 for an empty digest).
    per_digest: list[tuple[str, str, int]]
    #: When each profile's feeds were last written (its last run).
    last_run: dict[str, dt.datetime]
    model_calls: list[ModelCall]
    failures: list[str]
    connections: int
    wall_s: float
    window_days: int
    max_items: int
    warmup_days: int
    load_start: float
    load_end: float = 0.0

    @property
    def store_path(self) -> Path:
        return Path(self.db_url.removeprefix("sqlite:///"))


def replay(data: Path, root: Path, *, days: int | None = None, profiles: int = 200,
           warmup_days: int = 20, window_days: int = 30, max_items: int = 100, stride: int = 1,
           log: Callable[[str], None] | None = None,
           progress: Callable[[list[DayRow], float], None] | None = None) -> ReplayResult:
    """Replay the first `days` days of `data` (all by default) in folder `root`, one paper in
    `stride` of each day (all by default); `log` gets a line per day, `progress` the rows so far
    and the wall time every 20 digest days."""
    say = log or (lambda _: None)
    os.environ.setdefault(SECRET_ENV, "replay-secret-0123456789")
    start = time.perf_counter()
    load_start = os.getloadavg()[0]
    day_list, refs = split_days(data, root / "days", days=days, stride=stride)
    if len(day_list) <= warmup_days:
        raise ValueError(f"{len(day_list)} days is not more than the warm-up ({warmup_days})")
    warmup_end = day_list[warmup_days - 1].date if warmup_days else day_list[0].date
    specs = make_profiles(refs, warmup_end=warmup_end, last_day=day_list[-1].date,
                          count=profiles)
    del refs
    write_profiles(specs, root / "profiles")
    weekly = {s.name for s in specs if s.weekly}
    say(f"{len(day_list)} days ({sum(d.papers for d in day_list)} papers), warm-up to "
        f"{warmup_end}, {len(specs)} profiles ({len(weekly)} weekly) in {root}")

    db_url = f"sqlite:///{root}/digest.sqlite"
    clock = SimClock(at(day_list[0].date, INGEST_AT))
    rows: list[DayRow] = []
    received: list[Received] = []
    per_digest: list[tuple[str, str, int]] = []
    last_run: dict[str, dt.datetime] = {}
    failures: list[str] = []
    seen_weeks: set[tuple[int, int]] = set()
    with MailSink() as sink:
        app = TimedApp(site_config(root / "out", sink.port, window_days=window_days,
                                   max_items=max_items),
                       db_url, str(root / "profiles"), clock=clock)
        asked: DayRow | None = None  # the day whose mail the server child is parsing

        def collect() -> None:
            t0 = time.perf_counter()
            got = sink.collect()
            assert asked is not None
            asked.drain_s = time.perf_counter() - t0
            asked.received = len(got)
            received.extend(got)
            with open(root / "received.jsonl", "a", encoding="utf-8") as handle:
                handle.writelines(json.dumps(m.as_dict()) + "\n" for m in got)

        for n, day in enumerate(day_list):
            clock.now = at(day.date, INGEST_AT)
            t0, c0 = time.perf_counter(), time.process_time()
            (result,) = app.ingest([FileSource(str(day.path), "jsonl")], today=day.date)
            row = DayRow(day.date.isoformat(), day.papers, time.perf_counter() - t0, result.new,
                         time.process_time() - c0)
            if result.error or result.rejected:
                failures.append(f"{day.date}: ingest: {result.error or result.rejected[:3]}")
            rows.append(row)
            if n < warmup_days:
                say(f"{row.day} ingest {row.new:4d} new {row.ingest_s:6.2f}s (warm-up)")
                continue
            clock.now = at(day.date, RUN_AT)
            t0, c0 = time.perf_counter(), time.process_time()
            found = app.profiles()
            row.profiles_s = time.perf_counter() - t0
            if not found.ok:
                failures += [f"{day.date}: profile: {e}" for e in found.errors]
            iso = day.date.isocalendar()
            first_of_week = (iso.year, iso.week) not in seen_weeks
            seen_weeks.add((iso.year, iso.week))
            due = [p for p in found.profiles if p.name not in weekly or first_of_week]
            if asked is not None:
                collect()
            calls = len(app.model_calls)
            t0 = time.perf_counter()
            results = app.run(due, day=day.date)
            row.run_s = time.perf_counter() - t0
            row.cpu_s = time.process_time() - c0
            sink.request()
            asked = row
            for call in app.model_calls[calls:]:
                row.model_s += call.seconds
                row.refit = row.refit or call.refit_because
            row.due = len(due)
            for r in results:
                last_run[r.profile] = clock.now
                if r.status == "failed" or r.error:
                    row.failed += 1
                    failures.append(f"{day.date}: {r.profile}: {r.status}: {r.error}")
                row.sent += r.status == "sent"
                row.empty += r.status == "empty"
                row.delivered += len(r.papers) if r.status == "sent" else 0
                per_digest.append((r.profile, row.day, len(r.papers) if r.status == "sent"
                                   else 0))
            say(f"{row.day} ingest {row.new:4d} new {row.ingest_s:6.2f}s, profiles "
                f"{row.profiles_s:5.2f}s, run {row.due} profiles {row.run_s:6.2f}s (model "
                f"{row.model_s:5.2f}s{', refit' if row.refit else ''}), {row.sent} sent, "
                f"{row.empty} empty, {row.delivered} papers; cpu {row.cpu_s:5.2f}s, load "
                f"{os.getloadavg()[0]:.1f}")
            if progress is not None and (n + 1 - warmup_days) % 20 == 0:
                progress(rows, time.perf_counter() - start)
        if asked is not None:
            collect()
        connections = sink.connections
    return ReplayResult(
        root=root, db_url=db_url, out_dir=root / "out", profiles_dir=root / "profiles",
        specs=specs, days=rows, received=received, per_digest=per_digest, last_run=last_run,
        model_calls=app.model_calls, failures=failures, connections=connections,
        wall_s=time.perf_counter() - start, window_days=window_days, max_items=max_items,
        warmup_days=warmup_days, load_start=load_start, load_end=os.getloadavg()[0],
    )


# -- the invariants: each check returns its violations (empty: it holds) ------------------------


def check_messages(received: Sequence[Received], profiles: Sequence[Profile]) -> list[str]:
    """Each message parses cleanly and goes to one known profile; no paper reaches a profile
    twice (in two messages, or twice in one)."""
    out = []
    name_of = {p.email: p.name for p in profiles if p.email}
    copies: Counter[tuple[str, str]] = Counter()
    for m in received:
        if m.defects:
            out.append(f"message {m.message_id}: defects {list(m.defects)}")
        if len(m.rcpt) != 1 or m.rcpt[0] not in name_of:
            out.append(f"message {m.message_id}: to {list(m.rcpt)}, not one known profile")
            continue
        copies.update((name_of[m.rcpt[0]], key) for key in m.keys)
    out += [f"{name}: paper {key} delivered {n} times" for (name, key), n in
            sorted(copies.items()) if n > 1]
    return out


def check_ledger(store: Store, received: Sequence[Received],
                 profiles: Sequence[Profile]) -> list[str]:
    """The ledger and the server agree: each paper recorded as sent is in exactly one received
    message to its profile; each delivery recorded as sent was received once, byte for byte,
    with the papers it lists; each received message is a ledger delivery; nothing is left
    pending or failed; the sent papers are exactly those of the sent deliveries."""
    out = []
    by_id: dict[str, list[Received]] = defaultdict(list)
    #: address -> paper -> received messages listing it
    in_messages: dict[str, Counter[str]] = defaultdict(Counter)
    for m in received:
        by_id[m.message_id].append(m)
        in_messages[m.rcpt[0] if m.rcpt else ""].update(m.keys)
    in_ledger: set[str] = set()
    for profile in profiles:
        name, address = profile.name, profile.email or ""
        from_deliveries: Counter[int] = Counter()
        for d in store.deliveries_of(name):
            if d.status in ("pending", "failed"):
                out.append(f"{name}: delivery {d.key} left {d.status} ({d.last_error})")
                continue
            if d.status != "sent":
                continue
            from_deliveries.update(d.pids)
            if d.message is None or not d.message_id:
                out.append(f"{name}: delivery {d.key} is sent without a message")
                continue
            in_ledger.add(d.message_id)
            got = by_id.get(d.message_id, [])
            if len(got) != 1:
                out.append(f"{name}: delivery {d.key} ({d.message_id}) received {len(got)} "
                           "times")
            listed = sorted(str(item.get("key", item["pid"])) for item in d.items)
            for m in got:
                if m.rcpt != (address,):
                    out.append(f"{name}: delivery {d.key} went to {list(m.rcpt)}")
                if m.sha256 != hashlib.sha256(d.message).hexdigest():
                    out.append(f"{name}: delivery {d.key}: received bytes differ from the "
                               "ledger's")
                if sorted(m.keys) != listed:
                    out.append(f"{name}: delivery {d.key}: message lists {sorted(m.keys)}, "
                               f"ledger {listed}")
        sent = store.sent_pids(name)
        twice = sorted(pid for pid, n in from_deliveries.items() if n > 1)
        if twice:
            out.append(f"{name}: papers {twice} in {len(twice)} deliveries more than once")
        if sent != set(from_deliveries):
            out.append(f"{name}: sent ledger {len(sent)} papers, sent deliveries "
                       f"{len(from_deliveries)}: only in the ledger "
                       f"{sorted(sent - set(from_deliveries))[:5]}, only in deliveries "
                       f"{sorted(set(from_deliveries) - sent)[:5]}")
        ledger_keys = {paper.key for paper in store.papers_by_pid(sent).values()}
        got_keys = in_messages.get(address, Counter())
        for key in sorted(ledger_keys):
            if got_keys[key] != 1:
                out.append(f"{name}: paper {key} (ledger: sent) is in {got_keys[key]} received "
                           "messages")
        unrecorded = sorted(set(got_keys) - ledger_keys)
        if unrecorded:
            out.append(f"{name}: received papers the ledger does not hold as sent: "
                       f"{unrecorded[:5]}")
    for message_id, got in sorted(by_id.items()):
        if message_id not in in_ledger:
            out.append(f"message {message_id} to {list(got[0].rcpt)} is not a sent delivery "
                       "in the ledger")
    return out


def check_markdown(store: Store, profiles: Sequence[Profile]) -> list[str]:
    """Each sent delivery's markdown file exists and lists its papers."""
    out = []
    for profile in profiles:
        if "markdown" not in profile.formats:
            continue
        for d in store.deliveries_of(profile.name):
            if d.status != "sent":
                continue
            files = [Path(f) for f in d.files if f.endswith(".md")]
            listed = sorted(str(item.get("key", item["pid"])) for item in d.items)
            if len(files) != 1 or not files[0].is_file():
                out.append(f"{profile.name}: delivery {d.key}: markdown file {d.files} missing")
                continue
            found = sorted(MARKDOWN_HEADING.findall(files[0].read_text(encoding="utf-8")))
            if found != listed:
                out.append(f"{profile.name}: {files[0].name} lists {found}, ledger {listed}")
    return out


def feed_keys(path: Path) -> list[str]:
    """The arXiv ids of a feed's items, in order (RSS guid, Atom id: the abstract URL)."""
    root = ET.parse(path).getroot()
    if root.tag == "rss":
        ids = [item.findtext("guid") or "" for item in root.iter("item")]
    else:
        ids = [entry.findtext(f"{ATOM}id") or "" for entry in root.iter(f"{ATOM}entry")]
    return [i.removeprefix("https://arxiv.org/abs/") for i in ids]


def expected_feed(store: Store, profile: str, *, now: dt.datetime, window_days: int,
                  max_items: int) -> list[str]:
    """What the ledger says a feed holds at `now`: papers of the sent deliveries sent within
    the window, newest digest first and each digest in its ranking order, at most
    `max_items`."""
    cutoff = now - dt.timedelta(days=window_days)
    items: list[tuple[dt.datetime, str]] = []
    for d in store.deliveries_of(profile):
        if d.status == "sent" and d.sent_at is not None and d.sent_at >= cutoff:
            items += [(d.sent_at, str(item.get("key", item["pid"]))) for item in d.items]
    items.sort(key=lambda x: x[0], reverse=True)  # stable: the ranking within a digest stays
    return [key for _, key in items[:max_items]]


def check_feeds(store: Store, profiles: Sequence[Profile], out_dir: Path,
                last_run: Mapping[str, dt.datetime], *, window_days: int,
                max_items: int) -> list[str]:
    """Each profile's RSS and Atom feeds hold exactly the ledger's window as of its last run."""
    out = []
    for profile in profiles:
        if "rss" not in profile.formats or profile.name not in last_run:
            continue
        wanted = expected_feed(store, profile.name, now=last_run[profile.name],
                               window_days=window_days, max_items=max_items)
        for name in ("feed.rss", "feed.atom"):
            path = out_dir / profile.name / name
            if not path.is_file():
                out.append(f"{profile.name}: {name} missing")
                continue
            got = feed_keys(path)
            if got != wanted:
                out.append(f"{profile.name}: {name} holds {len(got)} items, the window "
                           f"{len(wanted)}: missing {sorted(set(wanted) - set(got))[:5]}, "
                           f"extra {sorted(set(got) - set(wanted))[:5]}"
                           + (", order differs" if set(got) == set(wanted) else ""))
    return out


def check_all(result: ReplayResult) -> dict[str, list[str]]:
    """Every invariant: name -> violations."""
    from digest.profiles import load_profiles

    found = load_profiles(result.profiles_dir)
    profiles = list(found.profiles)
    with Store.open(result.db_url) as store:
        return {
            "run": list(result.failures) + [f"profile: {e}" for e in found.errors],
            "messages": check_messages(result.received, profiles),
            "ledger": check_ledger(store, result.received, profiles),
            "markdown": check_markdown(store, profiles),
            "feeds": check_feeds(store, profiles, result.out_dir, result.last_run,
                                 window_days=result.window_days, max_items=result.max_items),
        }


# -- the report ---------------------------------------------------------------------------------


def _dist(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()), "median": float(np.median(a)),
            "p10": float(np.percentile(a, 10)), "p90": float(np.percentile(a, 90)),
            "p95": float(np.percentile(a, 95)), "max": float(a.max()), "n": len(a)}


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def summarize(result: ReplayResult, violations: Mapping[str, Sequence[str]],
              check_s: float) -> dict[str, Any]:
    digest_days = result.days[result.warmup_days:]
    store = result.store_path
    store_bytes = {suffix or "db": (Path(f"{store}{suffix}").stat().st_size
                                    if Path(f"{store}{suffix}").exists() else 0)
                   for suffix in ("", "-wal", "-shm")}
    counts = [n for _, _, n in result.per_digest]
    weekly = {s.name for s in result.specs if s.weekly}
    by_profile: dict[str, list[int]] = defaultdict(list)
    for name, _, n in result.per_digest:
        by_profile[name].append(n)
    delivered: dict[str, set[str]] = defaultdict(set)
    name_of = {f"{s.name}@example.org": s.name for s in result.specs}
    for m in result.received:
        if m.rcpt and m.rcpt[0] in name_of:
            delivered[name_of[m.rcpt[0]]].update(m.keys)
    own = [(len(s.own_later & delivered[s.name]), len(s.own_later))
           for s in result.specs if s.kind == "pseudo" and s.own_later]
    kind_of = {s.name: s.kind for s in result.specs}
    by_kind: dict[str, dict[str, float]] = {}
    for kind in ("pseudo", "keyword"):
        ns = [n for p, _, n in result.per_digest if kind_of.get(p) == kind]
        by_kind[kind] = {"digests": len(ns), "empty_share": ns.count(0) / max(1, len(ns)),
                         "papers_per_digest": float(np.mean(ns)) if ns else 0.0}
    months: dict[str, dict[str, Any]] = {}
    for d in digest_days:
        month = months.setdefault(d.day[:7], {"days": 0, "wall_s": 0.0, "cpu_s": 0.0,
                                               "digests": 0, "empty": 0, "papers": 0})
        month["days"] += 1
        month["wall_s"] += d.ingest_s + d.profiles_s + d.run_s
        month["cpu_s"] += d.ingest_cpu_s + d.cpu_s
        month["digests"] += d.sent + d.empty
        month["empty"] += d.empty
        month["papers"] += d.delivered
    by_month = {k: {"days": m["days"], "day_s": m["wall_s"] / m["days"],
                    "day_cpu_s": m["cpu_s"] / m["days"],
                    "empty_share": m["empty"] / max(1, m["digests"]),
                    "papers_per_digest": m["papers"] / max(1, m["digests"])}
                for k, m in months.items()}
    refits = [dataclasses.asdict(c) for c in result.model_calls if c.refit_because]
    loads = [c.seconds for c in result.model_calls if not c.refit_because]
    return {
        "days": len(result.days), "digest_days": len(digest_days),
        "warmup_days": result.warmup_days,
        "first_day": result.days[0].day, "last_day": result.days[-1].day,
        "papers": sum(d.papers for d in result.days),
        "profiles": len(result.specs),
        "pseudo_users": sum(s.kind == "pseudo" for s in result.specs),
        "keyword_profiles": sum(s.kind == "keyword" for s in result.specs),
        "weekly_profiles": len(weekly),
        "wall_s": result.wall_s, "check_s": check_s,
        "day_s": _dist([d.ingest_s + d.profiles_s + d.run_s for d in digest_days]),
        "day_cpu_s": _dist([d.ingest_cpu_s + d.cpu_s for d in digest_days]),
        "ingest_s": _dist([d.ingest_s for d in result.days]),
        "profiles_s": _dist([d.profiles_s for d in digest_days]),
        "run_s": _dist([d.run_s for d in digest_days]),
        "run_without_refit_s": _dist([d.run_s for d in digest_days if not d.refit]),
        "model_load_s": _dist(loads),
        "drain_s": _dist([d.drain_s for d in digest_days]),
        "ingest_total_s": sum(d.ingest_s for d in result.days),
        "run_total_s": sum(d.run_s for d in digest_days),
        "refits": refits, "refit_total_s": sum(r["seconds"] for r in refits),
        "digests": len(counts),
        "papers_per_digest": _dist(counts),
        "papers_per_digest_daily": _dist([n for p, _, n in result.per_digest
                                          if p not in weekly]),
        "papers_per_digest_weekly": _dist([n for p, _, n in result.per_digest if p in weekly]),
        "papers_per_profile_day": _dist([sum(v) / len(v) for p, v in by_profile.items()
                                         if p not in weekly]),
        "by_kind": by_kind, "by_month": by_month,
        "empty_digests": sum(d.empty for d in digest_days),
        "profiles_never_sent": sum(1 for v in by_profile.values() if not any(v)),
        "sent_digests": sum(d.sent for d in digest_days),
        "failed_digests": sum(d.failed for d in digest_days),
        "papers_delivered": sum(d.delivered for d in digest_days),
        "messages_received": len(result.received),
        "received_mb": sum(m.size for m in result.received) / 2**20,
        "smtp_connections": result.connections,
        "own_later_papers_delivered": {"pseudo_users": len(own),
                                       "delivered": sum(a for a, _ in own),
                                       "of": sum(b for _, b in own)},
        "store_bytes": store_bytes, "store_mb": sum(store_bytes.values()) / 2**20,
        "out_mb": folder_size(result.out_dir) / 2**20,
        "model_mb": folder_size(result.out_dir / "model") / 2**20,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "load_average": {"start": result.load_start, "end": result.load_end},
        "cpus": os.cpu_count(),
        "invariants": {name: {"ok": not v, "violations": len(v), "first": list(v[:20])}
                       for name, v in violations.items()},
        "per_day": [dataclasses.asdict(d) for d in result.days],
    }


def print_report(s: Mapping[str, Any], out: IO[str] = sys.stdout) -> None:
    def dist(d: Mapping[str, float], fmt: str = "{:.2f}") -> str:
        if not d:
            return "-"
        return "  ".join(f"{k} {fmt.format(d[k])}" for k in ("mean", "median", "p10", "p90",
                                                            "p95", "max"))

    lines = [
        f"replay {s['first_day']} .. {s['last_day']}: {s['days']} days ({s['warmup_days']} "
        f"warm-up), {s['papers']} papers, {s['profiles']} profiles ({s['pseudo_users']} "
        f"pseudo-users, {s['keyword_profiles']} keyword; {s['weekly_profiles']} weekly)",
        f"{'total wall time':28} {s['wall_s'] / 60:.1f} min (+ {s['check_s']:.0f} s checks), "
        f"load average {s['load_average']['start']:.1f} .. {s['load_average']['end']:.1f} "
        f"on {s['cpus']} CPUs",
        f"{'per digest day, s':28} {dist(s['day_s'])}",
        f"{'  CPU of it, s':28} {dist(s['day_cpu_s'])}",
        f"{'  ingest, s (every day)':28} {dist(s['ingest_s'])}",
        f"{'  profiles, s':28} {dist(s['profiles_s'])}",
        f"{'  run, s':28} {dist(s['run_s'])}",
        f"{'  run without refit, s':28} {dist(s['run_without_refit_s'])}",
        f"{'  model load, s':28} {dist(s['model_load_s'])}",
        f"{'(waiting for the SMTP child)':28} {dist(s['drain_s'])}",
        f"{'model refits':28} {len(s['refits'])}, {s['refit_total_s']:.0f} s in all: "
        + ", ".join(f"{r['day']} {r['papers']} papers {r['seconds']:.0f}s"
                    for r in s["refits"]),
        f"{'papers per digest':28} {dist(s['papers_per_digest'], '{:.1f}')}",
        f"{'  daily profiles':28} {dist(s['papers_per_digest_daily'], '{:.1f}')}",
        f"{'  weekly profiles':28} {dist(s['papers_per_digest_weekly'], '{:.1f}')}",
        f"{'per profile, papers/day':28} {dist(s['papers_per_profile_day'], '{:.1f}')}",
        f"{'digests':28} {s['digests']}: {s['sent_digests']} sent, {s['empty_digests']} "
        f"empty, {s['failed_digests']} failed; {s['profiles_never_sent']} profiles never sent",
        f"{'  by kind':28} " + "; ".join(
            f"{k}: {v['digests']} digests, {v['empty_share']:.0%} empty, "
            f"{v['papers_per_digest']:.1f} papers/digest" for k, v in s["by_kind"].items()),
        f"{'papers delivered':28} {s['papers_delivered']}",
        f"{'messages received':28} {s['messages_received']} ({s['received_mb']:.0f} MB, "
        f"{s['smtp_connections']} SMTP connections)",
        f"{'own later papers':28} {s['own_later_papers_delivered']['delivered']} of "
        f"{s['own_later_papers_delivered']['of']} delivered to their "
        f"{s['own_later_papers_delivered']['pseudo_users']} pseudo-users",
        f"{'store at the end':28} {s['store_mb']:.0f} MB ("
        + ", ".join(f"{k} {v / 2**20:.0f} MB" for k, v in s["store_bytes"].items()) + ")",
        f"{'out folder':28} {s['out_mb']:.0f} MB (model {s['model_mb']:.0f} MB)",
        f"{'peak RSS':28} {s['peak_rss_mb']:.0f} MB",
        "by month: days, s/day (CPU s/day), empty digests, papers/digest",
        *(f"  {k}  {m['days']:3d} {m['day_s']:6.1f} ({m['day_cpu_s']:5.1f}) "
          f"{m['empty_share']:5.0%} {m['papers_per_digest']:5.1f}"
          for k, m in s["by_month"].items()),
        "invariants:",
    ]
    for name, inv in s["invariants"].items():
        lines.append(f"  {name:26} {'ok' if inv['ok'] else 'FAILED'}"
                     + ("" if inv["ok"] else f" ({inv['violations']} violations)"))
        lines += [f"      {v}" for v in inv["first"]]
    print("\n".join(lines), file=out)


@contextlib.contextmanager
def workdir(keep: str | None) -> Iterator[Path]:
    if keep:
        path = Path(keep)
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="digest-replay-") as tmp:
        yield Path(tmp)


def code_version() -> dict[str, Any]:
    """The commit replayed, and the files of the package changed on top of it."""
    def git(*argv: str) -> str:
        try:
            return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True,
                                  timeout=30, check=True).stdout.strip("\n")
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": git("rev-parse", "--short", "HEAD"),
            "modified": git("status", "--porcelain", "--", "digest").splitlines()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=None,
                        help="replay only the first N days with papers (default: all)")
    parser.add_argument("--profiles", type=int, default=200)
    parser.add_argument("--warmup-days", type=int, default=20,
                        help="days only ingested before the first digests (default 20)")
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "replay.json"))
    parser.add_argument("--keep", metavar="DIR",
                        help="replay in DIR (emptied first) and leave it there")
    args = parser.parse_args()
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    # The modules are imported now; the tree may change while the replay runs.
    code_at_start = code_version()
    with workdir(args.keep) as root:
        def log(line: str) -> None:
            print(line, file=sys.stderr, flush=True)

        def progress(rows: list[DayRow], wall_s: float) -> None:
            state = {"wall_s": wall_s, "load_average": os.getloadavg(),
                     "per_day": [dataclasses.asdict(r) for r in rows]}
            (root / "progress.json").write_text(json.dumps(state) + "\n", encoding="utf-8")

        result = replay(Path(args.data), root, days=args.days, profiles=args.profiles,
                        warmup_days=args.warmup_days, log=log, progress=progress)
        start = time.perf_counter()
        violations = check_all(result)
        summary = summarize(result, violations, time.perf_counter() - start)
    summary["command"] = " ".join(["python", "bench/replay.py", *sys.argv[1:]])
    summary["started"] = started
    summary["code"] = {"at_start": code_at_start, "at_end": code_version()}
    print_report(summary)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return 1 if any(violations.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
