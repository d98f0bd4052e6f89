"""`digest profiles import`: seeds from BibTeX, RIS and CSL-JSON exports, a Zotero library (its
web API answered by recorded responses) and an arXiv author (an ``au:`` query answered by a
recorded API response), with missing papers fetched from the arXiv API by id.

The export files in tests/data/imports hold papers of the shared corpus (four in the bundled
sample, one only on arXiv, one book), written as Zotero, JabRef and Mendeley export them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest
from click.testing import CliRunner, Result
from stores import Backend

from digest.cli import main
from digest.http import HttpClient
from digest.imports.zotero import read_zotero
from digest.profiles import load_profile

DATA = Path(__file__).parent / "data" / "imports"
IN_SAMPLE = ["2503.13107", "2503.12284", "2503.12572", "2503.11981"]


class FakeWeb:
    """arXiv's API and Zotero's, answering from recorded responses; counts requests."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        query = parse_qs(request.url.query.decode())
        if request.url.host == "export.arxiv.org":
            if query.get("id_list") == ["2104.12255"]:
                return httpx.Response(200, content=(DATA / "arxiv_id_2104.12255.xml").read_bytes())
            if query.get("search_query") == ['au:"Hao Yin"']:
                return httpx.Response(200, content=(DATA / "arxiv_au_hao_yin.xml").read_bytes())
            empty = ('<feed xmlns="http://www.w3.org/2005/Atom" xmlns:opensearch='
                     '"http://a9.com/-/spec/opensearch/1.1/"><opensearch:totalResults>0'
                     "</opensearch:totalResults><opensearch:startIndex>0"
                     "</opensearch:startIndex></feed>")
            return httpx.Response(200, content=empty.encode())
        if request.url.host == "api.zotero.org":
            assert request.url.path == "/users/475425/items/top"
            start = query.get("start", ["0"])[0]
            body = (DATA / f"zotero_items_top_start{start}.json").read_bytes()
            headers = {"Total-Results": "4", "Zotero-API-Version": "3",
                       "Content-Type": "application/json"}
            if start == "0":
                headers["Link"] = ('<https://api.zotero.org/users/475425/items/top?limit=100&'
                                   'start=2>; rel="next", <https://api.zotero.org/users/475425/'
                                   'items/top?limit=100&start=2>; rel="last"')
            return httpx.Response(200, content=body, headers=headers)
        return httpx.Response(404)


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory: pytest.TempPathFactory, module_backend: Backend) -> str:
    """The bundled sample, ingested once per module and backend (copied per test)."""
    url = module_backend.new_url(tmp_path_factory.mktemp("sample"), "sample")
    result = CliRunner().invoke(main, ["--db", url, "ingest", "sample"])
    assert result.exit_code == 0, result.output
    return url


@pytest.fixture
def web() -> FakeWeb:
    return FakeWeb()


@pytest.fixture
def cli(tmp_path: Path, sample_db: str, store_backend: Backend, web: FakeWeb,
        monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    monkeypatch.chdir(tmp_path)
    for name in ("DIGEST_DB", "DIGEST_CONFIG", "DIGEST_PROFILES", "ZOTERO_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    db = store_backend.clone(sample_db, tmp_path)

    def factory() -> HttpClient:
        return HttpClient(transport=httpx.MockTransport(web), politeness={},
                          sleep=lambda _: None)

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(
            main, ["--db", db, "--profiles",
                   str(tmp_path / "profiles"), *args],
            obj={"http_factory": factory}, catch_exceptions=False)

    return invoke


@pytest.mark.parametrize("export", ["library.bib", "library.ris", "library.json"])
def test_an_export_becomes_seeds_matched_fetched_and_skipped(
    cli: Callable[..., Result], tmp_path: Path, web: FakeWeb, export: str
) -> None:
    result = cli("profiles", "import", "ada", str(DATA / export), "--json")

    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["matched"] == IN_SAMPLE
    assert report["fetched"] == ["2104.12255"]  # not in the store: fetched by id, politely
    assert [r.url.params["id_list"] for r in web.requests] == ["2104.12255"]
    skipped = report["skipped"]
    assert any("TeXbook" in s and "no arXiv id, and no paper with this title" in s
               for s in skipped)
    if export == "library.bib":
        assert any("library.bib:46: cannot read this entry" in s for s in skipped)
    profile = load_profile(tmp_path / "profiles" / "ada.yaml")
    assert profile.id == "ada"
    assert list(profile.seed_papers) == [*IN_SAMPLE, "2104.12255"]


def test_importing_again_adds_nothing_and_keeps_the_persons_comments(
    cli: Callable[..., Result], tmp_path: Path
) -> None:
    (tmp_path / "profiles").mkdir()
    path = tmp_path / "profiles" / "ada.yaml"
    path.write_text("# Ada's own words\nversion: 1\ninterests: [hallucination]  # mine\n"
                    'seed_papers: ["2503.13107"]\n')
    first = cli("profiles", "import", "ada", str(DATA / "library.ris"), "--no-fetch")
    assert first.exit_code == 0, first.stderr
    assert "4 matched, 0 fetched from arXiv, 2 skipped; 3 new seed papers" in first.stdout
    again = cli("profiles", "import", "ada", str(DATA / "library.ris"), "--no-fetch")
    assert "; 0 new seed papers" in again.stdout
    text = path.read_text()
    assert text.startswith("# Ada's own words\n") and "# mine" in text
    assert list(load_profile(path).seed_papers) == IN_SAMPLE[:1] + IN_SAMPLE[1:]


def test_a_zotero_library_through_its_web_api(web: FakeWeb) -> None:
    refs = read_zotero("475425", "user", "secret-key",
                       transport=httpx.MockTransport(web))
    assert [(r.arxiv_id, r.title) for r in refs] == [
        ("2503.13107", "ClearSight: Visual Signal Enhancement for Object Hallucination "
                       "Mitigation in Multimodal Large Language Models"),
        ("2503.12284", "REdiSplats: Ray Tracing for Editable Gaussian Splatting"),
        (None, "DecompDreamer: Advancing Structured 3D Asset Generation with Multi-Object "
               "Decomposition and Gaussian Splatting"),
        (None, "The TeXbook"),
    ]
    assert len(web.requests) == 2  # two pages, following the Link header
    assert web.requests[0].headers["Authorization"] == "Bearer secret-key"


def test_an_arxiv_authors_papers_become_seeds(
    cli: Callable[..., Result], tmp_path: Path, web: FakeWeb
) -> None:
    result = cli("profiles", "import", "hao", "--arxiv-author", "Hao Yin",
                 "--max-per-author", "3", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert sorted(report["matched"] + report["fetched"]) == [
        "2503.13107", "2503.13108", "2504.10020"]
    (request,) = web.requests
    assert request.url.params["search_query"] == 'au:"Hao Yin"'
    seeds = load_profile(tmp_path / "profiles" / "hao.yaml").seed_papers
    assert sorted(seeds) == ["2503.13107", "2503.13108", "2504.10020"]


def test_nothing_importable_exits_1_and_writes_nothing(
    cli: Callable[..., Result], tmp_path: Path
) -> None:
    book = tmp_path / "book.bib"
    book.write_text("@book{k, title={The {\\TeX}book}}\n")
    result = cli("profiles", "import", "ada", str(book))
    assert result.exit_code == 1
    assert "0 matched, 0 fetched" in result.stdout
    assert not (tmp_path / "profiles" / "ada.yaml").exists()


def test_no_source_is_a_usage_error(cli: Callable[..., Result]) -> None:
    assert cli("profiles", "import", "ada").exit_code == 2
