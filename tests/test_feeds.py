"""Feeds as `digest run` writes them with feedgen: rewritten only when what the profile was
sent changed, entries in their digest's ranking order, like/dislike links in each entry when
the site has links, the alternate link the site's home page; valid for feedparser."""

from __future__ import annotations

import json
from pathlib import Path

import feedparser
import pytest
from click.testing import CliRunner, Result

from digest.cli import main

PROFILE = """\
version: 1
id: ada
max_papers: 8
min_relevance: 0
interests:
  - name: hallucination
    text: object hallucination in vision-language models and multimodal LLM benchmarks
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_url: str) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("DIGEST_CONFIG", "DIGEST_PROFILES", "DIGEST_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DIGEST_DB", store_url)  # the store as a deployment names it
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "ada.yaml").write_text(PROFILE)
    (tmp_path / "secret").write_text("s3cret-for-tests\n")
    (tmp_path / "digest.toml").write_text(
        '[server]\npublic_url = "https://digest.example.org"\nsecret_file = "secret"\n'
    )
    assert invoke("ingest", "sample").exit_code == 0
    return tmp_path


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_feeds_follow_the_ranking_carry_feedback_links_and_validate(site: Path) -> None:
    result = invoke("run", "--date", "2026-07-01", "--json")
    assert result.exit_code == 0, result.stderr
    ranked = json.loads(result.stdout)["papers"]
    assert len(ranked) == 8 and ranked != sorted(ranked)  # so that the order is tested
    for name in ("feed.rss", "feed.atom"):
        parsed = feedparser.parse((site / "out" / "ada" / name).read_bytes())
        assert not parsed.bozo, parsed.get("bozo_exception")
        assert [e.link.rsplit("/", 1)[-1] for e in parsed.entries] == ranked
        assert parsed.feed.link == "https://digest.example.org/"
        for entry, key in zip(parsed.entries, ranked, strict=True):
            body = entry.get("content", [{}])[0].get("value") or entry.description
            assert f"paper={key}&amp;v=like" in body or f"paper={key}&v=like" in body
            assert "v=dislike" in body and "/feedback/" in body


def test_a_run_that_sends_nothing_new_rewrites_no_feed(site: Path) -> None:
    assert invoke("run", "--date", "2026-07-01").exit_code == 0
    feeds = [site / "out" / "ada" / name for name in ("feed.rss", "feed.atom")]
    before = [(p.stat().st_ino, p.stat().st_mtime_ns) for p in feeds]

    quiet = invoke("run", "--date", "2026-07-01", "--json")  # that day's digest is out

    assert quiet.exit_code == 0, quiet.stderr
    assert json.loads(quiet.stdout)["status"] == "skipped"
    assert [(p.stat().st_ino, p.stat().st_mtime_ns) for p in feeds] == before

    (site / "out" / "ada" / "feed.atom").unlink()  # a feed gone is written again
    assert invoke("run", "--date", "2026-07-01").exit_code == 0
    assert (site / "out" / "ada" / "feed.atom").is_file()
