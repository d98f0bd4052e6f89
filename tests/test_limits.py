"""Hostile files: deep JSON, over-long lines, sparse files and gzip bombs.

Each is ingested through the real `FileSource` into a real SQLite store, beside good records and
a second source, to show that the bad part is a one-line error and everything else lands.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from digest.errors import FormatError
from digest.ingest import IngestContext, ingest
from digest.sources.files import parse_csv
from digest.sources.limits import (
    MAX_BODY_BYTES,
    MAX_LINE_CHARS,
    BoundedLines,
    check_xml_depth,
    loads_json,
    read_body,
)
from digest.sources.resolve import FileSource
from digest.store import Store
from digest.types import Rejected, SourceResult

NOW = dt.datetime(2026, 6, 8, 12, 0, tzinfo=dt.UTC)


def _record(n: int) -> str:
    return json.dumps({"id": f"2503.{n:05d}", "title": f"Paper number {n}", "abstract": "a"})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    # SQLite only: the limits are the parsers'; storing what passes them is test_ingest's, on
    # both backends (and the ids and names they let through fit PostgreSQL's columns).
    with Store.open(f"sqlite:///{tmp_path}/d.sqlite") as store:
        yield store


def _ingest(store: Store, *paths: Path, fmt: str | None = None) -> list[SourceResult]:
    ctx = IngestContext(now=NOW, today=NOW.date(), store=store)
    return ingest(store, [FileSource(str(p), fmt) for p in paths], ctx)


def test_json_nested_100000_deep_is_one_rejected_line_and_the_rest_lands(
    store: Store, tmp_path: Path
) -> None:
    deep = tmp_path / "deep.jsonl"
    deep.write_text(f"{_record(1)}\n{'[' * 100_000}\n{_record(2)}\n", encoding="utf-8")
    other = tmp_path / "other.jsonl"
    other.write_text(_record(3) + "\n", encoding="utf-8")

    first, second = _ingest(store, deep, other)

    assert (first.new, first.error) == (2, None)
    assert [str(r) for r in first.rejected] == [
        f"{deep}:2: invalid JSON (JSON nested too deeply); expected one object per line"
    ]
    assert (second.new, second.error) == (1, None)
    assert store.info().papers == 3


def test_deep_json_in_a_csv_field_rejects_that_row(tmp_path: Path) -> None:
    text = f"title,authors\nGood,Ada\nDeep,{'[' * 50_000}\nAlso good,Bob\n"
    items = list(parse_csv(_text_stream(text), origin="p.csv"))
    assert [getattr(i, "title", None) for i in items] == ["Good", None, "Also good"]
    assert isinstance(items[1], Rejected) and items[1].where == "p.csv:3"
    assert "not valid JSON" in items[1].reason


def test_a_line_over_the_limit_is_rejected_and_the_next_lines_are_read(
    store: Store, tmp_path: Path
) -> None:
    path = tmp_path / "long.jsonl"
    huge = json.dumps({"title": "x" * (MAX_LINE_CHARS + 10)})
    path.write_text(f"{_record(1)}\n{huge}\n{_record(2)}\n", encoding="utf-8")

    (result,) = _ingest(store, path)

    assert (result.new, result.error) == (2, None)
    (rejected,) = result.rejected
    assert rejected.where == f"{path}:2"
    assert f"line is {len(huge) + 1:,} characters long; expected at most" in rejected.reason


def test_an_over_long_csv_line_rejects_its_row_only(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text(
        f"id,title\n2503.00001,One\n2503.00002,{'y' * (MAX_LINE_CHARS + 1)}\n2503.00003,Three\n",
        encoding="utf-8",
    )
    (result,) = _ingest(store, path)
    assert (result.new, result.error) == (2, None)
    assert [r.where for r in result.rejected] == [f"{path}:3"]


def test_a_1_gb_sparse_file_fails_with_a_clear_error_in_bounded_memory(
    store: Store, tmp_path: Path
) -> None:
    sparse = tmp_path / "sparse.jsonl"
    with sparse.open("wb") as handle:
        handle.truncate(1 << 30)  # a hole: no disk is used
    good = tmp_path / "good.jsonl"
    good.write_text(_record(1) + "\n", encoding="utf-8")

    tracemalloc.start()
    try:
        bad, ok = _ingest(store, sparse, good)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert bad.error is not None
    assert "line 1 is longer than 64 MiB: not a text file of papers" in bad.error
    assert (ok.new, ok.error) == (1, None)
    assert peak < 32 << 20, f"peak {peak / (1 << 20):.0f} MiB"


@pytest.mark.parametrize("fill", [b"\0", b"\n"], ids=["zeros", "newlines"])
def test_a_gzip_bomb_is_refused_early(store: Store, tmp_path: Path, fill: bytes) -> None:
    # 64 MiB that gzip packs into about 64 KB; the real 4 GB bomb stops at the same point.
    bomb = tmp_path / "bomb.jsonl.gz"
    bomb.write_bytes(gzip.compress(fill * (64 << 20), compresslevel=9))
    good = tmp_path / "good.jsonl"
    good.write_text(_record(1) + "\n", encoding="utf-8")

    started = time.perf_counter()
    bad, ok = _ingest(store, bomb, good)

    assert bad.error is not None and "a compression bomb, not papers" in bad.error
    assert (ok.new, ok.error) == (1, None)
    # It stops after about 1 MiB of output, not 64 (newlines: a million blank lines, not 67).
    assert time.perf_counter() - started < 30


def test_real_gzip_is_far_from_the_bomb_ratio(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "many.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as out:
        for n in range(20_000):  # ~2 MiB of similar records: compresses about 10:1
            out.write(_record(n) + "\n")
    (result,) = _ingest(store, path)
    assert (result.new, result.error, result.rejected) == (20_000, None, [])


def test_a_whole_body_format_is_read_only_up_to_its_limit(tmp_path: Path) -> None:
    sparse = tmp_path / "sparse.xml"
    with sparse.open("wb") as handle:
        handle.truncate(MAX_BODY_BYTES + 1)
    with pytest.raises(FormatError, match="larger than 16 MiB"):
        read_body(str(sparse))
    packed = tmp_path / "zeros.json.gz"
    packed.write_bytes(gzip.compress(b"\0" * 5000))
    with pytest.raises(FormatError, match="decompressed, it is larger than 4,096 bytes"):
        read_body(str(packed), limit=4096)
    assert read_body(str(packed), limit=5000) == b"\0" * 5000


def test_a_huge_feed_file_fails_that_source_only(store: Store, tmp_path: Path) -> None:
    feed = tmp_path / "feed.xml"
    with feed.open("wb") as handle:
        handle.write(b"<rss>")
        handle.truncate(MAX_BODY_BYTES + 100)
    good = tmp_path / "good.jsonl"
    good.write_text(_record(1) + "\n", encoding="utf-8")
    bad, ok = _ingest(store, feed, good)
    assert bad.error is not None and "larger than 16 MiB" in bad.error
    assert ok.new == 1


def test_bounded_lines_keep_line_ends_and_numbers() -> None:
    lines = BoundedLines(_text_stream("a\r\nbb\rccc\n" + "d" * 12 + "\ne"), "x", max_line=5,
                         max_skip=100)
    got = list(lines)
    assert got[:3] == ["a\r\n", "bb\r", "ccc\n"]
    assert got[3] == "\n" and lines.overlong == {4: 13}
    assert got[4] == "e"


def test_loads_json_turns_deep_nesting_into_a_value_error() -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        loads_json("[" * 100_000)
    assert loads_json("[[1]]") == [[1]]


def _text_stream(text: str) -> io.StringIO:
    return io.StringIO(text, newline="")


def test_records_far_larger_than_a_paper_are_rejected_one_by_one(
    store: Store, tmp_path: Path
) -> None:
    path = tmp_path / "big.jsonl"
    records = [
        {"title": "Fine", "id": "2503.00001"},
        {"title": "Long id", "id": "doi:" + "9" * 300},  # longer than the key column
        {"title": "t" * 2_001},
        {"title": "Long abstract", "abstract": "a" * 100_001},
        {"title": "Many authors", "authors": [f"A{i}" for i in range(10_001)]},
        {"title": "Long name", "authors": ["n" * 1_001]},
        {"title": "Many categories", "categories": [f"c{i}" for i in range(101)]},
        {"title": "Also fine", "id": "2503.00002", "authors": ["x"] * 3_303},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")

    (result,) = _ingest(store, path)

    assert (result.new, result.error) == (2, None)
    assert [(r.where, r.reason) for r in result.rejected] == [
        (f"{path}:2", "id is 304 characters long; expected at most 200"),
        (f"{path}:3", "title is 2,001 characters long; expected at most 2,000"),
        (f"{path}:4", "abstract is 100,001 characters long; expected at most 100,000"),
        (f"{path}:5", "10,001 authors; expected at most 10,000"),
        (f"{path}:6", "authors holds one of 1,001 characters; expected at most 1,000 each"),
        (f"{path}:7", "101 categories; expected at most 100"),
    ]


def test_an_oversized_hf_entry_is_rejected_and_the_others_read(
    store: Store, tmp_path: Path
) -> None:
    path = tmp_path / "daily.json"
    entries = [{"paper": {"id": "2503.00001", "title": "Fine"}},
               {"paper": {"id": "2503.00002", "title": "Big", "summary": "s" * 100_001}}]
    path.write_text(json.dumps(entries), encoding="utf-8")
    (result,) = _ingest(store, path, fmt="hf-json")
    assert result.new == 1
    assert [r.where for r in result.rejected] == [f"{path} entry 1"]


def test_an_oversized_feed_item_is_rejected_and_the_others_read(data_dir: Path) -> None:
    from digest.sources.arxiv import parse_listing

    body = (data_dir / "arxiv_rss_cs.CV.xml").read_text(encoding="utf-8")
    first = "When is 3D Worth It? A Resource-Performance Frontier for CNNs and Transformers"
    assert first in body
    items = list(parse_listing(body.replace(first, "x" * 2_001, 1).encode(), origin="feed"))
    assert isinstance(items[0], Rejected)
    assert items[0].where == "feed entry 0" and "title is 2,012 characters long" in items[0].reason
    assert not any(isinstance(item, Rejected) for item in items[1:])


def test_xml_nested_deeper_than_any_feed_is_refused_at_once(tmp_path: Path) -> None:
    from digest.sources.arxiv import parse_listing

    started = time.perf_counter()
    with pytest.raises(FormatError, match="XML nested more than 100 elements deep: not a feed"):
        list(parse_listing(b"<rss>" + b"<a>" * 100_000, origin="deep.xml"))
    assert time.perf_counter() - started < 2  # feedparser took 5-8 s on these 300 KB
    check_xml_depth(b"<rss>" + b"<a>" * 99 + b"</a>" * 99 + b"</rss>", "ok.xml")
    check_xml_depth(b"<rss><a></b>", "malformed.xml")  # left to feedparser's loose parser


def test_a_csv_header_over_the_line_limit_means_not_a_csv_of_papers() -> None:
    text = "x" * (MAX_LINE_CHARS + 5) + "\ntitle\nA\n"
    with pytest.raises(FormatError, match=f"its header row is {MAX_LINE_CHARS + 6:,} characters"):
        list(parse_csv(_text_stream(text), origin="h.csv"))
