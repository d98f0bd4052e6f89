"""The one HTTP client every fetcher goes through.

Polite by construction: a User-Agent with a contact address, timeouts, at least three seconds
between requests to arXiv (summed over its hosts, as its terms ask), retries with backoff on 429
and 5xx honouring Retry-After, and conditional GET. The transport, the clock and the sleep are
seams: tests pass `httpx.MockTransport` and a fake sleep, and nothing touches the network.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from . import __version__
from .errors import FetchError

#: Hosts that share one request budget, and the minimum seconds between two requests to it.
POLITENESS: dict[str, float] = {"arxiv.org": 3.0, "huggingface.co": 0.5}

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

#: Largest response body read, after Content-Encoding (a gzip bomb is bounded too). Real ones
#: are a few MB; the same bound as a file read whole (sources.limits.MAX_BODY_BYTES).
MAX_RESPONSE_BYTES = 16 << 20


@dataclass(frozen=True, slots=True)
class Validators:
    """What a server said about a response, to ask next time whether it changed."""

    etag: str | None = None
    last_modified: str | None = None

    def __bool__(self) -> bool:
        return bool(self.etag or self.last_modified)


@dataclass(frozen=True, slots=True)
class Fetched:
    """A successful response, or a 304 (`not_modified`, empty `content`)."""

    url: str
    status: int
    content: bytes
    content_type: str
    validators: Validators
    not_modified: bool = False


def _host_group(url: str) -> str:
    host = urlsplit(url).hostname or ""
    for group in POLITENESS:
        if host == group or host.endswith("." + group):
            return group
    return host


def _retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


class HttpClient:
    """A small, polite wrapper over one `httpx.Client`."""

    def __init__(
        self,
        *,
        contact: str = "digest@localhost",
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
        max_retries: int = 4,
        backoff: float = 2.0,
        max_wait: float = 300.0,
        politeness: Mapping[str, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self._client = httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            headers={"User-Agent": f"digest/{__version__} (+mailto:{contact})"},
            follow_redirects=True,
        )
        self._max_retries = max_retries
        self._backoff = backoff
        self._max_wait = max_wait
        self._politeness = dict(POLITENESS if politeness is None else politeness)
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._last_request: dict[str, float] = {}
        self._max_bytes = max_bytes

    def close(self) -> None:
        self._client.close()

    def _read(self, response: httpx.Response, name: str) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self._max_bytes:
                raise FetchError(name, f"response larger than {self._max_bytes >> 20} MiB "
                                       "(decoded); no feed or API page is that large",
                                 status=response.status_code)
            chunks.append(chunk)
        return b"".join(chunks)

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wait_turn(self, url: str) -> None:
        group = _host_group(url)
        interval = self._politeness.get(group, 0.0)
        last = self._last_request.get(group)
        if interval and last is not None:
            remaining = interval - (self._clock() - last)
            if remaining > 0:
                self._sleep(remaining)
        self._last_request[group] = self._clock()

    def get(
        self,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        validators: Validators | None = None,
        source: str | None = None,
        accept_statuses: frozenset[int] = frozenset(),
    ) -> Fetched:
        """GET `url`, retrying what is temporary; raise `FetchError` for what is not.

        `validators` from an earlier response make the request conditional; a 304 comes back as
        `Fetched(not_modified=True)`. Statuses in `accept_statuses` are returned rather than
        raised (the arXiv API's 400 carries an error feed worth reading). `source` names the
        source in error messages (defaults to the URL).
        """
        name = url if source is None or source == url else f"{source} ({url})"
        headers: dict[str, str] = {}
        if validators:
            if validators.etag:
                headers["If-None-Match"] = validators.etag
            if validators.last_modified:
                headers["If-Modified-Since"] = validators.last_modified
        attempt = 0
        while True:
            self._wait_turn(url)
            retry_after = None
            try:
                # Streamed, so that a body larger than max_bytes is never held whole.
                with self._client.stream("GET", url, params=params, headers=headers) as response:
                    status = response.status_code
                    if status == 304:
                        return Fetched(str(response.url), 304, b"", "",
                                       validators or Validators(), not_modified=True)
                    if 200 <= status < 300 or status in accept_statuses:
                        return Fetched(
                            url=str(response.url),
                            status=status,
                            content=self._read(response, name),
                            content_type=response.headers.get("content-type", ""),
                            validators=Validators(response.headers.get("etag"),
                                                  response.headers.get("last-modified")),
                        )
                    problem = f"HTTP {status} {response.reason_phrase}".rstrip()
                    retry_after = response.headers.get("retry-after")
                    if status not in RETRY_STATUSES:
                        raise FetchError(name, problem, status=status)
            except httpx.TimeoutException as exc:
                problem = f"timed out ({type(exc).__name__})"
                status = None
            except httpx.DecodingError as exc:  # a corrupt gzip body: asking again won't help
                raise FetchError(name, f"undecodable response body: {exc}") from None
            except (httpx.TooManyRedirects, httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                # A redirect loop, or a redirect to ftp: or to no valid URL: nor would these.
                raise FetchError(name, f"request failed: {exc}") from None
            except httpx.TransportError as exc:
                problem = f"request failed: {exc}"
                status = None
            if attempt >= self._max_retries:
                raise FetchError(
                    name, f"{problem}; gave up after {attempt + 1} attempts", status=status
                )
            delay = self._backoff * (2**attempt) * (1 + random.random() / 4)
            if status is not None:
                hinted = _retry_after(retry_after, self._wall_clock())
                if hinted is not None:
                    delay = hinted
            if delay > self._max_wait:
                raise FetchError(
                    name, f"{problem}; server asks to wait {delay:.0f} s, more than we will",
                    status=status,
                )
            self._sleep(delay)
            attempt += 1
