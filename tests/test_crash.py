"""The crash property, done for real: `digest run` killed with SIGKILL in the middle of a batch.

A batch of 16 profiles runs in a child process (tests/crash_worker.py) against a real SMTP server
on loopback, slowed down so that the kill lands mid-batch: before the first message, between two,
during a DATA, or after the server accepted a message and before the ledger recorded it. Then a
run in this process finishes the day, and what the server received is compared with the ledger:

- every message the ledger holds as sent arrived, byte for byte, and every message that arrived
  is in the ledger as sent (nothing left pending, no paper recorded as sent that did not leave);
- no paper reached a recipient in two different messages; the one allowed duplicate is the same
  message (same Message-ID, same bytes) received twice, at most once per crash;
- every profile has a completed digest for the day.

Five kills by default (seeded, so the same points are aimed at each time); ``DIGEST_LONG_TESTS=1``
makes it 50, ``DIGEST_CRASH_ITERATIONS=N`` N.
"""

from __future__ import annotations

import datetime as dt
import email
import json
import multiprocessing.context
import os
import random
import re
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from pathlib import Path

import crash_worker
import pytest
from smtp_server import RecordingServer

from digest.app import DigestApp
from digest.cli import sample_path
from digest.config import Config
from digest.mailer import SmtpSettings, SmtpTransport
from digest.profiles import load_profiles
from digest.sources.resolve import FileSource
from digest.store import Store

DAY = dt.date(2026, 7, 1)  # the sample's last day
SEED = 20260701
ITERATIONS = int(os.environ.get("DIGEST_CRASH_ITERATIONS", "0")) or (
    50 if os.environ.get("DIGEST_LONG_TESTS") else 5)
#: Seconds the server waits before each MAIL, RCPT and DATA reply while the worker runs.
DELAY = 0.02
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
#: 16 profiles, email and markdown (feeds are written after the batch, so they add time and no
#: crash point that matters here).
PROFILES = [f"p{i:02d}" for i in range(16)]
ABS_URL = re.compile(r"https://arxiv\.org/abs/([^\s)>\"'<]+)")


@dataclass
class Received:
    """A message the server accepted, with the arXiv ids its text part links to."""

    rcpt: str
    message_id: str
    content: bytes
    keys: frozenset[str]


def read(server: RecordingServer) -> list[Received]:
    out = []
    with server.lock:
        messages = list(server.messages)
    for message in messages:
        parsed = email.message_from_bytes(message.content, policy=policy.default)
        body = parsed.get_body(("plain",))
        assert parsed.defects == [] and body is not None
        (rcpt,) = message.rcpt_tos
        out.append(Received(rcpt, str(parsed["Message-ID"]), message.content,
                            frozenset(ABS_URL.findall(str(body.get_content())))))
    return out


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample papers, a fitted model (at the real clock, as the worker's `digest run` has)
    and the profiles, each following two of the topics."""
    root = tmp_path_factory.mktemp("crash")
    app = DigestApp(Config(out_dir=str(root / "out")), f"sqlite:///{root}/digest.sqlite",
                    str(root / "profiles"))
    (result,) = app.ingest([FileSource(sample_path(), "jsonl")], today=DAY)
    assert result.new == 483
    with app.open_store() as store:
        app.model(store)
    (root / "profiles").mkdir()
    for i, name in enumerate(PROFILES):
        interests = [TOPICS[i], TOPICS[(i * 7 + 3) % len(TOPICS)]]
        (root / "profiles" / f"{name}.yaml").write_text(
            f"version: 1\nemail: {name}@example.org\nformats: [email, markdown]\n"
            f"max_papers: 4\nmin_relevance: 1.0\n"
            f"interests: {json.dumps(list(dict.fromkeys(interests)))}\n", encoding="utf-8")
    return root


def config_file(root: Path, port: int) -> Path:
    """The worker's configuration. No retries: a retry would wait the configured 2 s backoff, and
    a temporary failure only leaves a pending digest, which the next run must settle anyway."""
    path = root / "digest.toml"
    path.write_text(
        f'out_dir = {json.dumps(str(root / "out"))}\n'
        '[email]\nfrom = "Paper Digest <digest@example.org>"\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\nretries = 0\n',
        encoding="utf-8",
    )
    return path


def crash(root: Path, server: RecordingServer, rng: random.Random,
          context: multiprocessing.context.ForkServerContext) -> str:
    """Start `digest run` and SIGKILL it at a random point; say where it was killed."""
    argv = ["--db", f"sqlite:///{root}/digest.sqlite", "--config",
            str(config_file(root, server.port)), "--profiles", str(root / "profiles"),
            "run", "--date", DAY.isoformat(), "--json"]
    log = root / "worker.log"
    worker = crash_worker.start(context, argv, log)
    try:
        mode = rng.choice(["at a moment", "as a message is accepted", "in an exchange"])
        if mode == "at a moment":  # while loading, ranking, rendering or sending
            worker.join(rng.uniform(0.05, 2.0))
        else:
            k = rng.randrange(1, len(PROFILES) - 1)
            while worker.is_alive() and len(server.messages) < k:
                time.sleep(0.001)
            if mode == "in an exchange":  # MAIL, RCPT and DATA each take DELAY
                time.sleep(rng.uniform(0, 3 * DELAY))
            # else at once: the server has the message, the ledger likely not yet
        where = (f"killed {mode}, after {len(server.messages)} messages" if worker.is_alive()
                 else f"finished before the kill (exit {worker.exitcode})")
    finally:
        crash_worker.finish(worker, log, kill=True)
    return where


def finish(root: Path, server: RecordingServer) -> list[str]:
    """Run the day to its end in this process, as the next scheduled run would."""
    settings = SmtpSettings(server.host, server.port, security="none", timeout=5.0, retries=3,
                            backoff=0.001)
    app = DigestApp(Config(out_dir=str(root / "out")), f"sqlite:///{root}/digest.sqlite",
                    str(root / "profiles"), transport=SmtpTransport(settings))
    profiles = load_profiles(root / "profiles").profiles
    return [r.status for r in app.run(profiles, day=DAY)]


def check(root: Path, received: list[Received]) -> int:
    """Assert that the ledger and the server agree; return how many duplicates arrived."""
    with Store.open(f"sqlite:///{root}/digest.sqlite") as store:
        deliveries = {name: store.get_delivery(name, DAY.isoformat()) for name in PROFILES}
        sent_pids = {name: store.sent_pids(name) for name in PROFILES}
    done = {name: d for name, d in deliveries.items() if d is not None}
    assert set(done) == set(PROFILES), "every profile has a digest for the day"
    for name, d in done.items():
        assert d.status == ("sent" if d.message else "empty"), (name, d.status, d.last_error)
    ledger = {d.message_id: d for d in done.values() if d.message is not None}

    copies = Counter(m.message_id for m in received)
    assert set(copies) == set(ledger), "what arrived is what the ledger holds as sent"
    for message in received:
        delivery = ledger[message.message_id]
        assert message.content == delivery.message  # a resend is the recorded bytes
        assert message.rcpt == f"{delivery.profile}@example.org"
        assert message.keys == {str(item["key"]) for item in delivery.items}
    for name, delivery in done.items():
        assert sent_pids[name] == set(delivery.pids), f"{name}: the ledger lost or made up papers"

    messages_with: Counter[tuple[str, str]] = Counter()
    for message_id in copies:
        message = next(m for m in received if m.message_id == message_id)
        messages_with.update((message.rcpt, key) for key in message.keys)
    twice = [pair for pair, n in messages_with.items() if n > 1]
    assert twice == [], "a paper reached a recipient in two different messages"
    return sum(n - 1 for n in copies.values())


@pytest.fixture(scope="module")
def forkserver() -> Iterator[multiprocessing.context.ForkServerContext]:
    """Workers forked from a server that imported digest once (started first, so that its
    imports overlap the ingest of `template`), stopped after the module."""
    with crash_worker.fork_server() as context:
        yield context


@pytest.mark.skipif(not crash_worker.HAS_FORK_SERVER,
                    reason="needs the forkserver start method (POSIX)")
def test_a_run_killed_at_random_points_loses_and_doubles_nothing(
    forkserver: multiprocessing.context.ForkServerContext, template: Path, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    outcomes = []
    with RecordingServer(delay=DELAY) as server:
        for i in range(ITERATIONS):
            root = tmp_path / f"run{i}"
            shutil.copytree(template, root)
            with server.lock:
                server.messages.clear()
            server.delay = DELAY
            where = crash(root, server, rng, forkserver)
            before = len(server.messages)
            server.delay = 0
            statuses = finish(root, server)
            assert set(statuses) <= {"sent", "empty", "skipped"}, statuses

            duplicates = check(root, read(server))

            assert duplicates <= 1, f"one crash, {duplicates} duplicates ({where})"
            outcomes.append((where, before, len(server.messages), duplicates))
    # The kills must have landed inside the batch for this test to mean anything.
    assert any(0 < before < after for _, before, after, _ in outcomes), outcomes
