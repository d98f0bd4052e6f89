"""Hugging Face sources: saved papers pages, the daily papers JSON, and fetching it page by page."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from digest.errors import FormatError
from digest.http import HttpClient
from digest.sources.hf import (
    fetch_daily,
    parse_daily_json,
    parse_hf_page,
    parse_named,
    resolve_day,
)
from digest.types import RawPaper, Rejected

PAGES = {
    "000_61f72d6cdda0e5e0.txt": ("May 8", 73),
    "001_f939a2e56bd435dd.txt": ("Mar 11", 65),
    "002_3b65f8d0bf14bb82.txt": ("Mar 14", 84),
}


def _page(shared_dir: Path, name: str) -> str:
    return (shared_dir / "data" / "hf_pages" / name).read_text(encoding="utf-8")


# --- resolve_day ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "today", "expected"),
    [
        ("May 8", dt.date(2026, 11, 23), dt.date(2026, 5, 8)),
        ("Mar 11", dt.date(2026, 3, 1), dt.date(2025, 3, 11)),
        ("Mar 1", dt.date(2026, 3, 1), dt.date(2026, 3, 1)),  # today itself counts
        ("Dec 31", dt.date(2026, 1, 1), dt.date(2025, 12, 31)),
        ("Feb 29", dt.date(2026, 3, 1), dt.date(2024, 2, 29)),
        ("Feb 29", dt.date(2028, 2, 28), dt.date(2024, 2, 29)),
        ("Feb 29", dt.date(2028, 2, 29), dt.date(2028, 2, 29)),
        ("March 11", dt.date(2026, 3, 1), dt.date(2025, 3, 11)),
        ("Sep 3, 2024", dt.date(2026, 3, 1), dt.date(2024, 9, 3)),
    ],
)
def test_resolve_day_is_the_latest_such_date_not_after_today(
    text: str, today: dt.date, expected: dt.date
) -> None:
    assert resolve_day(text, today) == expected


@pytest.mark.parametrize("text", ["Mar", "Foo 11", "Feb 30", "11 Mar", "2026-03-11", ""])
def test_resolve_day_rejects_what_is_not_a_day(text: str) -> None:
    with pytest.raises(ValueError):
        resolve_day(text, dt.date(2026, 3, 1))


# --- saved papers pages ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PAGES))
def test_saved_pages_parse_to_title_abstract_pairs(shared_dir: Path, name: str) -> None:
    day, count = PAGES[name]
    items = list(parse_hf_page(_page(shared_dir, name), origin=name, today=dt.date(2026, 11, 23)))

    assert len(items) == count
    assert all(isinstance(p, RawPaper) for p in items)
    papers = [p for p in items if isinstance(p, RawPaper)]
    assert {p.date for p in papers} == {resolve_day(day, dt.date(2026, 11, 23))}
    assert all(p.id is None and p.authors == () and p.url is None for p in papers)
    assert all(p.title and len(p.abstract) > 1000 for p in papers)


def test_first_paper_of_a_page(shared_dir: Path) -> None:
    text = _page(shared_dir, "000_61f72d6cdda0e5e0.txt")
    first = next(parse_hf_page(text, origin="p", today=dt.date(2026, 11, 23)))

    assert isinstance(first, RawPaper)
    assert first == RawPaper(
        title="Window-Based Early-Exit Cascades for Uncertainty Estimation: When Deep Ensembles "
        "are More Efficient than Single Models",
        abstract=first.abstract,
        date=dt.date(2026, 5, 8),
    )
    assert first.abstract.startswith("Deep Ensembles are a simple, reliable, and effective")


def test_header_day_resolves_against_today(shared_dir: Path) -> None:
    text = _page(shared_dir, "001_f939a2e56bd435dd.txt")
    first = next(parse_hf_page(text, origin="p", today=dt.date(2026, 3, 1)))
    assert isinstance(first, RawPaper)
    assert first.date == dt.date(2025, 3, 11)


def test_a_paper_on_several_pages_is_yielded_on_each(shared_dir: Path) -> None:
    title = "Learning Transferable Architectures for Scalable Image Recognition"
    for name in PAGES:
        items = parse_hf_page(_page(shared_dir, name), origin=name, today=dt.date(2026, 11, 23))
        titles = [p.title for p in items if isinstance(p, RawPaper)]
        assert titles.count(title) == 1, name


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("new\n", "news\n", "expected 'new' at line 1"),
        ("Subscribe\n", "Sign in\n", "expected 'Subscribe' at line 5"),
        ("byAK", "AK", "expected a byline"),
        ("May 8\n", "Trending\n", "expected a day such as 'Mar 11' at line 9"),
        ("May 8\n", "May 32\n", "at line 9"),
    ],
)
def test_a_page_with_a_broken_header_is_not_a_page(
    shared_dir: Path, old: str, new: str, expected: str
) -> None:
    text = _page(shared_dir, "000_61f72d6cdda0e5e0.txt").replace(old, new, 1)
    with pytest.raises(FormatError, match="not a saved Hugging Face papers page") as info:
        parse_hf_page(text, origin="page.txt", today=dt.date(2026, 11, 23))
    assert expected in str(info.value)
    assert info.value.source == "page.txt"


def test_an_empty_file_is_not_a_page() -> None:
    with pytest.raises(FormatError, match="expected 'new' at line 1"):
        parse_hf_page("", origin="empty.txt", today=dt.date(2026, 11, 23))


HEADER = "new\n\nGet trending papers in your email inbox!\n\nSubscribe\n\nbyAK and the research community\n\nMar 11\n\n"  # noqa: E501


def test_a_title_without_abstract_at_the_end_is_title_only() -> None:
    text = HEADER + "Title One\n\nAbstract one.\n\nTitle Two\n"
    items = list(parse_hf_page(text, origin="p.txt", today=dt.date(2026, 3, 11)))
    assert items == [
        RawPaper(title="Title One", abstract="Abstract one.", date=dt.date(2026, 3, 11)),
        RawPaper(title="Title Two", abstract="", date=dt.date(2026, 3, 11)),
    ]


def test_a_lost_line_rejects_the_out_of_step_block_and_gets_back_in_step() -> None:
    long_abstract = "An abstract that ran on. " * 20
    # "Title Two" lost its abstract: "Title Three" is read as its abstract, and the abstract of
    # Title Three, standing where a title should be, is rejected with its line.
    text = HEADER + "\n\n".join(
        ["Title One", long_abstract, "Title Two", "Title Three", long_abstract, "Title Four",
         long_abstract]
    )
    items = list(parse_hf_page(text, origin="p.txt", today=dt.date(2026, 3, 11)))
    assert [type(i).__name__ for i in items] == ["RawPaper", "RawPaper", "Rejected", "RawPaper"]
    rejected = items[2]
    assert isinstance(rejected, Rejected)
    assert rejected.where == "p.txt:19"
    assert "expected a one-line title" in rejected.reason
    assert isinstance(items[3], RawPaper) and items[3].title == "Title Four"


# --- the daily papers JSON ------------------------------------------------------------------


def test_daily_json_fixture(data_dir: Path) -> None:
    body = (data_dir / "hf_daily_2025-05-08.json").read_bytes()
    items = list(parse_daily_json(body, origin="hf:2025-05-08"))

    assert len(items) == 6
    papers = [p for p in items if isinstance(p, RawPaper)]
    assert len(papers) == 6
    assert papers[0] == RawPaper(
        id="2505.04002",
        title="PARC: Physics-based Augmentation with Reinforcement Learning for Character "
        "Controllers",
        abstract=papers[0].abstract,
        authors=("Michael Xu", "Yi Shi", "KangKang Yin", "Xue Bin Peng"),
        date=dt.date(2025, 5, 8),
        url="https://arxiv.org/abs/2505.04002",
    )
    assert all(p.date == dt.date(2025, 5, 8) and p.categories == () for p in papers)
    latex = next(p for p in papers if p.id == "2505.04486")
    assert r"($\sim 50\%$ less in some cases)" in latex.abstract  # raw; the store cleans it


def _entry(**paper: object) -> dict[str, object]:
    base: dict[str, object] = {"id": "2505.04002", "title": "A title", "summary": "An abstract."}
    base.update(paper)
    return {"paper": base, "publishedAt": "2025-05-08T01:00:00.000Z"}


def test_malformed_entries_are_rejected_and_the_rest_read() -> None:
    entries = [
        _entry(),
        "not an object",
        {"title": "no paper object"},
        _entry(title=""),
        _entry(authors="Michael Xu"),
        _entry(authors=[{"name": 3}]),
        _entry(id=2505.04002),
        _entry(summary=["a", "list"]),
        {"paper": {"id": "2505.04050", "title": "T", "publishedAt": "yesterday"}},
        _entry(id="2505.04050"),
    ]
    items = list(parse_daily_json(json.dumps(entries).encode(), origin="u"))

    assert [type(i).__name__ for i in items] == ["RawPaper"] + ["Rejected"] * 8 + ["RawPaper"]
    reasons = {i.where: i.reason for i in items if isinstance(i, Rejected)}
    assert reasons["u entry 1"] == "expected an object, got str"
    assert "'paper' object" in reasons["u entry 2"]
    assert "paper.title must be a non-empty string" in reasons["u entry 3"]
    assert "paper.authors must be a list" in reasons["u entry 4"]
    assert "paper.authors[0]" in reasons["u entry 5"]
    assert "paper.id must be a string" in reasons["u entry 6"]
    assert "paper.summary must be a string" in reasons["u entry 7"]
    assert "paper.publishedAt must be an ISO timestamp" in reasons["u entry 8"]


def test_falls_back_to_the_outer_title_and_submission_day() -> None:
    entry = {
        "paper": {"id": "2505.04002", "title": None, "submittedOnDailyAt": "2025-05-09T02:00Z"},
        "title": "Outer title",
        "summary": "Outer summary",
    }
    (paper,) = parse_daily_json(json.dumps([entry]).encode(), origin="u")
    assert paper == RawPaper(
        id="2505.04002", title="Outer title", abstract="Outer summary",
        date=dt.date(2025, 5, 9), url="https://arxiv.org/abs/2505.04002",
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"<html>rate limited</html>", "not Hugging Face daily papers JSON"),
        (b'{"error": "Invalid date"}', "expected an array, got dict"),
        (b"\xff\xfe", "not Hugging Face daily papers JSON"),
    ],
)
def test_not_an_array_is_a_format_error(body: bytes, expected: str) -> None:
    with pytest.raises(FormatError, match=expected):
        parse_daily_json(body, origin="u")


def test_an_empty_day_is_empty() -> None:
    assert list(parse_daily_json(b"[]", origin="u")) == []


# --- fetching ------------------------------------------------------------------------------


def _client(handler: Callable[[httpx.Request], httpx.Response]) -> HttpClient:
    return HttpClient(
        transport=httpx.MockTransport(handler),
        sleep=lambda s: None,
        politeness={},
    )


def test_fetch_daily_pages_until_a_short_page() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        page = int(request.url.params["p"])
        size = 2 if page == 0 else 1
        entries = [_entry(id=f"2505.0{page}00{k}", title=f"P{page}.{k}") for k in range(size)]
        return httpx.Response(200, json=entries)

    with _client(handler) as http:
        items = list(fetch_daily(http, dt.date(2025, 5, 8), source="hf:2025-05-08", page_size=2))

    assert [i.title for i in items if isinstance(i, RawPaper)] == ["P0.0", "P0.1", "P1.0"]
    assert [dict(r.url.params) for r in requests] == [
        {"date": "2025-05-08", "limit": "2", "p": "0"},
        {"date": "2025-05-08", "limit": "2", "p": "1"},
    ]
    assert requests[0].url.path == "/api/daily_papers"


def test_fetch_daily_stops_when_the_server_ignores_paging() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, json=[_entry(), _entry(id="2505.04050")])

    with _client(handler) as http:
        items = list(fetch_daily(http, dt.date(2025, 5, 8), source="hf", page_size=2))
    assert len(items) == 2
    assert calls == 2


def test_fetch_daily_rejections_name_the_page() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[_entry(), 42])

    with _client(handler) as http:
        items = list(fetch_daily(http, dt.date(2025, 5, 8), source="hf:2025-05-08"))
    rejected = items[1]
    assert isinstance(rejected, Rejected)
    assert rejected.where.startswith("https://huggingface.co/api/daily_papers?date=2025-05-08")
    assert rejected.where.endswith("p=0 entry 1")


def test_fetch_daily_format_error_names_the_source() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>oops</html>")

    with _client(handler) as http, pytest.raises(FormatError) as info:
        list(fetch_daily(http, dt.date(2025, 5, 8), source="hf:2025-05-08"))
    assert info.value.source == "hf:2025-05-08"


# --- named sources ------------------------------------------------------------------------


def test_parse_named() -> None:
    assert parse_named("hf:2026-11-20") == dt.date(2026, 11, 20)
    assert parse_named("hf:", today=dt.date(2026, 11, 23)) == dt.date(2026, 11, 23)


@pytest.mark.parametrize("spec", ["hf", "hf:20261120", "hf:2026-13-01", "arxiv:cs.CV", "hf:"])
def test_parse_named_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(ValueError, match="hf:YYYY-MM-DD"):
        parse_named(spec)
