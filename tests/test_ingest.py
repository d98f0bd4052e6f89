"""Ingestion: who is the same paper, what a re-ingest changes, and one transaction per source.

Every test runs against a real SQLite store in `tmp_path` with a fixed clock; the network is an
`httpx.MockTransport`. Papers given inline are `RawPaper`s as a parser would yield them, so each
test shows the input and the stored result side by side.
"""

from __future__ import annotations

import datetime as dt
import gzip
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from digest.http import HttpClient, Validators
from digest.ingest import IngestContext, Opened, Source, ingest
from digest.sources.arxiv import listing_url
from digest.sources.resolve import FileSource, resolve
from digest.store import Store
from digest.text import normalize_title
from digest.types import Paper, ParsedItem, RawPaper, SourceResult

NOW = dt.datetime(2026, 6, 8, 12, 0, tzinfo=dt.UTC)
LATER = dt.datetime(2026, 6, 9, 12, 0, tzinfo=dt.UTC)
TODAY = dt.date(2026, 6, 8)

CORPUS = "data/arxiv_cs_cv_cl_2025-2026.jsonl.gz"
HF_PAGES = "data/hf_pages"
PAGE_MAY_8 = "000_61f72d6cdda0e5e0.txt"
PAGE_MAR_11 = "001_f939a2e56bd435dd.txt"
PAGE_MAR_14 = "002_3b65f8d0bf14bb82.txt"

RSS = "arxiv_rss_cs.CV.xml"
#: Two corpus papers in the shape of the Hugging Face daily papers API (built for these tests):
#: 2503.15457, which the RSS fixture replaces (v2), and 2606.06950, new in the RSS fixture (v1).
HF_DAILY = "ingest_hf_daily.json"


# --- helpers --------------------------------------------------------------------------------


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store.open(store_url) as store:
        yield store


@dataclass
class Items:
    """A source whose items the test spells out."""

    items: list[ParsedItem]
    kind: str = "arxiv-api"
    name: str = "items"

    def open(self, ctx: IngestContext) -> Opened:
        return Opened(self.items)


def run(store: Store, *sources: Source, now: dt.datetime = NOW, today: dt.date = TODAY,
        http: HttpClient | None = None, **kwargs: Any) -> list[SourceResult]:
    ctx = IngestContext(now=now, today=today, http=http, store=store)
    return ingest(store, sources, ctx, **kwargs)


def counts(result: SourceResult) -> dict[str, int]:
    return {"new": result.new, "updated": result.updated, "unchanged": result.unchanged,
            "skipped": result.skipped}


def stored(store: Store, key: str) -> Paper:
    paper = store.get_paper(key)
    assert paper is not None, f"{key} is not in the store"
    return paper


def by_title(store: Store, title: str) -> list[Paper]:
    return store.find_by_norm_title(normalize_title(title))


def dump(store: Store) -> tuple[list[Any], list[Any]]:
    """Every row of papers and paper_sources, to compare a store before and after."""
    with store.engine.connect() as conn:
        papers = conn.execute(sa.text("SELECT * FROM papers ORDER BY pid")).all()
        sources = conn.execute(
            sa.text("SELECT * FROM paper_sources ORDER BY pid, source")
        ).all()
    return papers, sources


def paper_count(store: Store) -> int:
    return store.info().papers


def page(shared_dir: Path, name: str) -> FileSource:
    return FileSource(str(shared_dir / HF_PAGES / name))


class FakeTime:
    """A clock that moves only when slept on; records every sleep."""

    def __init__(self) -> None:
        self.now = 1_780_000_000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def http_client(handler: Callable[[httpx.Request], httpx.Response]) -> HttpClient:
    time = FakeTime()
    return HttpClient(transport=httpx.MockTransport(handler), clock=time.clock,
                      wall_clock=time.clock, sleep=time.sleep)


# --- identity: arXiv versions ---------------------------------------------------------------


def test_a_new_arxiv_version_updates_the_paper_in_place(store: Store) -> None:
    v1 = RawPaper(id="2503.15457v1", title="Distilling Masked Diffusion Models",
                  abstract="First abstract.", date=dt.date(2025, 3, 20))
    v2 = RawPaper(id="2503.15457v2", title="Di[M]O: Distilling Masked Diffusion Models",
                  abstract="Revised abstract.", date=dt.date(2026, 6, 8))
    (first,) = run(store, Items([v1]), now=NOW)
    before = stored(store, "2503.15457")

    (second,) = run(store, Items([v2]), now=LATER)

    assert counts(first) == {"new": 1, "updated": 0, "unchanged": 0, "skipped": 0}
    assert counts(second) == {"new": 0, "updated": 1, "unchanged": 0, "skipped": 0}
    after = stored(store, "2503.15457")
    assert after.pid == before.pid
    assert after.version == 2
    assert after.title == "Di[M]O: Distilling Masked Diffusion Models"
    assert after.abstract == "Revised abstract."
    # Identity and history stay: the first-seen time and the announced day never change.
    assert after.first_seen == NOW
    assert after.announced == dt.date(2025, 3, 20)
    assert paper_count(store) == 1


def test_an_older_version_after_a_newer_one_changes_nothing(store: Store) -> None:
    v2 = RawPaper(id="2503.15457v2", title="Revised title", abstract="Revised abstract.")
    v1 = RawPaper(id="arXiv:2503.15457v1", title="Original title", abstract="First abstract.")
    run(store, Items([v2]), now=NOW)
    before = dump(store)

    (result,) = run(store, Items([v1]), now=LATER)

    assert counts(result) == {"new": 0, "updated": 0, "unchanged": 1, "skipped": 0}
    assert dump(store) == before
    assert stored(store, "2503.15457").title == "Revised title"


def test_two_arxiv_ids_with_the_same_title_stay_two_papers(store: Store) -> None:
    (result,) = run(store, Items([RawPaper(id="2501.00001", title="Attention Is All You Need"),
                                  RawPaper(id="2501.00002", title="Attention is all you need")]))

    assert result.new == 2
    assert [p.key for p in by_title(store, "Attention Is All You Need")] == [
        "2501.00001", "2501.00002"]


def test_nul_characters_become_replacement_characters_and_every_paper_lands(
    store: Store, tmp_path: Path
) -> None:
    # PostgreSQL's text cannot hold a NUL: one in a record used to fail its whole source there.
    records = [
        {"id": "2501.00001", "title": "Attention\x00 Is All", "abstract": "a\x00b"},
        {"id": "nul\x00id", "title": "An id with a NUL", "authors": ["Ada\x00 L"],
         "categories": ["cs.CV"], "url": "https://example.org/\x00"},
        {"id": "2501.00003", "title": "Nothing odd here"},
    ]
    path = tmp_path / "nul.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")

    (first,) = run(store, FileSource(str(path)))
    (again,) = run(store, FileSource(str(path)), now=LATER)

    assert (first.error, first.new, first.rejected) == (None, 3, [])
    assert (again.error, again.unchanged) == (None, 3)
    odd = stored(store, "2501.00001")
    assert (odd.title, odd.abstract) == ("Attention\ufffd Is All", "a\ufffdb")
    other = stored(store, "nul\ufffdid")
    assert other.authors == ("Ada\ufffd L",) and other.url == "https://example.org/\ufffd"
    assert paper_count(store) == 3


def test_an_old_style_id_with_an_archive_no_arxiv_has_is_an_other_id(store: Store) -> None:
    # The store keeps an arXiv id in 64 characters (PostgreSQL enforces it): a 60-letter
    # "archive" failed the whole source there. Real archives are short (cond-mat, astro-ph).
    odd = f"{'a' * 60}/0601001v1"
    (result,) = run(store, Items([RawPaper(id=odd, title="An archive no arXiv has"),
                                  RawPaper(id="astro-ph/0601001v2", title="A real old id")]))

    assert (result.error, result.new) == (None, 2)
    assert stored(store, odd).arxiv_id is None
    assert stored(store, "astro-ph/0601001").version == 2


def test_other_ids_are_kept_exactly_as_keys(store: Store, data_dir: Path) -> None:
    run(store, FileSource(str(data_dir / "files_papers.jsonl")))

    doi = stored(store, "doi:10.1000/xyz")
    assert doi.arxiv_id is None
    assert doi.version is None
    assert doi.abs_url is None
    assert stored(store, "12345").title == "Estimating the Self-Consistency of LLMs"
    # The arXiv ids are there without version, the title-only paper under its title key.
    assert stored(store, "2504.05311").arxiv_id == "2504.05311"
    (bots,) = by_title(store, "Building Task Bots with Self-learning for Enhanced "
                              "Adaptability, Extensibility, and Factuality")
    assert bots.key.startswith("title:")


# --- identity: one paper from several sources -----------------------------------------------


def test_hf_daily_and_the_arxiv_feed_give_one_paper_with_both_sources(
    store: Store, data_dir: Path
) -> None:
    hf, rss = run(store, FileSource(str(data_dir / HF_DAILY)), FileSource(str(data_dir / RSS)))

    assert counts(hf) == {"new": 2, "updated": 0, "unchanged": 0, "skipped": 0}
    # 2606.06950 is new in the feed but HF had it; 2503.15457's replacement updates HF's
    # record; 2503.12229's replacement is of a paper this store never saw.
    assert counts(rss) == {"new": 5, "updated": 2, "unchanged": 0, "skipped": 1}
    paper = stored(store, "2606.06950")
    assert paper.sources == ("arxiv-rss", "hf-daily")
    assert paper.version == 1
    assert paper.announced == dt.date(2026, 6, 8)
    assert len(by_title(store, paper.title)) == 1
    assert paper_count(store) == 7


def test_update_only_items_skip_unknown_papers_and_update_known_ones(
    store: Store, data_dir: Path
) -> None:
    (alone,) = run(store, FileSource(str(data_dir / RSS)), now=NOW)

    # The feed replaces 2503.15457 and 2503.12229, which this store never saw.
    assert counts(alone) == {"new": 6, "updated": 0, "unchanged": 0, "skipped": 2}
    assert store.get_paper("2503.15457") is None
    assert store.get_paper("2503.12229") is None

    v1 = RawPaper(id="2503.15457v1", abstract="The first version's abstract.",
                  title="Di$\\mathtt{[M]}$O: Distilling Masked Diffusion Models into One-step "
                        "Generator", date=dt.date(2025, 3, 20))
    run(store, Items([v1]), now=NOW)
    (again,) = run(store, FileSource(str(data_dir / RSS)), now=LATER)

    assert counts(again) == {"new": 0, "updated": 1, "unchanged": 6, "skipped": 1}
    replaced = stored(store, "2503.15457")
    assert replaced.version == 2
    assert replaced.abstract.startswith("Masked Diffusion Models (MDMs) have emerged")
    assert replaced.sources == ("arxiv-api", "arxiv-rss")
    assert replaced.announced == dt.date(2025, 3, 20)  # the first announcement's day stays
    assert replaced.first_seen == NOW
    assert store.get_paper("2503.12229") is None


def test_a_lower_ranked_source_only_fills_what_the_feed_left_empty(
    store: Store, data_dir: Path
) -> None:
    run(store, FileSource(str(data_dir / RSS)), now=NOW)
    from_feed = stored(store, "2606.06950")

    # HF's copy lists "Donald Johann Jr. and Fred Prior" as one author; the feed, as two.
    (hf,) = run(store, FileSource(str(data_dir / HF_DAILY)), now=LATER)

    assert counts(hf) == {"new": 1, "updated": 0, "unchanged": 1, "skipped": 0}
    paper = stored(store, "2606.06950")
    assert paper.authors == from_feed.authors
    assert paper.authors[-2:] == ("Donald Johann Jr.", "Fred Prior")
    assert paper.sources == ("arxiv-rss", "hf-daily")


def test_a_newer_version_replaces_fields_whatever_its_source(store: Store) -> None:
    run(store, Items([RawPaper(id="2501.00001v1", title="Old Title", abstract="v1.")],
                     kind="arxiv-rss"))

    (result,) = run(store, Items([RawPaper(id="2501.00001v2", title="New Title",
                                           abstract="v2.")], kind="hf-daily"), now=LATER)

    assert result.updated == 1
    paper = stored(store, "2501.00001")
    assert (paper.title, paper.abstract, paper.version) == ("New Title", "v2.", 2)


# --- identity: papers known by their title ---------------------------------------------------

SCALE = "Scale Efficient Training for Large Datasets"  # on the May 8 page, and 2503.13385


@pytest.mark.parametrize(
    "arxiv_title",
    [
        "Scale Efficient Training for Large Datasets",
        "SCALE EFFICIENT TRAINING FOR LARGE DATASETS",
        "Scale-Efficient Training for Large Datasets.",
        r"Scale Efficient Training for \textbf{Large} Datasets",
        "Scale Efficient\n  Training for Large   Datasets",
    ],
    ids=["same", "case", "punctuation", "latex", "whitespace"],
)
def test_an_arxiv_record_takes_over_the_title_only_paper_of_its_title(
    store: Store, shared_dir: Path, arxiv_title: str
) -> None:
    run(store, page(shared_dir, PAGE_MAY_8), now=NOW)
    (title_only,) = by_title(store, SCALE)
    assert title_only.key.startswith("title:")
    assert title_only.arxiv_id is None
    papers_before = paper_count(store)

    arxiv = RawPaper(id="2503.13385v1", title=arxiv_title, abstract="The arXiv abstract.",
                     authors=("Qing Zhou", "Junyu Gao", "Qi Wang"),
                     categories=("cs.CV", "cs.AI", "cs.LG"), date=dt.date(2025, 3, 18))
    (result,) = run(store, Items([arxiv], kind="arxiv-api"), now=LATER)

    assert counts(result) == {"new": 0, "updated": 1, "unchanged": 0, "skipped": 0}
    assert store.get_paper(title_only.key) is None
    paper = stored(store, "2503.13385")
    assert paper.pid == title_only.pid
    assert paper.first_seen == NOW
    assert paper.announced == title_only.announced == dt.date(2026, 5, 8)
    assert paper.arxiv_id == "2503.13385"
    assert paper.version == 1
    assert paper.abstract == "The arXiv abstract."  # a record with an id is authoritative
    assert paper.authors == ("Qing Zhou", "Junyu Gao", "Qi Wang")
    assert paper.sources == ("arxiv-api", "hf-page")
    assert paper_count(store) == papers_before


def test_the_same_title_on_two_hf_pages_is_stored_once(store: Store, shared_dir: Path) -> None:
    may_8, mar_11 = run(store, page(shared_dir, PAGE_MAY_8), page(shared_dir, PAGE_MAR_11))

    # The pages hold 73 and 65 papers, 17 of them on both.
    assert counts(may_8) == {"new": 73, "updated": 0, "unchanged": 0, "skipped": 0}
    assert counts(mar_11) == {"new": 48, "updated": 0, "unchanged": 17, "skipped": 0}
    assert paper_count(store) == 121
    (lvm,) = by_title(store, "LVM-Med: Learning Large-Scale Self-Supervised Vision Models for "
                             "Medical Imaging via Second-order Graph Matching")
    assert lvm.announced == dt.date(2026, 5, 8)  # the first page's day stays


def test_a_record_without_id_does_not_overwrite_what_an_id_gave(store: Store) -> None:
    arxiv = RawPaper(id="2501.00001v1", title="Sparse Mixtures of Experts",
                     abstract="The arXiv abstract.", authors=("Ada Lovelace",))
    page_copy = RawPaper(title="sparse mixtures of experts", abstract="The page's abstract.")
    run(store, Items([arxiv]))
    before = dump(store)

    (result,) = run(store, Items([page_copy], kind="hf-page"), now=LATER)

    assert counts(result) == {"new": 0, "updated": 0, "unchanged": 1, "skipped": 0}
    paper = stored(store, "2501.00001")
    assert paper.title_raw == "Sparse Mixtures of Experts"
    assert paper.abstract == "The arXiv abstract."
    assert paper.sources == ("arxiv-api", "hf-page")
    assert dump(store)[0] == before[0]


def test_a_record_without_id_fills_what_the_stored_paper_lacks(store: Store) -> None:
    arxiv = RawPaper(id="2501.00001v1", title="Sparse Mixtures of Experts")  # no abstract
    page_copy = RawPaper(title="Sparse Mixtures of Experts", abstract="The page's\n abstract.")
    run(store, Items([arxiv]))

    (result,) = run(store, Items([page_copy], kind="hf-page"), now=LATER)

    assert counts(result) == {"new": 0, "updated": 1, "unchanged": 0, "skipped": 0}
    paper = stored(store, "2501.00001")
    assert paper.abstract == "The page's abstract."
    assert paper.abstract_raw == "The page's\n abstract."
    assert paper.first_seen == NOW


def test_a_title_changed_earlier_in_the_same_batch_is_matched_by_its_new_title(
    store: Store,
) -> None:
    (result,) = run(store, Items([
        RawPaper(id="2501.00001v1", title="Old Title", abstract="First abstract."),
        RawPaper(id="2501.00001v2", title="New Title", abstract="Revised abstract."),
        RawPaper(title="New Title", abstract="The page's abstract."),
    ]))

    # Split over separate ingests these three records make one paper; one batch must agree.
    assert paper_count(store) == 1
    assert counts(result) == {"new": 1, "updated": 1, "unchanged": 1, "skipped": 0}


# --- idempotency ----------------------------------------------------------------------------


def _jsonl(shared: Path, data: Path) -> list[Source]:
    return [FileSource(str(data / "files_papers.jsonl"))]


def _hf_pages(shared: Path, data: Path) -> list[Source]:
    return [page(shared, name) for name in (PAGE_MAY_8, PAGE_MAR_11, PAGE_MAR_14)]


def _rss(shared: Path, data: Path) -> list[Source]:
    return [FileSource(str(data / RSS))]


def _hf_daily_and_rss(shared: Path, data: Path) -> list[Source]:
    return [FileSource(str(data / HF_DAILY)), FileSource(str(data / RSS))]


@pytest.mark.parametrize(
    "sources",
    [_jsonl, _hf_pages, _rss, _hf_daily_and_rss],
    ids=["jsonl", "hf-pages", "rss", "hf-daily+rss"],
)
def test_ingesting_the_same_input_twice_changes_nothing(
    store: Store, shared_dir: Path, data_dir: Path,
    sources: Callable[[Path, Path], list[Source]],
) -> None:
    first = run(store, *sources(shared_dir, data_dir), now=NOW)
    assert sum(r.new for r in first) > 0
    before = dump(store)

    second = run(store, *sources(shared_dir, data_dir), now=LATER)

    assert [(r.new, r.updated, r.error) for r in second] == [(0, 0, None)] * len(second)
    assert sum(r.unchanged for r in second) == sum(r.new + r.updated + r.unchanged
                                                   for r in first)
    assert dump(store) == before


def test_sources_that_differ_only_in_white_space_do_not_overwrite_each_other(
    store: Store,
) -> None:
    feed = RawPaper(id="2606.06696v1", title="MMBU: A Massive Multi-modal Biomedical "
                    "Understanding Benchmark to Probe", abstract="Vision and language models.")
    api = RawPaper(id="2606.06696v1", title="MMBU: A Massive Multi-modal Biomedical "
                   "Understanding Benchmark\n  to Probe", abstract="Vision and language\nmodels.")
    sources = [Items([feed], kind="arxiv-rss"), Items([api], kind="arxiv-api")]
    run(store, *sources, now=NOW)
    before = dump(store)

    again = run(store, *sources, now=LATER)

    assert [r.updated for r in again] == [0, 0]
    assert dump(store) == before


# --- one transaction per source -------------------------------------------------------------


def test_a_truncated_gzip_stores_nothing_and_the_next_source_still_lands(
    store: Store, shared_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    with gzip.open(shared_dir / CORPUS, "rb") as corpus:
        head = b"".join(itertools.islice(corpus, 3000))
    whole = gzip.compress(head, mtime=0)
    truncated = tmp_path / "papers.jsonl.gz"
    truncated.write_bytes(whole[: len(whole) // 2])
    seen: dict[str, list[int]] = {}

    def progress(source: Source, papers: int, done: int | None, total: int | None) -> None:
        seen.setdefault(source.name, []).append(papers)

    broken, fine = run(store, FileSource(str(truncated)),
                       FileSource(str(data_dir / "files_papers.jsonl")), progress=progress)

    # A whole batch of 1000 was merged before the cut, and still nothing of it stayed.
    assert seen[str(truncated)][0] == 1000
    assert broken.error is not None
    assert "truncated or corrupt gzip" in broken.error
    assert broken.error.endswith("(nothing from this source was stored)")
    assert counts(broken) == {"new": 0, "updated": 0, "unchanged": 0, "skipped": 0}
    assert store.get_paper("2503.11731") is None  # the corpus's first paper
    assert fine.ok
    assert fine.new == paper_count(store) == 6


def test_an_http_failure_fails_that_source_only(store: Store, data_dir: Path) -> None:
    requests: list[httpx.Request] = []

    def server_error(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(500, text="Internal Server Error")

    source = resolve("arxiv:cs.CV", today=TODAY)
    with http_client(server_error) as http:
        failed, fine = run(store, source, FileSource(str(data_dir / "files_papers.jsonl")),
                           http=http)

    assert failed.source == "arxiv:cs.CV"
    assert failed.error is not None
    assert "HTTP 500" in failed.error
    assert "gave up after 5 attempts" in failed.error
    assert [str(r.url) for r in requests] == [listing_url(["cs.CV"])] * 5
    assert fine.ok
    assert paper_count(store) == fine.new == 6


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        (None, "not an RSS/Atom feed"),  # the content is decisive: "<" is XML to the sniffer
        ("jsonl", "not JSON Lines: line 1 is not JSON"),
    ],
)
def test_a_file_not_of_its_format_is_a_one_line_error(
    store: Store, data_dir: Path, fmt: str | None, message: str
) -> None:
    path = str(data_dir / "ingest_error_page.jsonl")  # an HTML error page saved as .jsonl

    (result,) = run(store, FileSource(path, fmt))

    assert result.error is not None
    assert message in result.error
    assert "\n" not in result.error
    assert paper_count(store) == 0
    assert dump(store) == ([], [])


def test_bad_lines_are_rejected_with_their_line_and_the_rest_is_stored(
    store: Store, data_dir: Path
) -> None:
    path = str(data_dir / "files_mixed.jsonl")

    (result,) = run(store, FileSource(path))

    assert result.error is None
    assert [r.where for r in result.rejected] == [f"{path}:{n}" for n in range(3, 9)]
    assert "title is required" in result.rejected[2].reason
    assert result.new == paper_count(store) == 3
    assert stored(store, "2504.05311").title.startswith("Dr Web")
    assert stored(store, "doi:10.1000/xyz").categories == ("cs.CV",)


# --- cleaning -------------------------------------------------------------------------------


def test_stored_text_is_clean_and_the_raw_text_is_kept(store: Store) -> None:
    raw = RawPaper(
        id="2501.00003v1",
        title="Learning $\\alpha$-Divergences for\n  Schr\\\"odinger   Bridges",
        abstract="We cut FLOPs by 50\\%  with \\textbf{no}\nloss, as in Caf\\'e.",
    )

    run(store, Items([raw]))

    paper = stored(store, "2501.00003")
    assert paper.title == "Learning α-Divergences for Schrödinger Bridges"
    assert paper.abstract == "We cut FLOPs by 50% with no loss, as in Café."
    assert paper.title_raw == raw.title
    assert paper.abstract_raw == raw.abstract


def test_the_multi_line_title_of_the_arxiv_feed(store: Store, data_dir: Path) -> None:
    run(store, FileSource(str(data_dir / RSS)))

    paper = stored(store, "2606.06696")
    assert paper.title == ("MMBU: A Massive Multi-modal Biomedical Understanding Benchmark to "
                           "Probe the Perception Capabilities of Vision-Language Models")
    assert paper.title_raw == ("MMBU: A Massive Multi-modal Biomedical Understanding Benchmark\n"
                               "  to Probe the Perception Capabilities of Vision-Language Models")
    assert paper.authors[0] == "Ryan D'Cunha"
    assert "\n" not in paper.abstract


# --- the announced day ----------------------------------------------------------------------

WINDOW = ("Window-Based Early-Exit Cascades for Uncertainty Estimation: When Deep Ensembles are "
          "More Efficient than Single Models")  # first paper of the "May 8" page


@pytest.mark.parametrize(
    ("today", "announced"),
    [
        (dt.date(2026, 6, 8), dt.date(2026, 5, 8)),
        (dt.date(2026, 5, 8), dt.date(2026, 5, 8)),
        (dt.date(2026, 5, 7), dt.date(2025, 5, 8)),
    ],
)
def test_a_year_less_page_day_resolves_relative_to_today(
    store: Store, shared_dir: Path, today: dt.date, announced: dt.date
) -> None:
    run(store, page(shared_dir, PAGE_MAY_8), today=today)

    (paper,) = by_title(store, WINDOW)
    assert paper.announced == announced


def test_undated_records_are_announced_today(store: Store, data_dir: Path) -> None:
    run(store, FileSource(str(data_dir / "files_papers.jsonl")), today=dt.date(2026, 1, 2))

    (bots,) = by_title(store, "Building Task Bots with Self-learning for Enhanced "
                              "Adaptability, Extensibility, and Factuality")
    assert bots.announced == dt.date(2026, 1, 2)
    assert stored(store, "doi:10.1000/xyz").announced == dt.date(2025, 11, 19)


# --- conditional GET ------------------------------------------------------------------------


def test_an_unchanged_feed_is_not_read_again(store: Store, data_dir: Path) -> None:
    body = (data_dir / RSS).read_bytes()
    requests: list[httpx.Request] = []

    def feed(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if request.headers.get("If-None-Match") == '"v1"':
            return httpx.Response(304)
        return httpx.Response(200, content=body, headers={"ETag": '"v1"'})

    with http_client(feed) as http:
        (first,) = run(store, resolve("arxiv:cs.CV", today=TODAY), http=http, now=NOW)
        before = dump(store)
        (second,) = run(store, resolve("arxiv:cs.CV", today=TODAY), http=http, now=LATER)

    assert "If-None-Match" not in requests[0].headers
    assert requests[1].headers["If-None-Match"] == '"v1"'
    assert first.new == 6
    assert not first.not_modified
    assert second.not_modified
    assert second.ok
    assert counts(second) == {"new": 0, "updated": 0, "unchanged": 0, "skipped": 0}
    assert store.validators(listing_url(["cs.CV"])) == Validators('"v1"', None)
    assert dump(store) == before


def test_validators_are_saved_only_when_the_source_landed(store: Store) -> None:
    requests: list[httpx.Request] = []

    def garbage(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, content=b"Rate limit exceeded, try later",
                              headers={"ETag": '"garbage"'})

    with http_client(garbage) as http:
        (first,) = run(store, resolve("arxiv:cs.CV", today=TODAY), http=http)
        (second,) = run(store, resolve("arxiv:cs.CV", today=TODAY), http=http)

    assert first.error is not None
    assert "not an RSS/Atom feed" in first.error
    assert store.validators(listing_url(["cs.CV"])) is None
    # So the next run asks again in full rather than being told "not modified".
    assert "If-None-Match" not in requests[1].headers
    assert second.error is not None
