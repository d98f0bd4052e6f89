"""The command line as people expect it: -v/-q everywhere, a cheap --version, clean terminal
output from hostile paper text, python -m digest, and `sample` wherever a source is named."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import logging
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from digest.cli import main
from digest.cli.common import safe
from digest.config import load_config
from digest.sources.resolve import FileSource, resolve, sample_path

HOSTILE = "Evil \x1b]0;pwned\x07\x1b[2Jtitle\x9b31m with a \u202eflip"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# Each test in an empty folder without DIGEST_* settings: `scratch` in conftest.py.
pytestmark = pytest.mark.usefixtures("scratch")


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found += _commands(command, (*prefix, name))
    return found


def test_every_command_takes_verbose_and_quiet() -> None:
    commands = _commands(main)
    assert ("profiles", "check") in commands and ("init",) in commands
    for path in commands:
        text = invoke(*path, "--help").stdout
        assert "-v, --verbose" in text and "-q, --quiet" in text, path


def test_verbose_and_quiet_set_the_log_level(scratch: Path) -> None:
    # About logging, not the store: SQLite only.
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        invoke("--db", f"sqlite:///{scratch}/x.sqlite", "ingest", "sample", "-v", "-v")
        assert root.level == logging.DEBUG
        invoke("--db", f"sqlite:///{scratch}/x.sqlite", "-q", "ingest", "sample")
        assert root.level == logging.ERROR
    finally:
        root.setLevel(level)
        root.handlers[:] = handlers


def test_version_does_not_import_scikit_learn() -> None:
    code = ("import sys\nfrom digest.cli import main\ntry:\n    main(['--version'])\n"
            "except SystemExit:\n    pass\nprint(sorted({m.split('.')[0] for m in sys.modules}"
            " & {'sklearn', 'scipy', 'numpy', 'numba'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.splitlines() == ["digest, version 0.1.0", "[]"]


def test_python_m_digest_runs_the_command() -> None:
    done = subprocess.run([sys.executable, "-m", "digest", "--help"], capture_output=True,
                          text=True, timeout=120, check=True)
    assert done.stdout.startswith("Usage: digest ")


def test_safe_strips_control_characters_but_keeps_text() -> None:
    assert safe(HOSTILE) == "Evil ]0;pwned[2Jtitle31m with a flip"
    assert safe("tab\tand\nnewline ünïcode") == "tab\tand\nnewline ünïcode"


def test_rank_and_explain_print_no_control_characters(scratch: Path, store_url: str) -> None:
    papers = scratch / "papers.jsonl.gz"
    with gzip.open(papers, "wt", encoding="utf-8") as f:
        for n in range(3):
            f.write(json.dumps({
                "id": f"2606.0000{n}", "title": f"{HOSTILE} {n}",
                "abstract": "object hallucination in vision-language models " * 5,
                "authors": ["A. Person"], "categories": ["cs.CV"], "date": "2026-06-30",
            }) + "\n")
    (scratch / "profiles").mkdir()
    (scratch / "profiles" / "ada.yaml").write_text(
        "version: 1\nmin_relevance: 0\n"
        "interests: [object hallucination in vision-language models]\n"
    )
    db = ("--db", store_url)
    assert invoke(*db, "ingest", str(papers)).exit_code == 0
    ranked = invoke(*db, "rank", "ada", "--until", "2026-07-01")
    explained = invoke(*db, "explain", "ada", "2606.00000", "--until", "2026-07-01")
    for result in (ranked, explained):
        assert result.exit_code == 0, result.stderr
        assert "pwned" in result.stdout  # the text is shown ...
        assert not any(c in result.stdout for c in "\x1b\x07\x9b\u202e")  # ... defanged


def test_schedule_sources_may_name_the_sample(scratch: Path) -> None:
    (scratch / "digest.toml").write_text('[schedule]\nsources = ["sample", "hf:"]\n')
    assert load_config(scratch / "digest.toml").schedule.sources == ["sample", "hf:"]
    source = resolve("sample", today=dt.date(2026, 7, 1))
    assert isinstance(source, FileSource)
    assert source.name == sample_path()


def test_a_bad_config_value_reads_without_pydantics_prefix(scratch: Path) -> None:
    (scratch / "digest.toml").write_text('[schedule]\ningest_cron = "61 * * * *"\n')
    result = invoke("ingest", "sample")
    assert result.exit_code == 1
    assert result.stderr.startswith("digest: digest.toml:2: schedule.ingest_cron: ")
    assert "Value error" not in result.stderr
