"""Papers from files: JSON Lines and CSV, gzip, bad lines among good ones, and format sniffing."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import itertools
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from digest.errors import FormatError
from digest.sources.files import open_text, parse_csv, parse_jsonl, sniff_format
from digest.types import ParsedItem, RawPaper, Rejected

CORPUS = "data/arxiv_cs_cv_cl_2025-2026.jsonl.gz"

#: What files_papers.jsonl, files_papers.jsonl.gz and files_papers.csv all hold.
EXPECTED = [
    RawPaper(
        id="2504.05311",
        title="Dr Web: a modern, query-based web data retrieval engine",
        abstract="This article introduces the Data Retrieval Web Engine (also referred to as "
        "doctor web), a flexible and modular tool for extracting structured data from web pages "
        "using a simple query language. We discuss the engineering challenges addressed during "
        "its development, such as dynamic content handling and messy data extraction. "
        "Furthermore, we cover the steps for making the DR Web Engine public, highlighting its "
        "open source potential.",
        authors=("Ylli Prifti", "Alessandro Provetti", "Pasquale de Meo"),
        categories=("cs.DB", "cs.CL", "cs.IR"),
        date=dt.date(2025, 4, 9),
    ),
    RawPaper(
        id="2507.05297",
        title="Fuzzy Classification Aggregation for a Continuum of Agents",
        abstract="We prove that any optimal, independent, and zero unanimous fuzzy classification "
        "aggregation function of a continuum of individual classifications of $m\\ge 3$ objects "
        "into $2\\le p\\le m$ types must be a weighted arithmetic mean.",
        authors=("Zijun Meng",),
        categories=("cs.AI", "econ.TH"),
        date=dt.date(2025, 7, 9),
        url="https://arxiv.org/abs/2507.05297",
    ),
    RawPaper(
        id="2509.19329",
        title="How Model Size, Temperature, and Prompt Style Affect LLM-Human Assessment Score "
        "Alignment",
        abstract="We examined how model size, temperature, and prompt style affect Large Language "
        "Models' (LLMs) alignment within itself, between models, and with human in assessing "
        "clinical reasoning skills. Model size emerged as a key factor in LLM-human score "
        "alignment. Study highlights the importance of checking alignments across multiple "
        "levels.",
        authors=("Julie Jung", "Max Lu", "Sina Chole Benker", "Dogus Darici"),
        categories=("cs.CL", "stat.ME"),
        date=dt.date(2025, 9, 25),
    ),
    # Title only: no id, abstract, authors, categories or date.
    RawPaper(
        title="Building Task Bots with Self-learning for Enhanced Adaptability, Extensibility, "
        "and Factuality"
    ),
    # A non-arXiv id is kept exactly; no authors.
    RawPaper(
        id="doi:10.1000/xyz",
        title="Find the Leak, Fix the Split: Cluster-Based Method to Prevent Leakage in "
        "Video-Derived Datasets",
        abstract="We propose a cluster-based frame selection strategy to mitigate information "
        "leakage in video-derived frames datasets. By grouping visually similar frames before "
        "splitting into training, validation, and test sets, the method produces more "
        "representative, balanced, and reliable dataset partitions.",
        categories=("cs.CV",),
        date=dt.date(2025, 11, 19),
    ),
    # A numeric id becomes its string; a timestamp gives its date.
    RawPaper(
        id="12345",
        title="Estimating the Self-Consistency of LLMs",
        abstract="Systems often repeat the same prompt to large language models (LLMs) and "
        "aggregate responses to improve reliability.",
        authors=("Robert Nowak",),
        categories=("cs.AI",),
        date=dt.date(2025, 9, 25),
    ),
]


def _read(path: Path) -> list[ParsedItem]:
    with open_text(str(path)) as stream:
        if path.name.removesuffix(".gz").endswith(".csv"):
            return list(parse_csv(stream, origin=path.name))
        return list(parse_jsonl(stream, origin=path.name))


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


# --- the shared corpus ----------------------------------------------------------------------


def test_first_lines_of_the_shared_corpus(shared_dir: Path) -> None:
    path = shared_dir / CORPUS
    if not path.exists():
        pytest.skip(f"{path} is absent")
    with open_text(str(path)) as stream:
        items = list(parse_jsonl(itertools.islice(stream, 200), origin=str(path)))

    assert len(items) == 200
    papers = [p for p in items if isinstance(p, RawPaper)]
    assert len(papers) == 200
    first = papers[0]
    assert first.id == "2503.11731"
    assert first.title.startswith("Industrial-Grade Sensor Simulation via Gaussian Splatting")
    assert first.abstract.startswith("Sensor simulation is pivotal")
    assert first.authors[:2] == ("Xianming Zeng", "Sicong Du")
    assert len(first.authors) == 16
    assert first.categories == ("cs.CV", "cs.RO")
    assert first.date == dt.date(2025, 3, 18)
    assert first.url is None
    assert all(p.id and p.title and p.abstract and p.authors and p.categories for p in papers)
    assert all(p.date is not None and p.date.year == 2025 for p in papers)


# --- JSON Lines ----------------------------------------------------------------------------


def test_jsonl_fixture(data_dir: Path) -> None:
    assert _read(data_dir / "files_papers.jsonl") == EXPECTED


def test_gzip_is_read_transparently(data_dir: Path, tmp_path: Path) -> None:
    assert _read(data_dir / "files_papers.jsonl.gz") == EXPECTED
    # Detected by the magic bytes, not the name.
    disguised = tmp_path / "papers.jsonl"
    shutil.copy(data_dir / "files_papers.jsonl.gz", disguised)
    assert _read(disguised) == EXPECTED


def test_bad_lines_are_rejected_with_their_line_and_the_rest_read(data_dir: Path) -> None:
    items = _read(data_dir / "files_mixed.jsonl")

    papers = [p for p in items if isinstance(p, RawPaper)]
    assert papers == [EXPECTED[0], EXPECTED[3], EXPECTED[4]]
    rejected = {r.where: r.reason for r in items if isinstance(r, Rejected)}
    assert list(rejected) == [f"files_mixed.jsonl:{n}" for n in (3, 4, 5, 6, 7, 8)]
    assert rejected["files_mixed.jsonl:3"].startswith("invalid JSON")
    assert rejected["files_mixed.jsonl:4"] == "expected a JSON object, got a JSON array"
    assert rejected["files_mixed.jsonl:5"] == (
        "title is required: expected a non-empty string, missing"
    )
    assert rejected["files_mixed.jsonl:6"].startswith("authors must be a list of names")
    assert rejected["files_mixed.jsonl:7"] == (
        "bad date '25/09/2025': expected YYYY-MM-DD or an ISO timestamp"
    )
    assert "loses its trailing zero" in rejected["files_mixed.jsonl:8"]


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"title": ""}, "title is required"),
        ({"title": 7}, "title is required: expected a non-empty string, got int 7"),
        ({"title": "T", "abstract": 3}, "abstract must be a string"),
        ({"title": "T", "authors": ["A", None]}, "authors[1] must be a string"),
        ({"title": "T", "categories": {"cs": "CV"}}, "categories must be a list"),
        ({"title": "T", "date": 20250318}, "bad date 20250318"),
        ({"title": "T", "date": "2025-02-30"}, "bad date '2025-02-30'"),
        ({"title": "T", "id": ["2503.11731"]}, "id must be a string"),
        ({"title": "T", "url": 5}, "url must be a string"),
    ],
)
def test_each_bad_value_says_what_was_expected(record: dict[str, object], reason: str) -> None:
    lines = ['{"title": "Good"}', json.dumps(record)]
    good, bad = parse_jsonl(lines, origin="f.jsonl")
    assert good == RawPaper(title="Good")
    assert isinstance(bad, Rejected)
    assert bad.where == "f.jsonl:2"
    assert reason in bad.reason


def test_values_that_are_accepted() -> None:
    lines = [
        '{"title": "T", "id": null, "abstract": null, "authors": null, "date": null}',
        '{"title": "T", "date": "2025-03-18T23:30:00-05:00", "categories": "cs.CV, cs.AI"}',
        '{"title": "T", "id": "arXiv:2503.11731v2", "extra": {"ignored": true}}',
    ]
    assert list(parse_jsonl(lines, origin="f")) == [
        RawPaper(title="T"),
        RawPaper(title="T", date=dt.date(2025, 3, 18), categories=("cs.CV", "cs.AI")),
        RawPaper(title="T", id="arXiv:2503.11731v2"),
    ]


def test_blank_lines_are_skipped_and_counted() -> None:
    lines = ["\n", "  \n", '{"title": "T"}\n', "\n", "{oops\n"]
    items = list(parse_jsonl(lines, origin="f"))
    assert items[0] == RawPaper(title="T")
    assert isinstance(items[1], Rejected) and items[1].where == "f:5"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("title,abstract\nT,A\n", "not JSON Lines: line 1 is not JSON"),
        ("\n\n42\n", "not JSON Lines: line 3 is a JSON number"),
        ('[{"title": "T"}]\n', "line 1 is a JSON array, expected one JSON object per line"),
        ("<?xml version='1.0'?><feed/>\n", "not JSON Lines"),
    ],
)
def test_a_file_that_is_not_json_lines_at_all(text: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        list(parse_jsonl(io.StringIO(text), origin="f"))


def test_a_json_array_file_given_as_json_lines(data_dir: Path) -> None:
    with pytest.raises(FormatError, match=r"a JSON array is not JSON Lines") as info:
        _read(data_dir / "files_array.json")
    assert info.value.source == "files_array.json"


def test_binary_garbage_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.jsonl"
    path.write_bytes(bytes(range(128, 256)) * 8)
    with pytest.raises(FormatError, match="not UTF-8 text"):
        _read(path)


def test_a_truncated_gzip_raises_when_reached(tmp_path: Path) -> None:
    lines = [json.dumps({"id": f"2503.{i:05d}", "title": f"Paper {i}", "abstract": "x" * i})
             for i in range(2000)]
    whole = _gzip("\n".join(lines).encode())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(whole[: len(whole) * 3 // 4])

    seen: list[ParsedItem] = []
    with open_text(str(path)) as stream, pytest.raises(FormatError) as info:
        for item in parse_jsonl(stream, origin="cut.jsonl.gz"):
            seen.append(item)
    assert "truncated or corrupt gzip" in str(info.value)
    assert info.value.source == "cut.jsonl.gz"
    # Papers before the cut were read; none was turned into a rejection.
    assert len(seen) > 100
    assert all(isinstance(p, RawPaper) for p in seen)


def test_a_truncated_gzip_csv_raises_too(tmp_path: Path) -> None:
    rows = "id,title\n" + "".join(f"2503.{i:05d},Paper {i} {'x' * i}\n" for i in range(2000))
    whole = _gzip(rows.encode())
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(FormatError, match="truncated or corrupt gzip"):
        _read(path)


def test_reading_is_lazy() -> None:
    """A parser reads no further than asked: the 128 MB corpus streams in flat memory."""

    def lines() -> Iterator[str]:
        yield '{"title": "first"}'
        raise AssertionError("read too far")

    items = parse_jsonl(lines(), origin="f")
    assert next(items) == RawPaper(title="first")


# --- CSV ----------------------------------------------------------------------------------


def test_csv_with_the_same_records(data_dir: Path) -> None:
    assert _read(data_dir / "files_papers.csv") == EXPECTED


def test_csv_without_a_title_column(data_dir: Path) -> None:
    with pytest.raises(FormatError, match=r"has no 'title' column; found 'id', 'name'"):
        _read(data_dir / "files_no_title.csv")


def test_an_empty_csv() -> None:
    with pytest.raises(FormatError, match="the file is empty"):
        list(parse_csv(io.StringIO(""), origin="e.csv"))


def test_csv_bad_rows_name_the_line_they_start_on() -> None:
    text = (
        "title,abstract,date,authors\n"
        '"A paper","An abstract\nover two lines",2025-03-18,Marie Curie; Pierre Curie\n'
        ",no title,2025-03-18,\n"
        "\n"
        "T,A,2025-03-18\n"
        'T,A,18 March,"[""Ada""]"\n'
        ",,,\n"
        "Last,\"quoted, with comma\",,Ada Lovelace and Charles Babbage\n"
    )
    items = list(parse_csv(io.StringIO(text, newline=""), origin="p.csv"))

    assert items[0] == RawPaper(
        title="A paper",
        abstract="An abstract\nover two lines",
        authors=("Marie Curie", "Pierre Curie"),
        date=dt.date(2025, 3, 18),
    )
    assert items[1:4] == [
        Rejected("p.csv:4", "title is required: expected a non-empty string, got str ''"),
        Rejected("p.csv:6", "row has 3 fields, expected 4 as in the header"),
        Rejected("p.csv:7", "bad date '18 March': expected YYYY-MM-DD or an ISO timestamp"),
    ]
    assert items[4] == RawPaper(
        title="Last", abstract="quoted, with comma", authors=("Ada Lovelace", "Charles Babbage")
    )
    assert len(items) == 5


def test_csv_authors_that_look_like_json_must_be_json() -> None:
    text = 'title,authors\nT,"[""Ada"", "\n'
    (item,) = parse_csv(io.StringIO(text, newline=""), origin="p.csv")
    assert isinstance(item, Rejected)
    assert item.reason.startswith("authors looks like a JSON list but is not valid JSON")


def test_csv_an_oversized_field_is_rejected_and_reading_goes_on() -> None:
    text = "title,abstract\n" + f"Huge,{'x' * 200_000}\n" + "Next,fine\n"
    items = list(parse_csv(io.StringIO(text, newline=""), origin="p.csv"))
    assert isinstance(items[0], Rejected)
    assert items[0].where == "p.csv:2"
    assert "field larger than field limit" in items[0].reason
    assert items[1] == RawPaper(title="Next", abstract="fine")


def test_csv_an_oversized_field_before_a_quoted_line_break_is_one_rejection() -> None:
    # Found by test_fuzz_sources: the row went on past the line break inside its quotes, and
    # reading resumed there, rejecting the rest as a second, misplaced row.
    text = "title,abstract\n" + f"{'x' * 200_000},\"a\nb\"\n" + "Next,fine\n"
    items = list(parse_csv(io.StringIO(text, newline=""), origin="p.csv"))
    assert [(i.where, "field larger than field limit" in i.reason) for i in items[:1]
            if isinstance(i, Rejected)] == [("p.csv:2", True)]
    assert items[1:] == [RawPaper(title="Next", abstract="fine")]


def test_csv_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufefftitle,abstract\r\nT,A\r\n".encode())
    assert _read(path) == [RawPaper(title="T", abstract="A")]


# --- sniffing ----------------------------------------------------------------------------

ATOM_API = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom" '
    b'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">'
)
RSS = b'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'


@pytest.mark.parametrize(
    ("name", "head", "expected"),
    [
        ("papers.jsonl", b'{"id": "2503.11731"', "jsonl"),
        ("papers.jsonl.gz", _gzip(b'{"id": "2503.11731", "title": "T"}\n'), "jsonl"),
        ("papers.json", b'{"id": "2503.11731"', "jsonl"),
        ("papers.csv", b"id,title,abstract\n", "csv"),
        ("papers.csv.gz", _gzip(b"id,title,abstract\n"), "csv"),
        ("export", b'"ID","Title"\r\n', "csv"),
        ("000_61f72d6cdda0e5e0.txt", b"new\n\nGet trending papers", "hf-page"),
        ("saved", b"new\n\nGet trending papers", "hf-page"),
        ("hf_daily_2025-05-08.json", b'[\n  {\n    "paper": {\n', "hf-json"),
        ("daily", b'[{"paper":{"id":"2505.04002"', "hf-json"),
        ("weekend.json", b"[]", "hf-json"),
        ("cs.CV.xml", RSS, "arxiv-feed"),
        ("feed", b'<feed xmlns="http://www.w3.org/2005/Atom">', "arxiv-feed"),
        ("query.xml", ATOM_API, "arxiv-api"),
        ("query", _gzip(ATOM_API), "arxiv-api"),
        ("records.jsonl", b'[{"title": "T"}]', "jsonl"),  # parse_jsonl then explains
    ],
)
def test_sniff_format(name: str, head: bytes, expected: str) -> None:
    assert sniff_format(name, head) == expected


def test_sniff_the_shared_files(shared_dir: Path, data_dir: Path) -> None:
    def head(path: Path) -> bytes:
        with path.open("rb") as f:
            return f.read(4096)

    for page in (shared_dir / "data" / "hf_pages").glob("*.txt"):
        assert sniff_format(page.name, head(page)) == "hf-page"
    corpus = shared_dir / CORPUS
    if corpus.exists():
        assert sniff_format(corpus.name, head(corpus)) == "jsonl"
    daily = data_dir / "hf_daily_2025-05-08.json"
    assert sniff_format(daily.name, head(daily)) == "hf-json"


def test_sniff_gives_up_with_a_format_error() -> None:
    with pytest.raises(FormatError, match="cannot tell the format"):
        sniff_format("notes", b"Dear diary")
