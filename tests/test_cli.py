"""The command line, run in-process with click's CliRunner in a scratch working directory.

Results go to stdout, problems to stderr; exit status 0 when all went well, 1 when something
failed or was rejected, 2 when the command line itself was wrong.
"""

from __future__ import annotations

import datetime as dt
import json
from importlib.metadata import version
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from stores import store_exists

from digest.cli import main, sample_path
from digest.store import Store
from digest.text import normalize_title

SAMPLE_PAPERS = 483
RSPNET = "RSPNet: Relative Speed Perception for Unsupervised Video Representation Learning"


# Each test in an empty folder without DIGEST_* settings: `scratch` in conftest.py.
pytestmark = pytest.mark.usefixtures("scratch")


@pytest.fixture
def db(store_url: str) -> str:
    """A fresh store on each backend in turn (a PostgreSQL database is made empty, up front)."""
    return store_url


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    # click 8.2 keeps stderr apart (`result.stderr`) by default and dropped `mix_stderr`.
    if tuple(int(part) for part in version("click").split(".")[:2]) >= (8, 2):
        runner = CliRunner()
    else:  # pragma: no cover - click 8.1
        runner = CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    return runner.invoke(main, list(args), env=env, catch_exceptions=False)


def summary_rows(stdout: str) -> dict[str, list[str]]:
    """The summary table's rows by source: new, updated, unchanged, skipped, rejected, status."""
    lines = stdout.splitlines()
    assert lines[0].split() == ["source", "new", "updated", "unchanged", "skipped", "rejected",
                                "status"]
    rows = {}
    for line in lines[1:-1]:
        source, *cells = line.rsplit(maxsplit=6)  # no source here has spaces in its name
        rows[source] = cells
    return rows


# --- ingest ---------------------------------------------------------------------------------


def test_ingest_sample_prints_the_summary(db: str) -> None:
    result = invoke("--db", db, "ingest", "sample")

    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert summary_rows(result.stdout) == {
        sample_path(): [str(SAMPLE_PAPERS), "0", "0", "0", "0", "ok"]}
    assert result.stdout.splitlines()[-1] == f"{SAMPLE_PAPERS} papers in the store"


def test_ingesting_the_sample_again_finds_it_unchanged(db: str) -> None:
    invoke("--db", db, "ingest", "sample")

    result = invoke("--db", db, "ingest", "sample")

    assert result.exit_code == 0, result.stderr
    assert summary_rows(result.stdout) == {
        sample_path(): ["0", "0", str(SAMPLE_PAPERS), "0", "0", "ok"]}
    assert result.stdout.splitlines()[-1] == f"{SAMPLE_PAPERS} papers in the store"


def test_ingest_json_gives_counts_per_source(db: str, data_dir: Path) -> None:
    papers = str(data_dir / "files_papers.jsonl")

    result = invoke("--db", db, "ingest", "--json", "sample", papers)

    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert [(s["source"], s["new"], s["unchanged"], s["error"]) for s in summary["sources"]] == [
        (sample_path(), SAMPLE_PAPERS, 0, None),
        (papers, 6, 0, None),
    ]
    assert summary["papers_in_store"] == SAMPLE_PAPERS + 6


def test_a_rejected_line_is_reported_on_stderr_and_exits_1(db: str, data_dir: Path) -> None:
    mixed = str(data_dir / "files_mixed.jsonl")

    result = invoke("--db", db, "ingest", mixed)

    assert result.exit_code == 1
    assert f"rejected: {mixed}:5: title is required: expected a non-empty string, missing" in (
        result.stderr.splitlines())
    assert summary_rows(result.stdout)[mixed] == ["3", "0", "0", "0", "6", "ok"]


def test_a_bad_named_source_is_a_usage_error(db: str, scratch: Path) -> None:
    result = invoke("--db", db, "ingest", "arxiv-api:nope")

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("digest: 'arxiv-api:nope' is not a valid arXiv source")
    assert "expected arxiv:CAT[+CAT...]" in result.stderr
    assert "arxiv-api:id:ID[,ID...]" in result.stderr
    assert not store_exists(db)  # nothing was opened


def test_a_missing_file_fails_that_source(db: str) -> None:
    result = invoke("--db", db, "ingest", "missing.jsonl", "sample")

    assert result.exit_code == 1
    assert "failed: missing.jsonl: cannot read: No such file or directory" in result.stderr
    rows = summary_rows(result.stdout)
    assert rows["missing.jsonl"][-1] == "failed"
    assert rows[sample_path()][0] == str(SAMPLE_PAPERS)  # the other source still landed


def test_date_sets_today_for_year_less_days(db: str, shared_dir: Path) -> None:
    page = shared_dir / "data" / "hf_pages" / "001_f939a2e56bd435dd.txt"  # "Mar 11"

    result = invoke("--db", db, "ingest", "--date", "2026-03-01", str(page))

    assert result.exit_code == 0, result.stderr
    with Store.open(db) as store:
        (paper,) = store.find_by_norm_title(normalize_title(RSPNET))
    assert paper.announced == dt.date(2025, 3, 11)


def test_the_database_can_come_from_the_environment(db: str, scratch: Path) -> None:
    result = invoke("ingest", "sample", env={"DIGEST_DB": db})

    assert result.exit_code == 0, result.stderr
    with Store.open(db) as store:
        assert store.info().papers == SAMPLE_PAPERS
    assert not (scratch / "out").exists()  # the default database was not used


def test_a_database_that_cannot_be_made_exits_1_naming_it(scratch: Path) -> None:
    # SQLite only: the folder of a file database (PostgreSQL's are the server's business).
    (scratch / "a-file").write_text("")
    url = f"sqlite:///{scratch}/a-file/x.sqlite"

    result = invoke("--db", url, "ingest", "sample")

    assert result.exit_code == 1
    assert result.stderr.startswith(f"digest: {url}: cannot create its folder")


# --- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "problem"),
    [
        ('database = "sqlite:///x.sqlite"\ncolour = "blue"\n', "2: colour: unknown key"),
        ('[http]\ncontact = "me@example.org"\nretry = 3\n',
         "3: http.retry: unknown key (did you mean 'retries'?)"),
        ('[schedule]\ningest_cron = "30 20 * * 0-4"\ningest_timezon = "UTC"\n',
         "3: schedule.ingest_timezon: unknown key (did you mean 'ingest_timezone'?)"),
        ('[email]\nfrm = "a@b.org"\n', "2: email.frm: unknown key (did you mean 'from'?)"),
    ],
)
def test_an_unknown_key_in_the_config_names_file_line_and_key(
    scratch: Path, toml: str, problem: str
) -> None:
    config = scratch / "settings.toml"
    config.write_text(toml)

    result = invoke("--config", str(config), "ingest", "sample")

    assert result.exit_code == 1
    assert result.stderr == f"digest: {config}:{problem}\n"


def test_digest_toml_in_the_working_folder_is_read(scratch: Path) -> None:
    (scratch / "digest.toml").write_text("colour = 1\n")

    result = invoke("ingest", "sample")

    assert result.exit_code == 1
    assert result.stderr == "digest: digest.toml:1: colour: unknown key\n"


# --- help -----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [None, *sorted(main.commands)])
def test_every_command_has_help(command: str | None) -> None:
    args = ["--help"] if command is None else [command, "--help"]
    cmd: click.Command = main if command is None else main.commands[command]

    result = invoke(*args)

    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: ")
    assert cmd.help
    assert cmd.help.splitlines()[0] in result.stdout


# --- the model -------------------------------------------------------------------------------


def test_the_first_rank_says_it_fits_the_model(db: str, monkeypatch: pytest.MonkeyPatch,
                                               ) -> None:
    from digest import modelstore

    profiles = Path(__file__).resolve().parents[1] / "profiles"
    monkeypatch.setattr(modelstore, "PROGRESS_INTERVAL", 0.0)  # every step, however fast
    assert invoke("--db", db, "ingest", "sample").exit_code == 0
    rank = ("--db", db, "--profiles", str(profiles), "rank", "--until", "2026-07-01", "--json")

    first = invoke(*rank)

    assert first.exit_code == 0, first.stderr
    lines = first.stderr.splitlines()
    assert lines[0] == "digest: fitting the text model on 483 papers (no saved model yet)"
    assert "digest: fitting the text model: reading and tokenizing, 483 of 483 papers" in lines
    assert any(line.startswith("digest: fitting the text model: vectorizing") for line in lines)
    assert lines[-1].startswith("digest: fitted the text model on 483 papers")
    assert first.stdout  # the rankings themselves, on stdout only
    second = invoke(*rank)
    assert "fitting" not in second.stderr and second.stdout == first.stdout
