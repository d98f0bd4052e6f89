"""The year-long replay (bench/replay.py), short: the first days of the shared corpus through the
real pipeline, and its invariant checks, which must pass on a real run and catch a tampered one.

Eight days of the corpus, one paper in four of each (four days only ingested, the warm-up the
pseudo-users' seeds come from, then four days of digests, 2025-03-24 to 03-27), for twelve
profiles: email to a loopback SMTP server, markdown and feeds written. The same code as the
full replay, at a size CI can afford.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import replay

from digest.profiles import Profile, load_profiles
from digest.store import Store

DATA = replay.DEFAULT_DATA


@dataclasses.dataclass
class Run:
    result: replay.ReplayResult
    profiles: list[Profile]
    violations: dict[str, list[str]]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    if not DATA.is_file():
        pytest.skip(f"{DATA} is not there (../shared beside the checkout)")
    root = tmp_path_factory.mktemp("replay")
    result = replay.replay(DATA, root, days=8, profiles=12, warmup_days=4,
                           stride=4)
    profiles = list(load_profiles(result.profiles_dir).profiles)
    return Run(result, profiles, replay.check_all(result))


def test_a_short_replay_keeps_every_invariant(run: Run) -> None:
    result = run.result
    assert run.violations == {"run": [], "messages": [], "ledger": [], "markdown": [],
                              "feeds": []}
    assert len(result.days) == 8 and len(run.profiles) == 12
    digests = [n for _, _, n in result.per_digest]
    # 11 daily profiles x 4 days, and the weekly one once (the 4 days are in one week)
    assert len(digests) == 11 * 4 + 1
    assert len(result.received) == sum(1 for n in digests if n) > 0
    assert sum(digests) == sum(len(m.keys) for m in result.received)
    assert result.model_calls and result.model_calls[0].refit_because  # the first fit
    for profile in run.profiles:
        assert (result.out_dir / profile.name / "feed.rss").is_file()


def test_the_checker_catches_a_lost_message(run: Run) -> None:
    lost = next(m for m in run.result.received if m.keys)
    kept = [m for m in run.result.received if m is not lost]
    with Store.open(run.result.db_url) as store:
        violations = replay.check_ledger(store, kept, run.profiles)
    assert any(f"({lost.message_id}) received 0 times" in v for v in violations)
    assert any(f"paper {lost.keys[0]} (ledger: sent) is in 0 received messages" in v
               for v in violations)


def test_the_checker_catches_a_paper_delivered_twice(run: Run) -> None:
    first = next(m for m in run.result.received if m.keys)
    again = dataclasses.replace(first, message_id="<again@example.org>",
                                keys=(first.keys[0],))
    received = [*run.result.received, again]
    assert any(f"paper {first.keys[0]} delivered 2 times" in v
               for v in replay.check_messages(received, run.profiles))
    with Store.open(run.result.db_url) as store:
        violations = replay.check_ledger(store, received, run.profiles)
    assert any("<again@example.org>" in v and "not a sent delivery" in v for v in violations)


def test_the_checker_catches_a_ledger_entry_no_message_backs(run: Run, tmp_path: Path) -> None:
    """A delivery recorded as sent (through the store's own API) that never reached the
    server: the ledger claims a paper the profile never received."""
    # The replay harness (bench/replay.py) keeps its store in SQLite: a copy of the file.
    shutil.copy(run.result.store_path, tmp_path / "digest.sqlite")
    name = run.profiles[0].name
    when = dt.datetime(2025, 3, 25, 8, 0, tzinfo=dt.UTC)
    with Store.open(f"sqlite:///{tmp_path}/digest.sqlite") as store:
        sent = store.sent_pids(name)
        paper = next(p for p in store.iter_papers() if p.pid not in sent)
        delivery = store.record_delivery(
            profile=name, key="forged", covered_to=when.date(), status="pending",
            message_id="<forged@example.org>", message=b"Subject: forged\r\n\r\nforged\r\n",
            markdown=None, items=[{"pid": paper.pid, "key": paper.key}], now=when)
        store.complete_delivery(delivery.id, files=[], now=when)
        violations = replay.check_ledger(store, run.result.received, run.profiles)
    assert f"{name}: delivery forged (<forged@example.org>) received 0 times" in violations
    assert (f"{name}: paper {paper.key} (ledger: sent) is in 0 received messages"
            in violations)


def test_the_checker_catches_a_feed_out_of_its_window(run: Run, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(run.result.out_dir, out)
    name = next(p.name for p in run.profiles
                if len(replay.feed_keys(out / p.name / "feed.atom")) >= 2)
    atom = out / name / "feed.atom"
    dropped = replay.feed_keys(atom)[0]
    text = atom.read_text(encoding="utf-8")
    start = text.index("  <entry>")
    atom.write_text(text[:start] + text[text.index("</entry>\n", start) + 9:],
                    encoding="utf-8")
    with Store.open(run.result.db_url) as store:
        violations = replay.check_feeds(store, run.profiles, out, run.result.last_run,
                                        window_days=run.result.window_days,
                                        max_items=run.result.max_items)
    (violation,) = violations
    assert violation.startswith(f"{name}: feed.atom holds")
    assert f"missing ['{dropped}']" in violation
