"""Profiles people can trust: an identity that survives a rename, categories arXiv has,
feedback that says what it records and is never lost, and limits on what a file may hold."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from stores import Backend

from digest.cli import main
from digest.profiles import add_feedback, load_profile, load_profiles
from digest.profiles.taxonomy import check_category

PROFILE = """\
version: 1
{id}
interests:
  - name: hallucination
    text: object hallucination in vision-language models, multimodal LLM benchmarks
    seed_papers: ["2503.13107"]
categories: [cs.CV, cs.CL]
"""


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory: pytest.TempPathFactory, module_backend: Backend) -> str:
    """A store holding the bundled sample, ingested once per module and backend."""
    folder = tmp_path_factory.mktemp("store")
    url = module_backend.new_url(folder)
    assert invoke("--db", url, "ingest", "sample").exit_code == 0
    return url


@pytest.fixture
def site(tmp_path: Path, sample_store: str, store_backend: Backend,
         monkeypatch: pytest.MonkeyPatch) -> tuple[str, ...]:
    """The command line over a copy of the sample store, with an empty profiles folder."""
    monkeypatch.chdir(tmp_path)
    for name in ("DIGEST_DB", "DIGEST_CONFIG", "DIGEST_PROFILES"):
        monkeypatch.delenv(name, raising=False)
    db = store_backend.clone(sample_store, tmp_path)
    (tmp_path / "profiles").mkdir()
    return ("--db", db, "--profiles", str(tmp_path / "profiles"))


def ranked(base: tuple[str, ...], name: str) -> list[str]:
    result = invoke(*base, "rank", name, "--since", "2026-06-20", "--until", "2026-07-01",
                    "--json")
    assert result.exit_code == 0, result.stderr
    return [p["id"] for p in json.loads(result.stdout)["papers"]]


# -- identity ------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_id", [True, False])
def test_a_renamed_profile_keeps_what_it_was_sent_when_it_has_an_id(
    site: tuple[str, ...], tmp_path: Path, with_id: bool
) -> None:
    profiles = tmp_path / "profiles"
    (profiles / "ada.yaml").write_text(PROFILE.format(id="id: ada" if with_id else ""))
    sent = invoke(*site, "run", "--date", "2026-07-01", "--json")
    assert sent.exit_code == 0, sent.stderr
    papers = json.loads(sent.stdout)["papers"]
    assert papers

    (profiles / "ada.yaml").rename(profiles / "ada-lovelace.yaml")

    again = ranked(site, "ada-lovelace")  # the file name finds the profile
    if with_id:
        assert not set(again) & set(papers)  # nothing sent is offered again
    else:  # the documented rule: without an id, a renamed file is a new profile
        assert set(again) & set(papers)


def test_a_renamed_profile_with_an_id_stays_unsubscribed(
    site: tuple[str, ...], tmp_path: Path
) -> None:
    profiles = tmp_path / "profiles"
    (profiles / "ada.yaml").write_text(PROFILE.format(id="id: ada"))
    assert invoke(*site, "unsubscribe", "ada").exit_code == 0
    (profiles / "ada.yaml").rename(profiles / "lovelace.yaml")

    result = invoke(*site, "run", "--date", "2026-07-01", "--json")

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "skipped"


def test_a_name_longer_than_the_store_keeps_is_that_profiles_error_only(
    site: tuple[str, ...], tmp_path: Path
) -> None:
    # The store keeps a profile's name in 200 characters; PostgreSQL enforces that, and a run
    # for a longer file name failed there alone, after ranking it.
    long = tmp_path / "profiles" / f"{'p' * 201}.yaml"
    long.write_text(PROFILE.format(id=""))
    (tmp_path / "profiles" / "ada.yaml").write_text(PROFILE.format(id=""))

    result = invoke(*site, "run", "--date", "2026-07-01", "--json")

    assert result.exit_code == 1
    assert f"{long}:1:1: name: at most 200 characters (this has 201)" in result.stderr
    (line,) = result.stdout.splitlines()
    assert json.loads(line)["profile"] == "ada" and json.loads(line)["status"] == "sent"


def test_two_files_with_the_same_id_are_an_error_for_the_second(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(PROFILE.format(id="id: ada"))
    (tmp_path / "b.yaml").write_text(PROFILE.format(id="id: ada"))
    found = load_profiles(tmp_path)
    assert [p.name for p in found.profiles] == ["ada"]
    assert "already defines 'ada'" in found.errors[0].problems[0]


# -- categories ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "hint"), [("csAI", "cs.AI"), ("cs.cl", "cs.CL"), ("cs.CVV", "cs.CV")]
)
def test_categories_arxiv_does_not_have_are_refused_with_the_closest(
    tmp_path: Path, written: str, hint: str
) -> None:
    path = tmp_path / "ada.yaml"
    path.write_text(PROFILE.replace("[cs.CV, cs.CL]", f"[cs.CV, {written}]").format(id=""))
    with pytest.raises(Exception) as caught:
        load_profile(path)
    assert caught.value.problems == [  # type: ignore[attr-defined]
        f"{path}:7:21: categories[1]: {written!r} is not an arXiv category "
        f"(did you mean {hint!r}?)"
    ]


def test_real_categories_pass() -> None:
    for category in ("cs.CV", "math.AG", "astro-ph.GA", "hep-th", "q-bio.NC", "eess.IV",
                     "cond-mat.mes-hall", "stat.ML", "physics.optics"):
        assert check_category(category) == category


# -- feedback ------------------------------------------------------------------------------------


def test_feedback_needs_like_or_dislike(site: tuple[str, ...], tmp_path: Path) -> None:
    path = tmp_path / "profiles" / "ada.yaml"
    path.write_text(PROFILE.format(id=""))
    result = invoke(*site, "feedback", "ada", "2504.13123")
    assert result.exit_code == 2
    assert "say --like or --dislike" in result.stderr
    assert path.read_text() == PROFILE.format(id="")


def test_feedback_on_a_paper_the_store_does_not_know_is_refused_with_the_ingest_command(
    site: tuple[str, ...], tmp_path: Path
) -> None:
    path = tmp_path / "profiles" / "ada.yaml"
    path.write_text(PROFILE.format(id=""))
    result = invoke(*site, "feedback", "ada", "2999.99999", "--like")
    assert result.exit_code == 1
    assert "digest ingest arxiv-api:id:2999.99999" in result.stderr
    assert "liked" not in path.read_text()
    forced = invoke(*site, "feedback", "ada", "2999.99999", "--like", "--force")
    assert forced.exit_code == 0
    assert load_profile(path).liked == ("2999.99999",)


def test_disliking_a_seed_paper_warns(site: tuple[str, ...], tmp_path: Path) -> None:
    (tmp_path / "profiles" / "ada.yaml").write_text(PROFILE.format(id=""))
    result = invoke(*site, "feedback", "ada", "2503.13107", "--dislike")
    assert result.exit_code == 0
    assert "also a seed paper of interest 'hallucination'" in result.stderr


def test_an_unknown_profile_exits_2_for_every_command(site: tuple[str, ...]) -> None:
    for args in (("feedback", "nobody", "2503.13107", "--like"), ("rank", "nobody"),
                 ("run", "nobody"), ("explain", "nobody", "x"), ("preview", "nobody"),
                 ("unsubscribe", "nobody"), ("resubscribe", "nobody")):
        result = invoke(*site, *args)
        assert result.exit_code == 2, (args, result.stderr)
        assert "no profile named 'nobody'" in result.stderr


def _like_many(path: str, start: int, count: int) -> None:
    for n in range(start, start + count):
        add_feedback(path, f"2601.{n:05d}", like=True)


def test_400_concurrent_likes_from_processes_are_all_kept(tmp_path: Path) -> None:
    path = tmp_path / "ada.yaml"
    path.write_text("# Ada\nversion: 1\ninterests: [x]  # keep me\nliked: []\n")
    workers, each = 8, 50
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_like_many, args=(str(path), w * each, each))
                 for w in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(300)
        assert process.exitcode == 0
    profile = load_profile(path)
    assert sorted(profile.liked) == [f"2601.{n:05d}" for n in range(workers * each)]
    assert "# keep me" in path.read_text()


# -- limits --------------------------------------------------------------------------------------


def test_a_huge_profile_is_refused_at_once_and_the_others_load(tmp_path: Path) -> None:
    terms = "".join(f"  - term number {n}\n" for n in range(300_000))
    (tmp_path / "huge.yaml").write_text(f"version: 1\ninterests: [x]\navoid:\n{terms}")
    (tmp_path / "ok.yaml").write_text(PROFILE.format(id=""))
    started = time.perf_counter()
    found = load_profiles(tmp_path)
    assert time.perf_counter() - started < 5
    assert [p.name for p in found.profiles] == ["ok"]
    assert "larger than 1,000,000 bytes" in found.errors[0].problems[0]


def test_a_list_over_its_limit_says_the_limit(tmp_path: Path) -> None:
    terms = "".join(f"  - t{n}\n" for n in range(1500))
    path = tmp_path / "ada.yaml"
    path.write_text(f"version: 1\ninterests: [x]\navoid:\n{terms}")
    with pytest.raises(Exception) as caught:
        load_profile(path)
    assert caught.value.problems == [  # type: ignore[attr-defined]
        f"{path}:3:1: avoid: at most 1000 items (this has 1500)"
    ]
