"""The polite HTTP client: retries, Retry-After, conditional GET and arXiv's shared budget.

Every test fakes the network with `httpx.MockTransport` and time with `FakeTime`.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Callable

import httpx
import pytest

from digest.errors import FetchError
from digest.http import Fetched, HttpClient, Validators

URL = "https://example.org/feed"
Handler = Callable[[httpx.Request], httpx.Response]


class FakeTime:
    """Monotonic and wall clocks that move only when slept on; records every sleep."""

    def __init__(self) -> None:
        self.now = 1_780_000_000.0  # a wall-clock time in 2026
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Recorder:
    """A transport handler that answers from a script and keeps the requests."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def make_client(
    handler: Handler,
    time: FakeTime,
    *,
    max_retries: int = 4,
    backoff: float = 2.0,
    max_wait: float = 300.0,
) -> HttpClient:
    return HttpClient(
        contact="maintainer@example.org",
        transport=httpx.MockTransport(handler),
        max_retries=max_retries,
        backoff=backoff,
        max_wait=max_wait,
        clock=time.clock,
        wall_clock=time.clock,
        sleep=time.sleep,
    )


def test_user_agent_carries_the_contact() -> None:
    recorder = Recorder(httpx.Response(200, content=b"ok"))
    make_client(recorder, FakeTime()).get(URL)
    agent = recorder.requests[0].headers["user-agent"]
    assert agent.startswith("digest/")
    assert "mailto:maintainer@example.org" in agent


def test_success_returns_body_type_and_validators() -> None:
    headers = {
        "content-type": "application/rss+xml",
        "etag": '"abc"',
        "last-modified": "Mon, 08 Jun 2026 04:00:02 GMT",
    }
    recorder = Recorder(httpx.Response(200, content=b"<rss/>", headers=headers))
    fetched = make_client(recorder, FakeTime()).get(URL, params={"a": 1})
    assert fetched == Fetched(
        url=URL + "?a=1",
        status=200,
        content=b"<rss/>",
        content_type="application/rss+xml",
        validators=Validators('"abc"', "Mon, 08 Jun 2026 04:00:02 GMT"),
    )


def test_503_is_retried_after_the_seconds_retry_after_asks() -> None:
    time = FakeTime()
    recorder = Recorder(
        httpx.Response(503, headers={"retry-after": "7"}), httpx.Response(200, content=b"ok")
    )
    fetched = make_client(recorder, time).get(URL)
    assert fetched.content == b"ok"
    assert len(recorder.requests) == 2
    assert time.sleeps == [7.0]


def test_429_with_an_http_date_retry_after() -> None:
    time = FakeTime()
    later = email.utils.formatdate(time.now + 120, usegmt=True)
    recorder = Recorder(
        httpx.Response(429, headers={"retry-after": later}), httpx.Response(200, content=b"ok")
    )
    assert make_client(recorder, time).get(URL).status == 200
    assert time.sleeps == [pytest.approx(120.0)]


def test_backoff_without_retry_after_grows() -> None:
    time = FakeTime()
    recorder = Recorder(httpx.Response(502), httpx.Response(502), httpx.Response(200))
    make_client(recorder, time, backoff=2.0).get(URL)
    first, second = time.sleeps
    assert 2.0 <= first <= 2.5  # backoff * 2**0, plus up to a quarter of jitter
    assert 4.0 <= second <= 5.0


def test_gives_up_after_max_retries_naming_the_url() -> None:
    time = FakeTime()
    recorder = Recorder(httpx.Response(503, headers={"retry-after": "1"}))
    with pytest.raises(FetchError) as caught:
        make_client(recorder, time, max_retries=2).get(URL)
    assert len(recorder.requests) == 3
    assert time.sleeps == [1.0, 1.0]
    assert caught.value.status == 503
    assert str(caught.value) == (f"{URL}: HTTP 503 Service Unavailable; gave up after 3 attempts")


def test_errors_name_the_source_and_the_url() -> None:
    recorder = Recorder(httpx.Response(500))
    with pytest.raises(FetchError, match=rf"^arxiv:cs\.CV \({re.escape(URL)}\): HTTP 500"):
        make_client(recorder, FakeTime(), max_retries=0).get(URL, source="arxiv:cs.CV")


def test_a_retry_after_longer_than_max_wait_is_not_waited_for() -> None:
    time = FakeTime()
    recorder = Recorder(httpx.Response(503, headers={"retry-after": "3600"}))
    with pytest.raises(FetchError, match="server asks to wait 3600 s"):
        make_client(recorder, time, max_wait=300.0).get(URL)
    assert time.sleeps == []
    assert len(recorder.requests) == 1


def test_404_fails_at_once() -> None:
    time = FakeTime()
    recorder = Recorder(httpx.Response(404))
    with pytest.raises(FetchError) as caught:
        make_client(recorder, time).get(URL)
    assert caught.value.status == 404
    assert str(caught.value) == f"{URL}: HTTP 404 Not Found"
    assert len(recorder.requests) == 1
    assert time.sleeps == []


def test_an_accepted_error_status_is_returned() -> None:
    recorder = Recorder(httpx.Response(400, content=b"<feed/>"))
    fetched = make_client(recorder, FakeTime()).get(URL, accept_statuses=frozenset({400}))
    assert (fetched.status, fetched.content) == (400, b"<feed/>")


def test_timeouts_are_retried_then_fail() -> None:
    time = FakeTime()
    recorder = Recorder(httpx.ReadTimeout("read timed out"))
    with pytest.raises(FetchError) as caught:
        make_client(recorder, time, max_retries=2).get(URL)
    assert str(caught.value) == f"{URL}: timed out (ReadTimeout); gave up after 3 attempts"
    assert caught.value.status is None
    assert len(recorder.requests) == 3
    assert len(time.sleeps) == 2


def test_a_timeout_then_success() -> None:
    recorder = Recorder(
        httpx.ConnectTimeout("connect timed out"), httpx.Response(200, content=b"ok")
    )
    assert make_client(recorder, FakeTime()).get(URL).content == b"ok"


def test_conditional_get_and_304() -> None:
    validators = Validators(etag='W/"v1"', last_modified="Mon, 08 Jun 2026 04:00:02 GMT")
    recorder = Recorder(httpx.Response(304))
    fetched = make_client(recorder, FakeTime()).get(URL, validators=validators)
    (request,) = recorder.requests
    assert request.headers["if-none-match"] == 'W/"v1"'
    assert request.headers["if-modified-since"] == "Mon, 08 Jun 2026 04:00:02 GMT"
    assert fetched.not_modified
    assert fetched.content == b""
    assert fetched.validators == validators  # kept for the next run


def test_no_validators_no_conditional_headers() -> None:
    recorder = Recorder(httpx.Response(200))
    make_client(recorder, FakeTime()).get(URL, validators=Validators())
    assert "if-none-match" not in recorder.requests[0].headers
    assert "if-modified-since" not in recorder.requests[0].headers


def test_arxiv_hosts_share_one_three_second_budget() -> None:
    time = FakeTime()
    recorder = Recorder(httpx.Response(200))
    http = make_client(recorder, time)
    http.get("https://rss.arxiv.org/rss/cs.CV")
    http.get("https://export.arxiv.org/api/query")
    time.now += 1.0  # a second of parsing between two requests
    http.get("https://export.arxiv.org/api/query")
    assert time.sleeps == [3.0, 2.0]


def test_other_hosts_do_not_wait_on_arxiv() -> None:
    time = FakeTime()
    http = make_client(Recorder(httpx.Response(200)), time)
    http.get("https://rss.arxiv.org/rss/cs.CV")
    http.get(URL)
    http.get("https://huggingface.co/api/daily_papers")
    assert time.sleeps == []
    http.get("https://huggingface.co/api/daily_papers")
    assert time.sleeps == [0.5]


def test_a_retry_to_arxiv_also_keeps_the_budget() -> None:
    time = FakeTime()
    recorder = Recorder(
        httpx.Response(503, headers={"retry-after": "1"}), httpx.Response(200, content=b"ok")
    )
    make_client(recorder, time).get("https://export.arxiv.org/api/query")
    assert time.sleeps == [1.0, 2.0]  # Retry-After, then the rest of the three seconds
