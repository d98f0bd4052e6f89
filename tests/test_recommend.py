"""The recommender on real papers: three weeks of arXiv cs.CV/cs.CL (June 2025) in a real store
(SQLite, then PostgreSQL), profiles as YAML files, rankings through `DigestApp.rank` and the
command line.

The store and its fitted text model are built once per session and backend (`world_template`);
each test works on its own copy (`world`), so ledger writes and feedback never leak between tests.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import SHARED
from stores import Backend, Sample, make_backend, query, sqlite_only

from digest.app import DigestApp
from digest.cli import main
from digest.config import Config
from digest.modelstore import model_dir
from digest.profiles import Profile
from digest.recommend import AUTHOR_BOOST, SEED_INTEREST, Ranking
from digest.sources.resolve import FileSource
from digest.store import Store
from digest.types import Recommendation

FIRST_DAY, LAST_DAY = "2025-06-09", "2025-06-27"
MONTH_START = dt.date(2025, 6, 9)
UNTIL = dt.date(2025, 6, 27)
#: The clock of every app here: the morning after the last day in the store.
NOW = dt.datetime(2025, 6, 28, 7, 0, tzinfo=dt.UTC)
#: For tests of the ranking's arithmetic over what the store gives: SQLite only. The tests
#: of what the store decides (seeds found, papers sent, windows, categories, the ledger left
#: alone, feedback, many profiles at once) run on both backends.
RANKING = sqlite_only

#: A real paper copied twice under other ids with its abstract unchanged (near-duplicates).
ORIGINAL = "2506.18677"  # Reconstructing Tornadoes in 3D with Gaussian Splatting
COPIES = ("2506.99901", "2506.99902")
#: Real papers on Gaussian splatting announced early in the month, used as seeds.
GS_SEEDS = ("2506.07917", "2506.10335", "2506.13110")

GAUSSIAN = """\
version: 1
interests:
  - gaussian splatting
"""


@dataclass
class World:
    """A copy of the session's store and model, with a profiles folder of its own."""

    root: Path
    db_url: str
    profiles_dir: Path

    def app(self) -> DigestApp:
        config = Config(out_dir=str(self.root / "out"))
        return DigestApp(config, self.db_url, str(self.profiles_dir), clock=lambda: NOW)

    def profile(self, name: str, text: str) -> Profile:
        (self.profiles_dir / f"{name}.yaml").write_text(text, encoding="utf-8")
        found = self.app().profiles([name])
        assert found.ok, [e.problems for e in found.errors]
        return found.profiles[0]

    def rank(self, profiles: Sequence[Profile], *, until: dt.date = UNTIL,
             since: dt.date | None = None, top: int | None = None) -> list[Ranking]:
        return self.app().rank(profiles, until=until, since=since, top=top)

    def rank_one(self, profile: Profile, **kwargs: object) -> Ranking:
        (ranking,) = self.rank([profile], **kwargs)  # type: ignore[arg-type]
        return ranking

    def store(self) -> Store:
        return Store.open(self.db_url)

    def send(self, profile: str, keys: Sequence[str], *, day: dt.date = UNTIL) -> None:
        """Record a digest carrying `keys` as sent to `profile` (the delivery pipeline's calls)."""
        with self.store() as store:
            pids = [store.get_paper(key).pid for key in keys]  # type: ignore[union-attr]
            delivery = store.record_delivery(
                profile=profile, key=day.isoformat(), covered_to=day, status="pending",
                message_id=f"<{profile}-{day}@test>", message=b"...", markdown=None,
                items=[{"pid": pid, "score": 0.5, "why": {}} for pid in pids], now=NOW,
            )
            store.complete_delivery(delivery.id, files=[], now=NOW)


def _slice(target: Path) -> None:
    """The month's papers from the shared file, plus two copies of one of them."""
    original: dict[str, object] | None = None
    with gzip.open(SHARED / "data" / "arxiv_cs_cv_cl_2025-2026.jsonl.gz", "rt",
                   encoding="utf-8") as f, target.open("w", encoding="utf-8") as out:
        for line in f:
            record = json.loads(line)
            if record["date"] < FIRST_DAY:
                continue
            if record["date"] > LAST_DAY:
                break
            out.write(line)
            if record["id"] == ORIGINAL:
                original = record
        assert original is not None
        for n, key in enumerate(COPIES, start=1):
            copy = {**original, "id": key, "title": f"{original['title']} (copy {n})",
                    "authors": [f"Copy Author {n}"]}
            out.write(json.dumps(copy) + "\n")


def build_template(root: Path, url: str) -> None:
    """The store at `url` and its fitted model under `root`, built once per session and backend
    (test_explain and test_calibration use them too)."""
    root.mkdir(parents=True, exist_ok=True)
    _slice(root / "papers.jsonl")
    # The model is fitted with the real clock, so neither the fixed clock of the apps here nor
    # the real one of the command line finds it stale.
    app = DigestApp(Config(out_dir=str(root / "out")), url, str(root / "profiles"))
    (result,) = app.ingest([FileSource(str(root / "papers.jsonl"), "jsonl")], today=UNTIL)
    assert result.ok and result.new > 2500, result
    with app.open_store() as store:
        app.model(store)


def copy_world(template: Sample, backend: Backend, tmp_path: Path) -> World:
    # The copy keeps the store's id, so the copied model stays the store's own.
    url = backend.clone(template.url, tmp_path)
    shutil.copytree(model_dir(template.root / "out"), model_dir(tmp_path / "out"))
    (tmp_path / "profiles").mkdir()
    return World(tmp_path, url, tmp_path / "profiles")


@pytest.fixture(scope="session")
def world_backend(backend_kind: str) -> Iterator[Backend]:
    backend = make_backend(backend_kind)
    yield backend
    backend.cleanup()


@pytest.fixture(scope="session")
def world_template(tmp_path_factory: pytest.TempPathFactory, world_backend: Backend) -> Sample:
    if not SHARED.is_dir():
        pytest.skip("../shared is not beside the checkout")
    root = tmp_path_factory.mktemp(f"recommend_world_{world_backend.name}")
    url = world_backend.new_url(root)
    build_template(root, url)
    return Sample(root, url)


@pytest.fixture
def world(world_template: Sample, world_backend: Backend, tmp_path: Path) -> World:
    return copy_world(world_template, world_backend, tmp_path)


def keys(items: Sequence[Recommendation]) -> list[str]:
    return [r.paper.key for r in items]


def invoke(*args: str) -> Result:
    if tuple(int(part) for part in version("click").split(".")[:2]) >= (8, 2):
        runner = CliRunner()
    else:  # pragma: no cover - click 8.1
        runner = CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    return runner.invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def cli(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    """The world, with the command line run inside it (./out holds the model)."""
    monkeypatch.chdir(world.root)
    for name in ("DIGEST_DB", "DIGEST_CONFIG", "DIGEST_PROFILES"):
        monkeypatch.delenv(name, raising=False)
    return world


def words(text: str) -> set[str]:
    """The tokens the text model sees (scikit-learn's default token pattern)."""
    return set(re.findall(r"(?u)\b\w\w+\b", text.casefold()))


# --- interests --------------------------------------------------------------------------------


@RANKING
def test_a_narrow_second_interest_is_not_drowned_by_a_broad_first_one(world: World) -> None:
    profile = world.profile("ada", """\
version: 1
interests:
  - name: language models
    text: large language models, reasoning, instruction tuning, benchmarks and evaluation
  - gaussian splatting
""")

    items = world.rank_one(profile).items

    narrow = [r for r in items if r.why.interest == "gaussian splatting"]
    assert len(narrow) >= 3
    assert all("splatting" in words(r.paper.title + " " + r.paper.abstract) for r in narrow)


@RANKING
def test_text_only_and_seed_only_profiles_both_rank(world: World) -> None:
    text_only = world.profile("text", GAUSSIAN)
    seeds = ", ".join(f'"{k}"' for k in GS_SEEDS)
    seed_only = world.profile("seeds", f"version: 1\nseed_papers: [{seeds}]\n")

    by_text, by_seeds = world.rank([text_only, seed_only], top=12)

    assert len(by_text.items) == len(by_seeds.items) == 12
    assert by_text.warnings == by_seeds.warnings == []
    assert all(r.why.interest == "gaussian splatting" for r in by_text.items)
    assert all(r.why.interest == SEED_INTEREST and r.why.seed_key in GS_SEEDS
               for r in by_seeds.items)
    # Seeds about Gaussian splatting find the same topic as the words do.
    assert sum("splatting" in r.paper.title.casefold() for r in by_seeds.items) >= 6


def test_a_seed_paper_not_in_the_store_is_a_warning(world: World) -> None:
    profile = world.profile("ada", """\
version: 1
seed_papers: ["2506.07917", "2401.99999"]
interests:
  - name: splats
    text: gaussian splatting
    seed_papers: ["Not A Real Title Anywhere"]
""")

    ranking = world.rank_one(profile)

    assert len(ranking.items) == 12
    assert any("2401.99999" in w and "not in the store" in w for w in ranking.warnings)
    assert any("Not A Real Title Anywhere" in w and "splats" in w for w in ranking.warnings)


def test_a_seed_written_with_a_nul_is_a_paper_not_in_the_store(world: World) -> None:
    # YAML's "\0" is a NUL, which PostgreSQL refuses in a query: a warning, not a failed rank.
    profile = world.profile("ada", 'version: 1\nseed_papers: ["2506.07917", "2506.1\\0"]\n')

    ranking = world.rank_one(profile)

    assert ranking.items
    assert ranking.warnings == ["seed_papers: paper '2506.1\\x00' is not in the store"]


# --- candidates -------------------------------------------------------------------------------


def test_papers_already_sent_are_not_candidates(world: World) -> None:
    ada, bob = world.profile("ada", GAUSSIAN), world.profile("bob", GAUSSIAN)
    since = UNTIL - dt.timedelta(days=7)  # the sent digest would otherwise move the window
    first = keys(world.rank_one(ada, since=since, top=10).items)

    world.send("ada", first[:3])
    after, other = world.rank([ada, bob], since=since, top=10)

    assert not set(first[:3]) & set(keys(after.items))
    assert keys(after.items)[:7] == first[3:]
    assert keys(other.items) == first  # sent to ada, not to bob


def test_the_profiles_own_papers_are_not_candidates(world: World) -> None:
    text = world.profile("text", GAUSSIAN)
    ranked = keys(world.rank_one(text, top=10).items)
    seed, liked, disliked, interest_seed = ranked[0], ranked[1], ranked[2], ranked[3]
    profile = world.profile("ada", f"""\
version: 1
seed_papers: ["{seed}"]
liked: ["{liked}"]
disliked: ["{disliked}"]
interests:
  - name: gaussian splatting
    text: gaussian splatting
    seed_papers: ["{interest_seed}"]
""")

    ranking = world.rank_one(profile, top=40)

    assert len(ranking.items) == 40
    assert not {seed, liked, disliked, interest_seed} & set(keys(ranking.items))


def test_categories_restrict_the_candidates(world: World) -> None:
    text = """\
version: 1
interests:
  - name: multimodal
    text: vision-language models, multimodal large language models
"""
    anywhere = world.profile("anywhere", text)
    language = world.profile("language", text + "categories: [cs.CL]\n")

    everywhere, only_cl = world.rank([anywhere, language], top=40)

    assert any("cs.CL" not in r.paper.categories for r in everywhere.items)
    assert len(only_cl.items) == 40
    assert all("cs.CL" in r.paper.categories for r in only_cl.items)
    assert only_cl.considered < everywhere.considered


def test_the_window_runs_from_since_or_first_digest_days_to_until(world: World) -> None:
    profile = world.profile("ada", GAUSSIAN)
    until = dt.date(2025, 6, 24)

    default = world.rank_one(profile, until=until, top=100)
    since = world.rank_one(profile, since=dt.date(2025, 6, 10), until=until, top=100)

    first_digest = until - dt.timedelta(days=Config().first_digest_days)
    days = [r.paper.announced for r in default.items]
    assert days and all(d is not None and first_digest <= d <= until for d in days)
    days = [r.paper.announced for r in since.items]
    assert all(d is not None and dt.date(2025, 6, 10) <= d <= until for d in days)
    assert min(d for d in days if d) < first_digest


def test_the_window_starts_where_the_last_digest_ended(world: World) -> None:
    profile = world.profile("ada", GAUSSIAN)
    world.send("ada", [], day=dt.date(2025, 6, 24))

    ranking = world.rank_one(profile, top=200)

    days = {r.paper.announced for r in ranking.items}
    assert days and min(d for d in days if d) >= dt.date(2025, 6, 24)


# --- avoid, dislike, authors ------------------------------------------------------------------


@RANKING
def test_an_avoided_phrase_pushes_its_papers_down(world: World) -> None:
    plain = world.profile("plain", GAUSSIAN)
    avoiding = world.profile("avoiding", GAUSSIAN + "avoid: [virtual memory]\n")

    before, after = world.rank([plain, avoiding], top=20)

    target = "2506.19415"  # Virtual Memory for 3D Gaussian Splatting
    assert keys(before.items)[0] == target
    assert target not in keys(after.items)[:10]
    assert keys(after.items)[:5] == keys(before.items)[1:6]


@RANKING
def test_a_disliked_paper_pushes_similar_papers_down(world: World) -> None:
    plain = world.profile("plain", GAUSSIAN)
    disliking = world.profile("disliking", GAUSSIAN + f'disliked: ["{ORIGINAL}"]\n')

    before, after = world.rank([plain, disliking], top=30)

    # The copies share the disliked paper's abstract; other splatting papers are untouched.
    scores = {r.paper.key: r.score for r in before.items}
    assert len({ORIGINAL, *COPIES} & set(scores)) == 1
    after_scores = {r.paper.key: r.score for r in after.items}
    for copy in COPIES:
        assert copy not in after_scores
    untouched = [k for k in scores if k not in (ORIGINAL, *COPIES)][:5]
    drops = [scores[k] - after_scores[k] for k in untouched]
    assert all(0 <= drop < 1.0 for drop in drops), drops  # relevance units


@RANKING
def test_a_followed_author_is_boosted_and_named(world: World) -> None:
    plain = world.profile("plain", GAUSSIAN)
    ranked = world.rank_one(plain, top=60).items
    paper = ranked[40].paper
    author = paper.authors[-1]
    following = world.profile("following", GAUSSIAN + f'authors: ["{author.upper()}"]\n')

    boosted = world.rank_one(following, top=60).items

    position = keys(boosted).index(paper.key)
    assert position < 40
    assert boosted[position].why.authors == (author.upper(),)
    assert all(r.why.authors for r in boosted[: position + 1])  # followed authors come first
    # The boost orders; the score shown stays the paper's relevance.
    assert boosted[position].score == pytest.approx(ranked[40].score, abs=1e-4)
    assert max(r.score for r in ranked) < AUTHOR_BOOST


@RANKING
def test_an_avoided_name_the_model_never_saw_still_pushes_its_paper_down(world: World) -> None:
    plain = world.profile("plain", GAUSSIAN)
    avoiding = world.profile("avoiding", GAUSSIAN + "avoid: [HoliGS]\n")
    holigs = "2506.19291"  # HoliGS: Holistic Gaussian Splatting for Embodied View Synthesis

    before, after = world.rank([plain, avoiding], top=10)

    assert holigs in keys(before.items)[:3]
    penalised = next((r for r in after.items if r.paper.key == holigs), None)
    assert penalised is None or penalised.score < before.items[0].score - 0.2, (
        penalised and penalised.why.penalties)


def test_a_followed_authors_new_paper_is_always_in_the_digest(world: World) -> None:
    author, paper = "Deepon Halder", "2506.19952"  # CycleDistill (machine translation)
    profile = world.profile("ada", GAUSSIAN + f'max_papers: 5\nauthors: ["{author}"]\n')

    ranking = world.rank_one(profile)

    assert paper in keys(ranking.items)


# --- min_relevance, max_papers, top, duplicates -----------------------------------------------


@RANKING
def test_min_relevance_max_papers_and_top(world: World) -> None:
    strict = world.profile("strict", GAUSSIAN + "min_relevance: 2.5\nmax_papers: 50\n")
    short = world.profile("short", GAUSSIAN + "max_papers: 3\nmin_relevance: 0\n")
    loose = world.profile("loose", GAUSSIAN + "min_relevance: 0\nmax_papers: 50\n")

    by_strict, by_short, by_loose = world.rank([strict, short, loose])

    assert 0 < len(by_strict.items) < 50
    assert all(r.score >= 2.5 for r in by_strict.items)
    assert any(r.score < 2.5 for r in by_loose.items)
    assert keys(by_short.items) == keys(by_loose.items)[:3]
    (topped,) = world.rank([strict], top=60)
    assert len(topped.items) == 60
    assert keys(topped.items)[: len(by_strict.items)] == keys(by_strict.items)


@RANKING
def test_near_duplicates_are_thinned(world: World) -> None:
    profile = world.profile("ada", GAUSSIAN)

    ranking = world.rank_one(profile, top=30)

    assert len(set(keys(ranking.items)) & {ORIGINAL, *COPIES}) == 1
    scores = [r.score for r in ranking.items]
    assert scores == sorted(scores, reverse=True)


# --- explanations -----------------------------------------------------------------------------


@RANKING
def test_the_reasons_are_the_papers_own_terms_and_the_profiles_seeds(world: World) -> None:
    profile = world.profile("ada", """\
version: 1
seed_papers: ["2506.07917", "2506.10335"]
interests:
  - name: speech
    text: speech recognition, spoken language, audio
authors: ["Mae Younes"]
""")

    items = world.rank_one(profile, since=MONTH_START, top=30).items

    assert {r.why.interest for r in items} == {"speech", SEED_INTEREST}
    for r in items:
        assert r.why.terms
        seen = words(r.paper.title + " " + r.paper.abstract)
        for term in r.why.terms:
            assert set(term.split()) <= seen, (term, r.paper.key)
        assert r.why.seed_key in ("2506.07917", "2506.10335")
        assert r.why.seed_similarity is not None and 0 < r.why.seed_similarity <= 1
        assert r.why.authors == (("Mae Younes",) if "Mae Younes" in r.paper.authors else ())
    assert any(r.why.authors for r in items)


# --- feedback ---------------------------------------------------------------------------------


PROFILE_WITH_COMMENTS = """\
# Ada's digest: Gaussian splatting and nothing else.
version: 1
interests:
  - gaussian splatting   # the only topic
max_papers: 5

# Papers she liked go below.
liked: []
"""


def test_feedback_round_trip(cli: World) -> None:
    (cli.profiles_dir / "ada.yaml").write_text(PROFILE_WITH_COMMENTS, encoding="utf-8")
    base = ("--db", cli.db_url, "--profiles", str(cli.profiles_dir))
    rank = (*base, "rank", "ada", "--until", UNTIL.isoformat(), "--json")
    before = json.loads(invoke(*rank).stdout)
    liked = before["papers"][0]["id"]
    assert all(p["why"]["seed"] is None for p in before["papers"])

    result = invoke(*base, "feedback", "ada", liked, "--like")

    assert result.exit_code == 0, result.stderr
    text = (cli.profiles_dir / "ada.yaml").read_text(encoding="utf-8")
    assert "# Ada's digest: Gaussian splatting and nothing else." in text
    assert "# the only topic" in text and "# Papers she liked go below." in text
    assert liked in text
    after = json.loads(invoke(*rank).stdout)
    assert liked not in [p["id"] for p in after["papers"]]
    # The liked paper is now a seed: the closest one to every paper, as it is the only one.
    assert all(p["why"]["seed"]["id"] == liked for p in after["papers"])


# --- the rank contract ------------------------------------------------------------------------


def ledger(db_url: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    return (query(db_url, "SELECT * FROM deliveries ORDER BY id"),
            query(db_url, "SELECT * FROM sent ORDER BY profile, pid"))


def test_rank_json_contract_and_it_writes_nothing(cli: World) -> None:
    for name, extra in (("ada", ""), ("bob", "categories: [cs.CL]\n"), ("cy", "")):
        (cli.profiles_dir / f"{name}.yaml").write_text(
            "# keep me\n" + GAUSSIAN + extra, encoding="utf-8")
    cli.send("cy", ["2506.19415"], day=dt.date(2025, 6, 20))
    files = {p.name: p.read_bytes() for p in cli.profiles_dir.iterdir()}
    recorded = ledger(cli.db_url)
    base = ("--db", cli.db_url, "--profiles", str(cli.profiles_dir), "rank",
            "--until", UNTIL.isoformat())

    some = invoke(*base, "ada", "bob", "--since", MONTH_START.isoformat(), "--top", "7",
                  "--json")
    every = invoke(*base, "--json")

    assert some.exit_code == every.exit_code == 0, some.stderr + every.stderr
    lines = [json.loads(line) for line in some.stdout.splitlines()]
    assert [line["profile"] for line in lines] == ["ada", "bob"]
    for line in lines:
        assert len(line["papers"]) == 7
        for paper in line["papers"]:
            assert set(paper) == {"id", "title", "score", "cosine", "why"}
            assert paper["cosine"] == paper["why"]["similarity"]
            assert {"interest", "terms", "authors", "seed", "penalties"} <= set(paper["why"])
        scores = [p["score"] for p in line["papers"]]
        assert scores == sorted(scores, reverse=True)
    assert [json.loads(line)["profile"] for line in every.stdout.splitlines()] == [
        "ada", "bob", "cy"]
    assert {p.name: p.read_bytes() for p in cli.profiles_dir.iterdir()} == files
    assert ledger(cli.db_url) == recorded


# --- many profiles ----------------------------------------------------------------------------


TOPICS = [
    "gaussian splatting", "speech recognition", "medical image segmentation",
    "large language model reasoning", "retrieval augmented generation", "video generation",
    "autonomous driving perception", "machine translation", "diffusion models",
    "vision-language models", "3d object detection", "hallucination in language models",
    "remote sensing", "code generation", "multilingual benchmarks", "image super-resolution",
    "point clouds", "sign language", "knowledge graphs", "adversarial robustness",
]


def test_three_hundred_profiles_rank_in_one_call_as_they_do_alone(world: World) -> None:
    for n in range(300):
        topics = [TOPICS[n % 20], TOPICS[(n * 7 + 3) % 20]][: 1 + n % 2]
        extra = ""
        if n % 3 == 0:
            extra += "categories: [cs.CV]\n"
        if n % 5 == 0:
            extra += f"avoid: [{TOPICS[(n + 1) % 20]}]\n"
        if n % 7 == 0:
            extra += f'seed_papers: ["{GS_SEEDS[n % 3]}"]\n'
        body = "version: 1\ninterests:\n" + "".join(f"  - {t}\n" for t in topics)
        (world.profiles_dir / f"p{n:03}.yaml").write_text(body + extra, encoding="utf-8")
    profiles = list(world.app().profiles().profiles)
    assert len(profiles) == 300

    together = world.rank(profiles)

    assert [r.profile for r in together] == [p.name for p in profiles]
    assert sum(len(r.items) > 0 for r in together) > 250
    for n in (0, 149, 299):
        (alone,) = world.rank([profiles[n]])
        assert keys(alone.items) == keys(together[n].items), profiles[n].name
        assert [r.score for r in alone.items] == pytest.approx(
            [r.score for r in together[n].items], abs=1e-5)
