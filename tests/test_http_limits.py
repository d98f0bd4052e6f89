"""A hostile server: a huge body, a gzip bomb, a corrupt gzip, a redirect loop, a redirect to
ftp:. Each is one clear `FetchError` naming the source, in bounded memory; nothing is retried
that could not succeed. The network is `httpx.MockTransport`; time is faked.
"""

from __future__ import annotations

import datetime as dt
import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_http import FakeTime  # the same fake clocks as the other HTTP tests

from digest.errors import FetchError
from digest.http import HttpClient
from digest.ingest import IngestContext, ingest
from digest.sources.resolve import resolve
from digest.store import Store

URL = "https://example.org/papers.jsonl"


def client(handler: object, time: FakeTime, **kwargs: int) -> HttpClient:
    return HttpClient(transport=httpx.MockTransport(handler),  # type: ignore[arg-type]
                      clock=time.clock, wall_clock=time.clock, sleep=time.sleep, **kwargs)


def endless(chunk: bytes, sent: list[int]) -> Iterator[bytes]:
    while True:
        sent.append(len(chunk))
        yield chunk


def test_a_body_larger_than_the_limit_stops_reading_early() -> None:
    sent: list[int] = []
    time = FakeTime()
    http = client(lambda r: httpx.Response(200, content=endless(b"x" * 65536, sent)), time,
                  max_bytes=1 << 20)
    with pytest.raises(FetchError) as caught:
        http.get(URL, source="feed")
    assert str(caught.value) == (f"feed ({URL}): response larger than 1 MiB (decoded); no feed "
                                 "or API page is that large")
    assert sum(sent) <= (1 << 20) + 65536  # read up to the limit, not on
    assert time.sleeps == []  # not retried


def test_a_gzip_bomb_is_measured_after_decoding() -> None:
    bomb = gzip.compress(b"\0" * (4 << 20))  # 4 MiB of zeros in about 4 KB
    time = FakeTime()
    http = client(lambda r: httpx.Response(200, content=bomb,
                                           headers={"content-encoding": "gzip"}), time,
                  max_bytes=1 << 20)
    with pytest.raises(FetchError, match="response larger than 1 MiB"):
        http.get(URL)


def test_a_body_within_the_limit_is_read_whole() -> None:
    body = gzip.compress(b"y" * 1000)
    http = client(lambda r: httpx.Response(200, content=body,
                                           headers={"content-encoding": "gzip"}), FakeTime(),
                  max_bytes=1000)
    assert http.get(URL).content == b"y" * 1000


def test_a_corrupt_gzip_body_is_one_error_without_retries() -> None:
    time = FakeTime()
    http = client(lambda r: httpx.Response(200, content=b"not gzip at all",
                                           headers={"content-encoding": "gzip"}), time)
    with pytest.raises(FetchError, match="undecodable response body"):
        http.get(URL)
    assert time.sleeps == []


@pytest.mark.parametrize("location", [URL, "ftp://example.org/x"], ids=["loop", "ftp"])
def test_redirect_loops_and_redirects_to_ftp_fail_at_once(location: str) -> None:
    time = FakeTime()
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(302, headers={"location": location})

    http = client(handler, time)
    with pytest.raises(FetchError, match="request failed"):
        http.get(URL)
    assert time.sleeps == []


def test_an_oversized_url_source_fails_alone(tmp_path: Path) -> None:
    good = b'{"id": "2503.00001", "title": "Fine"}\n'

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/big.jsonl":
            return httpx.Response(200, content=zlib.compress(b"\n" * (4 << 20)),
                                  headers={"content-encoding": "deflate"})
        return httpx.Response(200, content=good)

    now = dt.datetime(2026, 6, 8, 12, tzinfo=dt.UTC)
    with Store.open(f"sqlite:///{tmp_path}/d.sqlite") as store:  # the HTTP limit: any store
        ctx = IngestContext(now=now, today=now.date(), store=store,
                            http=client(handler, FakeTime(), max_bytes=1 << 20))
        sources = [resolve(f"https://example.org/{n}.jsonl", today=now.date())
                   for n in ("big", "good")]
        big, fine = ingest(store, sources, ctx)
    assert big.error is not None and "response larger than 1 MiB" in big.error
    assert (fine.new, fine.error) == (1, None)
