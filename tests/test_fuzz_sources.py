"""Sources fuzzed: real records and recorded bodies, mutated, through the real parsers and the
real ingest into a SQLite store.

JSON Lines and CSV records from the bundled sample, the arXiv RSS and Atom fixtures, recorded
arXiv API responses and the Hugging Face daily papers fixture have fields dropped, retyped and
replaced, entries emptied, lines cut and junk put between them. Whatever happens:

- nothing but a documented `digest.errors` error leaves a parser, and `ingest` itself never
  raises: a source either lands with its bad items rejected, or fails whole with a message;
- every rejection names its item (``path:line``, ``source entry N``) and what was expected,
  and only mutated items are rejected;
- the unmutated items of the same input are all stored, and nothing is silently dropped
  (new + updated + unchanged + skipped + rejected is the number of items).

The network is faked at the `HttpClient` transport, as in test_arxiv.py and test_hf.py.
Examples are derandomized; ``DIGEST_LONG_TESTS=1`` runs many more.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stores import Backend, sqlite_only

from digest.errors import DigestError
from digest.http import HttpClient
from digest.ingest import IngestContext, Source, ingest
from digest.sources import arxiv, hf
from digest.sources.resolve import (
    ArxivApiSource,
    ArxivListingSource,
    FileSource,
    HfDailySource,
)
from digest.store import Store
from digest.text import clean, parse_arxiv_id
from digest.types import RawPaper, Rejected, SourceResult

LONG = bool(os.environ.get("DIGEST_LONG_TESTS"))
#: The fuzzing runs on SQLite: what it finds is in the parsers, and 20 examples on PostgreSQL as
#: well cost 15 s and found nothing more. With DIGEST_LONG_TESTS=1, the tests whose text reaches
#: the store with any character (JSON Lines, CSV, HF's JSON) run on both backends: PostgreSQL's
#: text refuses a NUL, which SQLite takes (test_what_fuzzing_found keeps that case on both).
SQLITE_ONLY = sqlite_only
TEXT_TO_STORE = (lambda test: test) if LONG else sqlite_only
FUZZ = settings(
    max_examples=400 if LONG else 20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
NOW = dt.datetime(2026, 6, 8, 12, 0, tzinfo=dt.UTC)
TODAY = NOW.date()
#: What a rejection says: what was wrong, in terms of what was expected.
REASON = re.compile(r"expected|must be|required|not valid|unreadable|has no title|no arXiv id")

with gzip.open(ROOT / "digest" / "data" / "sample.jsonl.gz", "rt", encoding="utf-8") as _f:
    RECORDS: list[dict[str, Any]] = [json.loads(next(_f)) for _ in range(40)]


# -- junk -----------------------------------------------------------------------------------------

HOSTILE = [
    "", " ", "\t\n", "<script>alert(1)</script>", "{{ 7*7 }}{% if 1 %}x{% endif %}",
    "[x](javascript:alert(1))", "\u202eevil\u202c", "zero\u200bwidth", "\ufeff", "a\x00b",
    "\ud800", "x\udfff", "😀", "2503.1173", "2503.11731v99999999999999999999", "arXiv:",
    "oai:arXiv.org:", "9999-99-99", "2026-02-30", "2026-06-08T25:00:00", "-1", "NaN",
    "a;b and c", '["cs.CV", 1]', "[not json", "Mon, 08 Jun 99999 00:00:00 -0400",
    "x" * 100_000,
]
texts = st.one_of(st.text(max_size=40), st.sampled_from(HOSTILE))
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-(10**30), 10**30),
              st.floats(), texts),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=6,
)
# Text an XML document can hold: its mutations stay well-formed, so they stay in their entry.
xml_chars = st.one_of(
    st.characters(min_codepoint=0x20, max_codepoint=0xD7FF),
    st.sampled_from("\t\n\r"),
    st.characters(min_codepoint=0xE000, max_codepoint=0xFFFD),
    st.characters(min_codepoint=0x10000),
)
# Long, but not 100 KB: feedparser looks for an email address in an author's text with a regex
# that is quadratic in its length (100 KB of letters in an <author> take minutes).
xml_texts = st.one_of(
    st.text(xml_chars, max_size=40),
    st.sampled_from([h[:3000] for h in HOSTILE if not re.search("[\x00-\x08\ud800-\udfff]", h)]),
)


def dumps(value: Any, ascii_only: bool) -> str:
    """JSON; non-ASCII as is unless asked, or unless it is a lone surrogate (which UTF-8 cannot
    carry: only the escape ``\\ud800`` can)."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(value)
    return text


def lines_of(text: str) -> list[str]:
    """Lines as a file opened with ``newline=""`` yields them (the way FileSource reads)."""
    return io.StringIO(text, newline="").readlines()


# -- the store and the network ------------------------------------------------------------------


@dataclass(frozen=True)
class Empty:
    """A migrated empty store, copied for each example (migrating costs more than copying)."""

    backend: Backend
    url: str


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory: pytest.TempPathFactory, module_backend: Backend) -> Empty:
    url = module_backend.new_url(tmp_path_factory.mktemp("db"), "empty")
    Store.open(url).close()
    return Empty(module_backend, url)


@contextmanager
def fresh_store(empty_db: Empty, tmp_path: Path) -> Iterator[tuple[Store, Path]]:
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    with Store.open(empty_db.backend.clone(empty_db.url, folder)) as store:
        yield store, folder


def run(store: Store, source: Source, http: HttpClient | None = None) -> SourceResult:
    (result,) = ingest(store, [source], IngestContext(now=NOW, today=TODAY, http=http,
                                                      store=store))
    return result


def client(answer: Callable[[httpx.Request], httpx.Response]) -> HttpClient:
    return HttpClient(transport=httpx.MockTransport(answer), sleep=lambda s: None,
                      politeness={})


def check_result(result: SourceResult, items: int, mutated_where: set[str]) -> None:
    """Nothing silently dropped; every rejection is of a mutated item and says what was wrong."""
    assert result.error is None, result.error
    assert result.new + result.updated + result.unchanged + result.skipped + len(
        result.rejected
    ) == items, result
    for rejected in result.rejected:
        assert rejected.where in mutated_where, (rejected, sorted(mutated_where))
        assert REASON.search(rejected.reason), rejected


def check_stored(store: Store, paper: RawPaper) -> None:
    assert paper.id is not None
    parsed = parse_arxiv_id(paper.id)
    found = store.get_paper(parsed[0] if parsed else paper.id.strip())
    assert found is not None, f"good item {paper.id} was not stored"
    # A NUL is stored as U+FFFD (digest.ingest: PostgreSQL's text cannot hold one).
    assert found.title == clean(paper.title.replace("\x00", "\ufffd"))
    assert found.abstract == clean(paper.abstract.replace("\x00", "\ufffd"))


def check_nothing_stored(store: Store, result: SourceResult) -> None:
    assert result.error, "a failed source says why"
    assert "Traceback" not in result.error
    assert result.new == result.updated == result.unchanged == 0
    for record in RECORDS:
        assert store.get_paper(record["id"]) is None


# -- JSON Lines and CSV -------------------------------------------------------------------------

FIELDS = ["id", "title", "abstract", "authors", "categories", "date", "url"]


@st.composite
def record_mutation(draw: st.DrawFn) -> Callable[[dict[str, Any]], dict[str, Any]]:
    field = draw(st.sampled_from([*FIELDS, "extra"]))
    if draw(st.booleans()) and field != "extra":
        return lambda rec: {k: v for k, v in rec.items() if k != field}
    value = draw(json_values)
    if field in ("authors", "categories") and draw(st.booleans()):
        value = [draw(json_values), *RECORDS[0][field]]  # a list with one wrong item
    return lambda rec: {**rec, field: value}


@st.composite
def jsonl_case(draw: st.DrawFn) -> tuple[str, list[dict[str, Any] | None]]:
    """JSON Lines text, and for each line the record it holds when left unmutated."""
    start = draw(st.integers(0, len(RECORDS) - 8))
    records = RECORDS[start : start + draw(st.integers(2, 8))]
    ascii_only = draw(st.booleans())
    lines: list[tuple[str, dict[str, Any] | None]] = [(dumps(records[0], ascii_only), records[0])]
    for rec in records[1:]:
        mutations = draw(st.lists(record_mutation(), max_size=3))
        if not mutations:
            lines.append((dumps(rec, ascii_only), rec))
            continue
        for mutate in mutations:
            rec = mutate(rec)
        lines.append((dumps(rec, ascii_only), None))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(1, len(lines)))
        kind = draw(st.sampled_from(["json", "text", "cut", "blank", "copy"]))
        if kind == "json":
            junk = dumps(draw(json_values), ascii_only)
        elif kind == "text":
            junk = draw(texts).replace("\ud800", "").replace("\udfff", "")
        elif kind == "cut":
            line = lines[at - 1][0]
            junk = line[: draw(st.integers(0, max(len(line) - 1, 0)))]  # it may be blank
        elif kind == "blank":
            junk = draw(st.sampled_from(["", " ", "\t", "\x1c"]))
        else:
            junk = lines[at - 1][0]
        lines.insert(at, (junk, None))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    return newline.join(text for text, _ in lines) + newline, [rec for _, rec in lines]


def file_lines(text: str, goods: list[dict[str, Any] | None]) -> Any:
    """(line number, text, good record or None) of each line as read back."""
    # Junk text may hold line breaks of its own: number lines as the reader does, and tie a
    # good record to the line that is exactly its JSON.
    good_by_text = {dumps(g, True): g for g in goods if g} | {
        dumps(g, False): g for g in goods if g
    }
    for n, line in enumerate(lines_of(text), start=1):
        body = line.rstrip("\r\n")
        yield n, line, good_by_text.get(body)


@TEXT_TO_STORE
@FUZZ
@given(case=jsonl_case(), gz=st.booleans())
def test_jsonl_records_mutated(empty_db: Empty, tmp_path: Path,
                               case: tuple[str, list[Any]], gz: bool) -> None:
    text, goods = case
    with fresh_store(empty_db, tmp_path) as (store, folder):
        path = folder / ("papers.jsonl.gz" if gz else "papers.jsonl")
        data = text.encode("utf-8")
        path.write_bytes(gzip.compress(data) if gz else data)
        result = run(store, FileSource(str(path)))

        read = list(file_lines(text, goods))
        counted = [(n, good) for n, line, good in read if line and not line.isspace()]
        mutated = {f"{path}:{n}" for n, good in counted if good is None}
        check_result(result, len(counted), mutated)
        for good in goods:
            if good is not None:
                check_stored(store, RawPaper(id=good["id"], title=good["title"],
                                             abstract=good["abstract"]))


@SQLITE_ONLY
@FUZZ
@given(first=st.one_of(json_values.filter(lambda v: not isinstance(v, dict)).map(json.dumps),
                       texts.filter(lambda t: t.replace("\ufeff", "").strip() != ""
                                    and not t.lstrip().startswith("{"))
                       .map(lambda t: t.replace("\ud800", "?").replace("\udfff", "?"))))
def test_a_first_line_that_is_no_json_object_is_no_json_lines(
    empty_db: Empty, tmp_path: Path, first: str
) -> None:
    with fresh_store(empty_db, tmp_path) as (store, folder):
        path = folder / "papers.jsonl"
        good = "".join(json.dumps(r) + "\n" for r in RECORDS[:3])
        path.write_text(first.replace("\n", " ").replace("\r", " ") + "\n" + good,
                        encoding="utf-8")
        result = run(store, FileSource(str(path), "jsonl"))
        check_nothing_stored(store, result)
        assert result.error and result.error.startswith("not JSON Lines: line 1 ")


@SQLITE_ONLY
@FUZZ
@given(cut=st.floats(0, 1), junk=st.binary(min_size=1, max_size=4), at=st.floats(0, 1),
       kind=st.sampled_from(["truncate-gzip", "flip-gzip", "bad-utf8"]))
def test_unreadable_files_store_nothing(empty_db: Empty, tmp_path: Path, cut: float,
                                        junk: bytes, at: float, kind: str) -> None:
    plain = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in RECORDS[:10]).encode()
    compressed = gzip.compress(plain)
    with fresh_store(empty_db, tmp_path) as (store, folder):
        if kind == "truncate-gzip":
            path, data = folder / "p.jsonl.gz", compressed[: int(len(compressed) * cut)]
        elif kind == "flip-gzip":
            i = 10 + int((len(compressed) - 18) * at)  # inside the deflate stream
            data = compressed[:i] + bytes([compressed[i] ^ (junk[0] or 1)]) + compressed[i + 1:]
            path = folder / "p.jsonl.gz"
        else:
            i = int(len(plain) * at)
            data = plain[:i] + b"\xff" + junk + plain[i:]
            path = folder / "p.jsonl"
        path.write_bytes(data)
        result = run(store, FileSource(str(path), "jsonl"))
        if result.error is None:
            # The damage left readable JSON Lines: every line still stored or rejected.
            assert kind != "bad-utf8"
            assert result.new + len(result.rejected) >= 1 or not data[10:]
            return
        check_nothing_stored(store, result)
        assert re.search(r"gzip|compressed|UTF-8|JSON Lines", result.error), result.error


CSV_HEADER = ["id", "title", "abstract", "authors", "categories", "date", "url"]


def csv_row(rec: dict[str, Any]) -> list[str]:
    return [
        rec["id"], rec["title"], rec["abstract"], "; ".join(rec["authors"]),
        " ".join(rec["categories"]), rec["date"], rec.get("url", ""),
    ]


@st.composite
def csv_case(draw: st.DrawFn) -> tuple[str, dict[int, dict[str, Any]], set[int], int]:
    """CSV text; the good records by the line their row starts on; the lines where mutated rows
    start; the number of rows with anything in them."""
    start = draw(st.integers(0, len(RECORDS) - 8))
    records = RECORDS[start : start + draw(st.integers(2, 8))]
    cell = st.one_of(texts.map(lambda t: t.replace("\ud800", "").replace("\udfff", "")),
                     st.sampled_from(['["a", 1]', "[broken", "2026-13-01", "x" * 200_000]))
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    goods: dict[int, dict[str, Any]] = {}
    mutated: set[int] = set()
    rows = 0
    for rec in records:
        line = len(lines_of(out.getvalue())) + 1
        row = csv_row(rec)
        if draw(st.booleans()):
            for _ in range(draw(st.integers(1, 3))):
                i = draw(st.integers(0, len(row) - 1))
                kind = draw(st.sampled_from(["set", "drop", "add"]))
                if kind == "set":
                    row[i] = draw(cell)
                elif kind == "drop":
                    del row[i]
                else:
                    row.insert(i, draw(cell))
            mutated.add(line)
        else:
            goods[line] = rec
        if any(c.strip() for c in row) and row:
            rows += 1
        writer.writerow(row)
        if draw(st.integers(0, 4)) == 0:  # a junk line that is one row: no quotes, no breaks
            junk = draw(st.text(st.characters(blacklist_characters='"\r\n\x00',
                                              blacklist_categories=("Cs",)), max_size=60))
            mutated.add(len(lines_of(out.getvalue())) + 1)
            out.write(junk + "\r\n")
            if any(c.strip() for c in next(csv.reader([junk]), [])):
                rows += 1
    return out.getvalue(), goods, mutated, rows


@TEXT_TO_STORE
@FUZZ
@given(case=csv_case())
def test_csv_rows_mutated(empty_db: Empty, tmp_path: Path,
                          case: tuple[str, dict[int, dict[str, Any]], set[int], int]) -> None:
    text, goods, mutated, rows = case
    with fresh_store(empty_db, tmp_path) as (store, folder):
        path = folder / "papers.csv"
        path.write_text(text, encoding="utf-8", newline="")
        result = run(store, FileSource(str(path)))
        check_result(result, rows, {f"{path}:{n}" for n in mutated})
        for rec in goods.values():
            check_stored(store, RawPaper(id=rec["id"], title=rec["title"],
                                         abstract=rec["abstract"]))


# -- arXiv feeds and API responses ----------------------------------------------------------------

_ENTRY = re.compile(rb"<(item|entry)>.*?</\1>", re.DOTALL)
_CHILD = re.compile(r"<([\w:]+)\b[^>]*?(?:/>|>.*?</\1>)", re.DOTALL)


@st.composite
def entry_mutation(draw: st.DrawFn) -> Callable[[str], str]:
    kind = draw(st.sampled_from(["drop", "text", "attr", "dup", "empty", "cdata", "add"]))
    junk = draw(xml_texts)
    pick = draw(st.integers(0, 50))

    def mutate(entry: str) -> str:
        open_tag, rest = entry.split(">", 1)
        body, close_tag = rest.rsplit("<", 1)
        children = list(_CHILD.finditer(body))
        if kind == "empty" or not children:
            return f"{open_tag}>{escape(junk)}<{close_tag}"
        child = children[pick % len(children)]
        tag = child[1]
        if kind == "drop":
            new = ""
        elif kind == "text":
            new = f"<{tag}>{escape(junk)}</{tag}>"
        elif kind == "cdata":
            new = f"<{tag}><![CDATA[{junk.replace(']]>', '')}]]></{tag}>"
        elif kind == "attr":
            attrs = escape(junk, {'"': "&quot;"})
            new = f'<{tag} href="{attrs}" term="{attrs}" scheme="{attrs}"/>'
        elif kind == "dup":
            new = child[0] + child[0]
        else:
            new = child[0] + f"<{tag}>{escape(junk)}</{tag}>"
        body = body[: child.start()] + new + body[child.end() :]
        return f"{open_tag}>{body}<{close_tag}"

    return mutate


@st.composite
def feed_case(draw: st.DrawFn, body: bytes) -> tuple[bytes, set[int]]:
    """The body with some entries mutated; the indexes of those entries."""
    entries = list(_ENTRY.finditer(body))
    chosen = draw(st.sets(st.integers(0, len(entries) - 1), max_size=len(entries)))
    out, last, mutated = [], 0, set()
    for i, match in enumerate(entries):
        out.append(body[last : match.start()])
        entry = match[0].decode("utf-8")
        if i in chosen:
            for mutate in draw(st.lists(entry_mutation(), min_size=1, max_size=3)):
                entry = mutate(entry)
            mutated.add(i)
        out.append(entry.encode("utf-8"))
        last = match.end()
    out.append(body[last:])
    return b"".join(out), mutated


def check_feed(store: Store, result: SourceResult, source: str, original: list[Any],
               mutated: set[int], start: int = 0) -> None:
    check_result(result, len(original), {f"{source} entry {start + i}" for i in mutated})
    for i, item in enumerate(original):
        assert isinstance(item, RawPaper)
        if i not in mutated and not item.update_only:
            check_stored(store, item)


LISTINGS = ["arxiv_rss_cs.CV.xml", "arxiv_atom_cs.CV.xml"]


@SQLITE_ONLY
@FUZZ
@given(data=st.data(), name=st.sampled_from(LISTINGS))
def test_arxiv_listing_entries_mutated(empty_db: Empty, tmp_path: Path, data: st.DataObject,
                                       name: str) -> None:
    body = (DATA / name).read_bytes()
    mutated_body, mutated = data.draw(feed_case(body))
    source = "arxiv:cs.CV"
    original = list(arxiv.parse_listing(body, origin=source))
    with fresh_store(empty_db, tmp_path) as (store, _), client(
        lambda request: httpx.Response(200, content=mutated_body)
    ) as http:
        spec = arxiv.parse_named(source)
        assert isinstance(spec, arxiv.ListingSpec)
        result = run(store, ArxivListingSource(source, spec), http)
        check_feed(store, result, source, original, mutated)


def api_bodies() -> list[bytes]:
    folder = ROOT.parent / "shared" / "fixtures" / "arxiv_api"
    bodies = []
    for path in sorted(folder.glob("*.json")):
        recorded = json.loads(path.read_text(encoding="utf-8"))
        # Pages from the start: the source asks for results from 0 first.
        if recorded["status_code"] == 200 and "<entry>" in recorded["body"] and (
            "<opensearch:startIndex>0<" in recorded["body"]
        ):
            bodies.append(recorded["body"].encode("utf-8"))
    return bodies


@pytest.fixture(scope="module")
def recorded_api() -> list[bytes]:
    bodies = api_bodies()
    if not bodies:
        pytest.skip("../shared/fixtures/arxiv_api is not beside the checkout")
    return bodies


def no_entries(body: bytes) -> bytes:
    return _ENTRY.sub(b"", body)


@SQLITE_ONLY
@FUZZ
@given(data=st.data())
def test_arxiv_api_entries_mutated(empty_db: Empty, tmp_path: Path, recorded_api: list[bytes],
                                   data: st.DataObject) -> None:
    body = data.draw(st.sampled_from(recorded_api))
    mutated_body, mutated = data.draw(feed_case(body))
    source = "arxiv-api:id:2104.12255"
    page = arxiv.parse_api(body, origin=source)

    def answer(request: httpx.Request) -> httpx.Response:
        first = request.url.params["start"] == "0"
        return httpx.Response(200, content=mutated_body if first else no_entries(body))

    with fresh_store(empty_db, tmp_path) as (store, _), client(answer) as http:
        spec = arxiv.parse_named(source)
        assert isinstance(spec, arxiv.ApiSpec)
        result = run(store, ArxivApiSource(source, spec), http)
        check_feed(store, result, source, page.items, mutated, page.start_index)


# -- Hugging Face daily papers ------------------------------------------------------------------

HF_DAY = dt.date(2025, 5, 8)
HF_PATHS: list[tuple[str | int, ...]] = [
    (), ("paper",), ("paper", "id"), ("paper", "title"), ("paper", "summary"),
    ("paper", "authors"), ("paper", "authors", 0), ("paper", "authors", 0, "name"),
    ("publishedAt",), ("paper", "publishedAt"), ("paper", "submittedOnDailyAt"), ("title",),
    ("summary",),
]


def spoil(entry: Any, path: tuple[str | int, ...], value: Any, drop: bool) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(entry, dict) and isinstance(head, str) and head in entry:
        if drop and not rest:
            return {k: v for k, v in entry.items() if k != head}
        return {**entry, head: spoil(entry[head], rest, value, drop)}
    if isinstance(entry, list) and isinstance(head, int) and head < len(entry):
        return [*entry[:head], spoil(entry[head], rest, value, drop), *entry[head + 1 :]]
    return entry


@TEXT_TO_STORE
@FUZZ
@given(data=st.data())
def test_hf_daily_entries_mutated(empty_db: Empty, tmp_path: Path, data: st.DataObject) -> None:
    entries = json.loads((DATA / "hf_daily_2025-05-08.json").read_text(encoding="utf-8"))
    chosen = data.draw(st.sets(st.integers(0, len(entries) - 1)))
    spoiled = list(entries)
    for i in chosen:
        for _ in range(data.draw(st.integers(1, 3))):
            path = data.draw(st.sampled_from(HF_PATHS))
            spoiled[i] = spoil(spoiled[i], path, data.draw(json_values), data.draw(st.booleans()))
    body = dumps(spoiled, data.draw(st.booleans())).encode("utf-8")
    source = "hf:2025-05-08"
    original = list(hf.parse_daily_json(json.dumps(entries).encode(), origin="x"))
    pages: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        pages.append(str(request.url))
        return httpx.Response(200, content=body)

    with fresh_store(empty_db, tmp_path) as (store, _), client(answer) as http:
        result = run(store, HfDailySource(source, HF_DAY), http)
        (url,) = pages
        mutated = {i for i in chosen if spoiled[i] != entries[i]}
        check_result(result, len(entries), {f"{url} entry {i}" for i in mutated})
        for i, item in enumerate(original):
            assert isinstance(item, RawPaper)
            if i not in mutated:
                check_stored(store, item)


# -- whole bodies damaged -------------------------------------------------------------------------


def parse_or_error(fmt: str, body: bytes) -> list[Any] | DigestError:
    try:
        if fmt == "hf-json":
            return list(hf.parse_daily_json(body, origin="o"))
        if fmt == "arxiv-api":
            return arxiv.parse_api(body, origin="o").items
        return list(arxiv.parse_listing(body, origin="o"))
    except DigestError as exc:  # the documented errors; anything else fails the test
        assert str(exc).startswith("o: "), exc
        return exc


@st.composite
def damaged(draw: st.DrawFn, body: bytes) -> bytes:
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(body)))
        kind = draw(st.sampled_from(["truncate", "junk", "charref", "cut"]))
        if kind == "truncate":
            body = body[:at]
        elif kind == "junk":
            body = body[:at] + draw(st.binary(min_size=1, max_size=12)) + body[at:]
        elif kind == "charref":
            ref = draw(st.sampled_from([b"&#xD800;", b"&#x110000;", b"&#0;", b"&#" + b"9" * 30
                                        + b";", b"&bogus;", b"&#x1F600;", b"<![CDATA[", b"<!--"]))
            body = body[:at] + ref + body[at:]
        else:
            body = body[:at] + body[at + draw(st.integers(1, 400)) :]
    return body


BODIES = {
    "arxiv-feed": [DATA / "arxiv_rss_cs.CV.xml", DATA / "arxiv_atom_cs.CV.xml"],
    "hf-json": [DATA / "hf_daily_2025-05-08.json"],
}


@SQLITE_ONLY
@FUZZ
@given(data=st.data(), fmt=st.sampled_from(["arxiv-feed", "hf-json"]))
def test_damaged_bodies(empty_db: Empty, tmp_path: Path, data: st.DataObject, fmt: str) -> None:
    body = data.draw(damaged(data.draw(st.sampled_from(BODIES[fmt])).read_bytes()))
    parsed = parse_or_error(fmt, body)
    with fresh_store(empty_db, tmp_path) as (store, folder):
        path = folder / ("body.xml" if fmt == "arxiv-feed" else "body.json")
        path.write_bytes(body)
        result = run(store, FileSource(str(path), fmt))
        if isinstance(parsed, DigestError):
            check_nothing_stored(store, result)
            return
        assert result.error is None, result.error
        assert result.new + result.updated + result.unchanged + result.skipped + len(
            result.rejected
        ) == len(parsed)
        rejected = [item for item in parsed if isinstance(item, Rejected)]
        assert [str(r).replace("o entry", f"{path} entry") for r in rejected] == [
            str(r) for r in result.rejected
        ]
        for r in result.rejected:
            assert re.fullmatch(rf"{re.escape(str(path))} entry \d+", r.where)
            assert REASON.search(r.reason), r


def test_what_fuzzing_found(empty_db: Empty, tmp_path: Path) -> None:
    good = json.dumps(RECORDS[0])
    lines = [
        good,
        '{"id": "2501.00002", "title": "a lone \\ud800 surrogate"}',
        '{"id": "2501.00003v99999999999999999999", "title": "a version too long to read"}',
        json.dumps(RECORDS[1]),
        '{"id": "2501.00004", "title": "a NUL \\u0000 PostgreSQL cannot store"}',
    ]
    with fresh_store(empty_db, tmp_path) as (store, folder):
        path = folder / "p.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        result = run(store, FileSource(str(path)))
        assert [str(r) for r in result.rejected] == [
            f"{path}:2: title is not valid Unicode: it holds a lone surrogate such as \\ud800; "
            "expected text (a pair such as \\ud83d\\ude00 is fine)"
        ]
        assert result.new == 4
        assert store.get_paper("2501.00003v99999999999999999999") is not None  # not arXiv's
        nul = store.get_paper("2501.00004")
        assert nul is not None and nul.title == "a NUL \ufffd PostgreSQL cannot store"
    body = (DATA / "arxiv_rss_cs.CV.xml").read_bytes().replace(b"<title>When", b"<title>&#xD800;")
    with pytest.raises(DigestError, match=r"^arxiv:cs\.CV: not a readable RSS/Atom feed"):
        list(arxiv.parse_listing(body, origin="arxiv:cs.CV"))
