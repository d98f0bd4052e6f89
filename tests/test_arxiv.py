"""arXiv sources: real recorded API responses and listing feeds built from real papers."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from digest.errors import ArxivApiError, FetchError, FormatError
from digest.http import HttpClient, Validators
from digest.sources.arxiv import (
    API_URL,
    ApiQuery,
    ApiSpec,
    ListingSpec,
    date_range_query,
    fetch_api,
    fetch_listing,
    listing_url,
    parse_api,
    parse_listing,
    parse_named,
    split_authors,
)
from digest.types import ParsedItem, RawPaper, Rejected

JUN_8 = dt.date(2026, 6, 8)

# --- helpers ------------------------------------------------------------------------------------


def recorded(shared_dir: Path, name: str) -> tuple[str, int, bytes]:
    """A recorded API response: (url, status, body bytes as the server sent them).

    The recorder decoded the UTF-8 body as Latin-1 before saving it ("Ramírez" is stored as
    "RamÃ­rez"); encoding back to Latin-1 restores the exact bytes.
    """
    (path,) = (shared_dir / "fixtures" / "arxiv_api").glob(f"{name}_*.json")
    record = json.loads(path.read_text(encoding="utf-8"))
    return record["url"], record["status_code"], record["body"].encode("latin-1")


def papers(items: list[ParsedItem]) -> list[RawPaper]:
    assert all(isinstance(item, RawPaper) for item in items), items
    return [item for item in items if isinstance(item, RawPaper)]


def query_of(url: str | httpx.URL) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(str(url)).query, keep_blank_values=True))


class FakeTime:
    """A clock that moves only when slept on; records every sleep."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def client(handler: Callable[[httpx.Request], httpx.Response], time: FakeTime) -> HttpClient:
    return HttpClient(
        contact="tests@example.org",
        transport=httpx.MockTransport(handler),
        clock=time.clock,
        wall_clock=time.clock,
        sleep=time.sleep,
    )


def serve_recorded(
    shared_dir: Path, requests: list[httpx.Request]
) -> Callable[..., httpx.Response]:
    """A handler answering each request with the recording whose query parameters match."""
    by_query = {}
    for path in (shared_dir / "fixtures" / "arxiv_api").glob("*.json"):
        url, status, body = recorded(shared_dir, path.name.rsplit("_", 1)[0])
        by_query[tuple(sorted(query_of(url).items()))] = (status, body)

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        key = tuple(sorted(query_of(request.url).items()))
        if key not in by_query:
            return httpx.Response(500, text=f"no recording for {dict(key)}")
        status, body = by_query[key]
        return httpx.Response(
            status, content=body, headers={"content-type": "application/atom+xml"}
        )

    return handler


# --- the API: recorded responses ----------------------------------------------------------------


def test_api_single_paper_titled_zero(shared_dir: Path) -> None:
    _, _, body = recorded(shared_dir, "id_2104.12255v1_s0_m100")
    page = parse_api(body, origin="api")
    assert (page.total_results, page.start_index, page.items_per_page) == (1, 0, 100)
    (paper,) = papers(page.items)
    assert paper.title == "0"  # a real title, not a missing one
    assert paper.id == "2104.12255v1"
    assert paper.authors == ("Quan Thoi Minh Nguyen",)
    assert paper.categories == ("cs.CR",)
    assert paper.date == dt.date(2021, 4, 20)
    assert paper.url == "https://arxiv.org/abs/2104.12255v1"
    assert paper.abstract.startswith("What is the funniest number in cryptography? 0.")
    assert paper.abstract.endswith("$35,000 in total for the reported bugs.")
    assert not paper.update_only


def test_api_two_ids_of_which_one_exists(shared_dir: Path) -> None:
    _, _, body = recorded(shared_dir, "id_0808.05394_1707.08567_s0_m100")
    page = parse_api(body, origin="api")
    assert page.total_results == 1
    (paper,) = papers(page.items)
    assert paper.id == "1707.08567v1"
    assert paper.title == (
        "Proceedings of Workshop AEW10: Concepts in Information Theory and Communications"
    )
    assert len(paper.authors) == 34
    assert paper.authors[:2] == ("Kees A. Schouhamer Immink", "Stan Baggen")
    assert paper.authors[-1] == "Hirosuke Yamamoto"
    assert paper.categories == ("cs.IT",)
    assert paper.date == dt.date(2017, 7, 27)


def test_api_old_style_id(shared_dir: Path) -> None:
    _, _, body = recorded(shared_dir, "id_astro-ph_0601001_s0_m100")
    (paper,) = papers(parse_api(body, origin="api").items)
    assert paper.id == "astro-ph/0601001v1"
    assert paper.url == "https://arxiv.org/abs/astro-ph/0601001v1"
    assert paper.title.startswith("Frequency of Hot Jupiters and Very Hot Jupiters")
    assert paper.authors == ("Andrew Gould", "Susan Dorsher", "B. Scott Gaudi", "Andrzej Udalski")
    assert paper.categories == ("astro-ph",)
    assert paper.date == dt.date(2006, 1, 2)
    # XML entities are decoded, leading white space of the summary dropped.
    assert paper.abstract.startswith("We derive the frequencies of hot Jupiters")
    assert "Gould & Morgan (2003)" in paper.abstract
    assert "V_max<17.5" in paper.abstract


def test_api_search_pages(shared_dir: Path) -> None:
    _, _, first = recorded(shared_dir, "q_testing_s0_m10")
    _, _, second = recorded(shared_dir, "q_testing_s10_m10")
    page1, page2 = parse_api(first, origin="api"), parse_api(second, origin="api")
    assert (page1.total_results, page1.start_index, page1.items_per_page) == (214881, 0, 10)
    assert (page2.total_results, page2.start_index, page2.items_per_page) == (214881, 10, 10)
    one, two = papers(page1.items), papers(page2.items)
    assert [p.id for p in one][:3] == ["2202.12139v1", "2405.13786v1", "2005.14124v2"]
    assert [p.id for p in two][-1] == "2202.06271v1"
    assert one[1].authors == ("Aurora Ramírez", "Mario Berrios", "José Raúl Romero", "Robert Feldt")
    assert one[2].categories == ("cs.SE", "cs.CR", "cs.LG")
    # The primary category comes first even when it is not the first <category>.
    assert two[0].categories == ("math.ST", "cs.IT", "stat.ML")
    assert two[0].date == dt.date(2024, 3, 25)
    assert "ChatGPT and Software Testing Education: Promises & Perils" in one[4].title
    assert "$Î±$" not in two[0].abstract and "$α$" in two[0].abstract


def test_api_error_feed_raises_with_arxivs_message(shared_dir: Path) -> None:
    url, status, body = recorded(shared_dir, "id_abc_s0_m100")
    assert status == 400
    with pytest.raises(ArxivApiError) as caught:
        parse_api(body, origin=url)
    assert caught.value.message == "incorrect id format for abc"
    assert caught.value.source == url


def test_api_body_that_is_not_a_feed() -> None:
    with pytest.raises(FormatError, match="not an RSS/Atom feed"):
        parse_api(b'{"error": "rate limited"}', origin="api")


# --- the API: fetching --------------------------------------------------------------------------


def test_fetch_api_pages_through_a_search_politely(shared_dir: Path) -> None:
    requests: list[httpx.Request] = []
    time = FakeTime()
    http = client(serve_recorded(shared_dir, requests), time)
    query = ApiQuery(search_query="testing", page_size=10, max_results=20)

    items = list(fetch_api(http, query, source="arxiv-api:testing"))

    assert len(papers(items)) == 20
    assert [query_of(r.url)["start"] for r in requests] == ["0", "10"]
    assert query_of(requests[0].url) == {
        "search_query": "testing",
        "id_list": "",
        "sortBy": "relevance",
        "sortOrder": "descending",
        "start": "0",
        "max_results": "10",
    }
    assert time.sleeps == [3.0]  # arXiv asks for three seconds between requests


def test_fetch_api_id_list_asks_what_was_recorded(shared_dir: Path) -> None:
    requests: list[httpx.Request] = []
    http = client(serve_recorded(shared_dir, requests), FakeTime())
    query = ApiQuery(id_list=("0808.05394", "1707.08567"))

    (paper,) = papers(list(fetch_api(http, query, source="arxiv-api:id")))

    assert paper.id == "1707.08567v1"
    (request,) = requests
    assert str(request.url).startswith(API_URL)
    assert query_of(request.url)["id_list"] == "0808.05394,1707.08567"


def test_fetch_api_error_feed(shared_dir: Path) -> None:
    requests: list[httpx.Request] = []
    http = client(serve_recorded(shared_dir, requests), FakeTime())
    with pytest.raises(ArxivApiError) as caught:
        list(fetch_api(http, ApiQuery(id_list=("abc",)), source="arxiv-api:id:abc"))
    assert str(caught.value) == "arxiv-api:id:abc: incorrect id format for abc"
    assert caught.value.status == 400
    assert len(requests) == 1  # an error feed is not retried


EMPTY_API_PAGE = b"""<?xml version='1.0' encoding='UTF-8'?>
<feed xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/"
      xmlns="http://www.w3.org/2005/Atom">
  <id>https://arxiv.org/api/empty</id>
  <title>arXiv Query</title>
  <updated>2026-11-21T00:00:00Z</updated>
  <opensearch:itemsPerPage>100</opensearch:itemsPerPage>
  <opensearch:totalResults>{total}</opensearch:totalResults>
  <opensearch:startIndex>{start}</opensearch:startIndex>
</feed>
"""


def empty_page(total: int, start: int) -> bytes:
    return EMPTY_API_PAGE.replace(b"{total}", b"%d" % total).replace(b"{start}", b"%d" % start)


def test_fetch_api_date_range_sorts_by_submission() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, content=empty_page(0, 0))

    query = ApiQuery.date_range("cs.CV", dt.date(2026, 11, 1), dt.date(2026, 11, 20))
    assert list(fetch_api(client(handler, FakeTime()), query, source="backfill")) == []
    (request,) = requests
    assert query_of(request.url) == {
        "search_query": "cat:cs.CV AND submittedDate:[202611010000 TO 202611202359]",
        "id_list": "",
        "sortBy": "submittedDate",
        "sortOrder": "ascending",
        "start": "0",
        "max_results": "100",
    }


def test_fetch_api_stops_at_an_empty_page(shared_dir: Path) -> None:
    _, _, first = recorded(shared_dir, "q_testing_s0_m10")
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        start = int(query_of(request.url)["start"])
        # arXiv sometimes answers a page past the first with no entries although it counts more.
        return httpx.Response(200, content=first if start == 0 else empty_page(214881, start))

    query = ApiQuery(search_query="testing", page_size=10)
    items = list(fetch_api(client(handler, FakeTime()), query, source="s"))
    assert len(items) == 10
    assert len(requests) == 2


def test_fetch_api_refuses_a_server_that_ignores_start(shared_dir: Path) -> None:
    _, _, first = recorded(shared_dir, "q_testing_s0_m10")
    http = client(lambda request: httpx.Response(200, content=first), FakeTime())
    with pytest.raises(FormatError, match="asked for results from 10"):
        list(fetch_api(http, ApiQuery(search_query="testing", page_size=10), source="s"))


def test_api_query_checks_its_fields() -> None:
    with pytest.raises(ValueError, match="either id_list or search_query"):
        ApiQuery()
    with pytest.raises(ValueError, match="either id_list or search_query"):
        ApiQuery(id_list=("2104.12255",), search_query="cat:cs.CV")
    with pytest.raises(ValueError, match="page_size"):
        ApiQuery(search_query="x", page_size=5000)
    with pytest.raises(ValueError, match="sort_by"):
        ApiQuery(search_query="x", sort_by="date")


def test_date_range_query() -> None:
    nov_1, nov_20 = dt.date(2026, 11, 1), dt.date(2026, 11, 20)
    assert date_range_query("cs.CV", nov_1, nov_20) == (
        "cat:cs.CV AND submittedDate:[202611010000 TO 202611202359]"
    )
    assert date_range_query(["cs.CV", "cs.LG"], nov_1, nov_1) == (
        "(cat:cs.CV OR cat:cs.LG) AND submittedDate:[202611010000 TO 202611012359]"
    )
    with pytest.raises(ValueError, match="before it starts"):
        date_range_query("cs.CV", nov_20, nov_1)


# --- the listing feed ---------------------------------------------------------------------------


def test_rss_listing(data_dir: Path) -> None:
    body = (data_dir / "arxiv_rss_cs.CV.xml").read_bytes()
    items = papers(list(parse_listing(body, origin="arxiv:cs.CV")))

    assert [(p.id, p.update_only) for p in items] == [
        ("2606.06950v1", False),  # new
        ("2606.06696v1", False),  # new
        ("2606.07053v1", False),  # new
        ("2606.07102v1", False),  # new
        ("2606.06498v1", False),  # cross
        ("2606.07033v1", False),  # cross
        ("2503.15457v2", True),  # replace
        ("2503.12229v2", True),  # replace-cross
    ]
    assert {p.date for p in items} == {JUN_8}

    first = items[0]
    assert first.title == (
        "When is 3D Worth It? A Resource-Performance Frontier for CNNs and Transformers in Lung CT"
    )
    assert first.url == "https://arxiv.org/abs/2606.06950"
    assert first.categories == ("cs.CV", "cs.AI")
    # dc:creator is one comma-joined string, here with an "and" before the last name.
    assert first.authors[-3:] == ("Jonathan Bona", "Donald Johann Jr.", "Fred Prior")
    assert len(first.authors) == 8
    assert first.abstract.startswith("Three-dimensional models are widely assumed preferable")
    assert first.abstract.endswith("than full 3D representations.")

    # Titles come as sent: the hard line break and LaTeX stay for digest.text to clean.
    assert items[1].title == (
        "MMBU: A Massive Multi-modal Biomedical Understanding Benchmark\n"
        "  to Probe the Perception Capabilities of Vision-Language Models"
    )
    assert items[6].title == (
        "Di$\\mathtt{[M]}$O: Distilling Masked Diffusion Models into One-step Generator"
    )
    assert "Stéphane Lathuilière" in items[6].authors
    assert "an AP of $64.33$ on Human-Art, representing a $30\\%$ improvement" in items[2].abstract
    assert items[4].categories == ("cs.GR", "cs.CV")  # a cross-list: cs.CV is not primary


def test_atom_listing_reads_like_the_rss_one(data_dir: Path) -> None:
    rss = papers(list(parse_listing((data_dir / "arxiv_rss_cs.CV.xml").read_bytes(), origin="r")))
    atom = papers(list(parse_listing((data_dir / "arxiv_atom_cs.CV.xml").read_bytes(), origin="a")))
    assert atom[:8] == rss
    absonly = atom[8]
    assert (absonly.id, absonly.update_only, absonly.date) == ("2504.13143v3", True, JUN_8)
    assert absonly.title.startswith("$\\texttt{Complex-Edit}$: CoT-Like Instruction Generation")


def test_malformed_items_are_rejected_and_the_rest_read(data_dir: Path) -> None:
    body = (data_dir / "arxiv_rss_malformed.xml").read_bytes()
    items = list(parse_listing(body, origin="arxiv:cs.CV"))
    assert [type(item) for item in items] == [RawPaper, Rejected, Rejected, RawPaper]
    assert items[1] == Rejected("arxiv:cs.CV entry 1", "2606.06850v1 has no title")
    assert isinstance(items[2], Rejected)
    assert items[2].where == "arxiv:cs.CV entry 2"
    assert "no arXiv id" in items[2].reason
    assert [p.id for p in papers([items[0], items[3]])] == ["2606.06714v1", "2606.07179v1"]


def test_weekend_feed_is_empty(data_dir: Path) -> None:
    body = (data_dir / "arxiv_rss_empty.xml").read_bytes()
    assert list(parse_listing(body, origin="arxiv:cs.CV")) == []


@pytest.mark.parametrize(
    "body",
    [
        b"<!DOCTYPE html><html><head><title>503</title></head><body><p>Down</p></body></html>",
        b'{"papers": []}',
        b"\x00\xffnot xml at all",
        b"",
    ],
)
def test_a_body_that_is_not_a_feed_raises_at_once(body: bytes) -> None:
    with pytest.raises(FormatError, match=r"^arxiv:cs\.CV: not an RSS/Atom feed"):
        parse_listing(body, origin="arxiv:cs.CV")


def test_text_between_angle_brackets_survives() -> None:
    # feedparser reads RSS text as HTML by default and would drop "<0.05 and q>"; arXiv escapes
    # "<" at the XML level, so the decoded text is the abstract.
    body = b"""<?xml version='1.0' encoding='UTF-8'?>
<rss xmlns:arxiv="http://arxiv.org/schemas/atom" version="2.0"><channel>
<title>cs.CV updates on arXiv.org</title><pubDate>Mon, 08 Jun 2026 00:00:00 -0400</pubDate>
<item><title>A &lt;b&gt; tag &amp; more</title>
<description>arXiv:2606.00001v1 Announce Type: new
Abstract: We find p&lt;0.05 and q&gt;1 &lt;script&gt;x&lt;/script&gt; &amp;amp;</description>
<guid isPermaLink="false">oai:arXiv.org:2606.00001v1</guid>
<arxiv:announce_type>new</arxiv:announce_type></item></channel></rss>"""
    (paper,) = papers(list(parse_listing(body, origin="o")))
    assert paper.title == "A <b> tag & more"
    assert paper.abstract == "We find p<0.05 and q>1 <script>x</script> &amp;"
    assert paper.date == JUN_8  # from the channel when the item has no pubDate
    assert paper.url == "https://arxiv.org/abs/2606.00001"


@pytest.mark.parametrize(
    ("announce", "guid", "update_only"),
    [("", "2606.00001v1", False), ("", "2501.00001v3", True), ("surprise", "2606.00001v1", False)],
)
def test_missing_announce_type_is_judged_by_version(
    announce: str, guid: str, update_only: bool
) -> None:
    element = f"<arxiv:announce_type>{announce}</arxiv:announce_type>" if announce else ""
    body = f"""<?xml version='1.0' encoding='UTF-8'?>
<rss xmlns:arxiv="http://arxiv.org/schemas/atom" version="2.0"><channel><title>t</title>
<item><title>T</title><description>Abstract: A.</description>
<guid>oai:arXiv.org:{guid}</guid>{element}</item></channel></rss>""".encode()
    (paper,) = papers(list(parse_listing(body, origin="o")))
    assert paper.update_only is update_only
    assert paper.abstract == "Abstract: A."  # no arXiv header: the description is kept whole


# --- fetching the listing -----------------------------------------------------------------------


def test_listing_url() -> None:
    assert listing_url(["cs.CV", "cs.LG"]) == "https://rss.arxiv.org/rss/cs.CV+cs.LG"
    assert listing_url(["cs.CV"], atom=True) == "https://rss.arxiv.org/atom/cs.CV"
    with pytest.raises(ValueError, match="not an arXiv category"):
        listing_url(["cs.CV/../x"])


def test_fetch_listing_conditionally(data_dir: Path) -> None:
    body = (data_dir / "arxiv_rss_cs.CV.xml").read_bytes()
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.headers.get("if-none-match") == '"day-1"':
            return httpx.Response(304)
        return httpx.Response(200, content=body, headers={"etag": '"day-1"'})

    http = client(handler, FakeTime())
    fetched, items = fetch_listing(http, ["cs.CV"], validators=None, source="arxiv:cs.CV")
    assert fetched.validators == Validators(etag='"day-1"')
    assert len(papers(list(items))) == 8
    assert str(seen[0].url) == "https://rss.arxiv.org/rss/cs.CV"

    again, items = fetch_listing(
        http, ["cs.CV"], validators=fetched.validators, source="arxiv:cs.CV"
    )
    assert again.not_modified
    assert list(items) == []


def test_fetch_listing_error_names_the_source() -> None:
    http = client(lambda request: httpx.Response(404), FakeTime())
    expected = r"^arxiv:cs\.XX \(https://rss\.arxiv\.org/rss/cs\.XX\): HTTP 404"
    with pytest.raises(FetchError, match=expected):
        fetch_listing(http, ["cs.XX"], source="arxiv:cs.XX")


# --- named sources and authors ------------------------------------------------------------------


def test_parse_named() -> None:
    assert parse_named("arxiv:cs.CV+cs.LG") == ListingSpec(("cs.CV", "cs.LG"))
    listing = parse_named("arxiv:cs.CV")
    assert isinstance(listing, ListingSpec)
    assert listing.url == "https://rss.arxiv.org/rss/cs.CV"
    assert parse_named("arxiv-api:cs.CV:2026-11-01..2026-11-20") == ApiSpec(
        ApiQuery.date_range("cs.CV", dt.date(2026, 11, 1), dt.date(2026, 11, 20))
    )
    assert parse_named("arxiv-api:id:2104.12255,astro-ph/0601001v1") == ApiSpec(
        ApiQuery(id_list=("2104.12255", "astro-ph/0601001v1"))
    )
    one_day = parse_named("arxiv-api:astro-ph.GA:2026-11-01")
    assert isinstance(one_day, ApiSpec)
    assert one_day.query.search_query == (
        "cat:astro-ph.GA AND submittedDate:[202611010000 TO 202611012359]"
    )


@pytest.mark.parametrize(
    "spec",
    [
        "arxiv:",
        "arxiv",
        "hf:2026-11-01",
        "arxiv:cs CV",
        "arxiv-api:cs.CV",
        "arxiv-api:cs.CV:2026-11-20..2026-11-01",
        "arxiv-api:cs.CV:yesterday",
        "arxiv-api:id:2104.12255,abc",
        "arxiv-api:id:",
    ],
)
def test_parse_named_rejects_with_the_expected_forms(spec: str) -> None:
    with pytest.raises(ValueError, match=r"expected arxiv:CAT\[\+CAT\.\.\.\]"):
        parse_named(spec)


@pytest.mark.parametrize(
    ("creator", "names"),
    [
        ("Antonin Monteil, Paul Pegon", ("Antonin Monteil", "Paul Pegon")),
        ("Alice Smith and Bob Lee", ("Alice Smith", "Bob Lee")),
        ("A One, B Two, and C Three", ("A One", "B Two", "C Three")),
        ("John Smith, Jr., Ann Lee", ("John Smith Jr.", "Ann Lee")),
        ("Anand Kumar,\n  Brandon Amos", ("Anand Kumar", "Brandon Amos")),
        ("", ()),
    ],
)
def test_split_authors(creator: str, names: tuple[str, ...]) -> None:
    assert split_authors(creator) == names
