"""Hugging Face papers: the daily papers JSON API and papers pages saved as text.

The API gives ids, authors and the day a paper was featured; a saved page gives only titles,
abstracts and a day without a year. Both yield `RawPaper` or `Rejected` in input order, so one
malformed entry never costs the rest of the source.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import FormatError
from ..http import HttpClient
from ..text import has_lone_surrogate, parse_arxiv_id
from ..types import ParsedItem, RawPaper, Rejected
from .limits import loads_json, oversized

DAILY_PAPERS_URL = "https://huggingface.co/api/daily_papers"

#: A server that ignores ``p`` would page forever; no real day has anywhere near this many.
MAX_PAGES = 50

# --- the daily papers API -------------------------------------------------------------------


def parse_daily_json(body: bytes, *, origin: str) -> Iterator[ParsedItem]:
    """Parse one response of the daily papers API.

    Raises `FormatError` at once when `body` is not a JSON array; each malformed element becomes
    ``Rejected("<origin> entry <i>", ...)`` and the others are still read.
    """
    return _daily_entries(_load_array(body, origin), origin)


def fetch_daily(
    http: HttpClient, day: dt.date, *, source: str, page_size: int = 100
) -> Iterator[ParsedItem]:
    """Yield the papers featured on `day`, asking for pages ``p=0, 1, ...`` until a short one.

    Errors name `source`; rejections name the page's URL and the entry's index in that page.
    """
    previous: list[Any] | None = None
    for page in range(MAX_PAGES):
        fetched = http.get(
            DAILY_PAPERS_URL,
            params={"date": day.isoformat(), "limit": page_size, "p": page},
            source=source,
        )
        entries = _load_array(fetched.content, source)
        if entries == previous:  # the server ignored ``p``: we already have this page
            return
        yield from _daily_entries(entries, fetched.url)
        if len(entries) < page_size:
            return
        previous = entries


def parse_named(spec: str, *, today: dt.date | None = None) -> dt.date:
    """The day of a named source ``hf:YYYY-MM-DD``; ``hf:`` alone means `today`."""
    expected = "expected hf:YYYY-MM-DD (or hf: for today)"
    prefix, sep, rest = spec.strip().partition(":")
    if prefix.lower() != "hf" or not sep:
        raise ValueError(f"{spec!r} is not a Hugging Face source: {expected}")
    if not rest:
        if today is None:
            raise ValueError(f"{spec!r} means today, but no today was given: {expected}")
        return today
    try:
        if len(rest) != 10:
            raise ValueError
        return dt.date.fromisoformat(rest)
    except ValueError:
        raise ValueError(f"{spec!r} has no valid day: {expected}") from None


def _load_array(body: bytes, origin: str) -> list[Any]:
    try:
        data = loads_json(body)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise FormatError(origin, f"not Hugging Face daily papers JSON: {exc}") from None
    if not isinstance(data, list):
        raise FormatError(
            origin,
            f"not Hugging Face daily papers JSON: expected an array, got {_kind(data)}",
        )
    return data


def _daily_entries(entries: list[Any], origin: str) -> Iterator[ParsedItem]:
    for i, entry in enumerate(entries):
        where = f"{origin} entry {i}"
        try:
            yield _daily_entry(entry)
        except _Bad as bad:
            yield Rejected(where, str(bad))


class _Bad(Exception):
    """One entry is malformed; the message says what and what was expected."""


def _daily_entry(entry: Any) -> RawPaper:
    if not isinstance(entry, dict):
        raise _Bad(f"expected an object, got {_kind(entry)}")
    paper = entry.get("paper")
    if not isinstance(paper, dict):
        raise _Bad(f"expected a 'paper' object, got {_kind(paper)}")

    pid = paper.get("id")
    if pid is not None and not isinstance(pid, str):
        raise _Bad(f"paper.id must be a string (an arXiv id), got {_kind(pid)}")
    if pid is not None:
        pid = pid.strip() or None

    title = paper.get("title") or entry.get("title")
    if not isinstance(title, str) or not title.strip():
        raise _Bad(f"paper.title must be a non-empty string, got {_kind(title)}")
    abstract = paper.get("summary") or entry.get("summary") or ""
    if not isinstance(abstract, str):
        raise _Bad(f"paper.summary must be a string, got {_kind(abstract)}")

    authors = paper.get("authors") or []
    if not isinstance(authors, list):
        raise _Bad(f"paper.authors must be a list, got {_kind(authors)}")
    names: list[str] = []
    for j, author in enumerate(authors):
        name = author.get("name") if isinstance(author, dict) else author
        if not isinstance(name, str):
            raise _Bad(f"paper.authors[{j}] must be an object with a string 'name'")
        if name.strip():
            names.append(name.strip())

    # The outer publishedAt is the day HF featured the paper; paper.publishedAt is the day
    # it reached arXiv, only a fallback.
    day = None
    for key, value in (
        ("publishedAt", entry.get("publishedAt")),
        ("paper.submittedOnDailyAt", paper.get("submittedOnDailyAt")),
        ("paper.publishedAt", paper.get("publishedAt")),
    ):
        if value is not None:
            day = _iso_day(value, key)
            break

    for field, value in (("paper.id", pid), ("paper.title", title),
                         ("paper.summary", abstract), *(("paper.authors", n) for n in names)):
        if value and has_lone_surrogate(value):
            raise _Bad(f"{field} is not valid Unicode: it holds a lone surrogate such as "
                       "\\ud800; expected text")

    url = None
    if pid:
        url = (
            f"https://arxiv.org/abs/{pid}"
            if parse_arxiv_id(pid)
            else f"https://huggingface.co/papers/{pid}"
        )
    paper = RawPaper(
        title=title, abstract=abstract, id=pid, authors=tuple(names), date=day, url=url
    )
    if too_large := oversized(paper):
        raise _Bad(too_large)
    return paper


def _iso_day(value: Any, key: str) -> dt.date:
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value.strip()).date()
        except ValueError:
            pass
    raise _Bad(f"{key} must be an ISO timestamp such as 2025-05-08T00:00:00.000Z, got {value!r}")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


# --- papers pages saved as text -------------------------------------------------------------

_DAY = re.compile(r"([A-Za-z]{3,9})\.?\s+(\d{1,2})(?:,?\s+(\d{4}))?")
_MONTH_NAMES = (
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
)  # fmt: skip
_MONTHS = {
    name: i for i, month in enumerate(_MONTH_NAMES, start=1) for name in (month, month[:3])
}
_MONTHS["sept"] = 9

#: A title longer than this is an abstract out of place: the page lost a line before it.
MAX_TITLE_CHARS = 400


def resolve_day(text: str, today: dt.date) -> dt.date:
    """The date meant by a day without a year (``Mar 11``, ``March 11``): the latest one not
    after `today`. ``Feb 29`` goes back to the last leap year; ``Mar 11, 2025`` is taken as is.

    Raises ValueError for anything else.
    """
    m = _DAY.fullmatch(text.strip())
    month = _MONTHS.get(m.group(1).lower()) if m else None
    if m is None or month is None:
        raise ValueError(f"{text!r} is not a day such as 'Mar 11'")
    day = int(m.group(2))
    if m.group(3):
        try:
            return dt.date(int(m.group(3)), month, day)
        except ValueError:
            raise ValueError(f"{text!r} is not a valid date") from None
    for year in range(today.year, today.year - 9, -1):  # a leap year comes within 8 years
        try:
            candidate = dt.date(year, month, day)
        except ValueError:
            continue
        if candidate <= today:
            return candidate
    raise ValueError(f"{text!r} is not a valid day of the year")


def parse_hf_page(text: str, *, origin: str, today: dt.date) -> Iterator[ParsedItem]:
    """Parse a Hugging Face papers page saved as text.

    The page is five header lines (``new``, a subscribe banner, ``Subscribe``, a byline starting
    with ``by``, a day such as ``Mar 11``) then title and abstract blocks, all separated by blank
    lines. A block is a run of non-blank lines. Every paper gets the header day, resolved to the
    latest such date not after `today`.

    Raises `FormatError` at once when the header is not of that shape. A title left without an
    abstract at the end of the page is a title-only paper; a "title" too long to be one (the
    page lost a line, so titles and abstracts are out of step) is rejected with its line.
    """
    blocks = _blocks(text)
    day = _check_header(blocks, origin, today)
    return _page_papers(blocks[5:], origin, day)


def _blocks(text: str) -> list[tuple[int, str]]:
    """Runs of non-blank lines as (first line number, text joined by newlines)."""
    blocks: list[tuple[int, str]] = []
    start = 0
    run: list[str] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            if not run:
                start = lineno
            run.append(line.strip())
        elif run:
            blocks.append((start, "\n".join(run)))
            run = []
    if run:
        blocks.append((start, "\n".join(run)))
    return blocks


def _check_header(blocks: list[tuple[int, str]], origin: str, today: dt.date) -> dt.date:
    def fail(expected: str, index: int) -> FormatError:
        line = blocks[index][0] if index < len(blocks) else (blocks[-1][0] + 1 if blocks else 1)
        return FormatError(
            origin, f"not a saved Hugging Face papers page: expected {expected} at line {line}"
        )

    checks: tuple[tuple[str, Callable[[str], bool]], ...] = (
        ("'new'", lambda s: s.lower() == "new"),
        ("a subscribe banner", lambda s: "\n" not in s),
        ("'Subscribe'", lambda s: s.lower() == "subscribe"),
        ("a byline such as 'byAK and the research community'", lambda s: s.startswith("by")),
    )
    for index, (expected, ok) in enumerate(checks):
        if index >= len(blocks) or not ok(blocks[index][1]):
            raise fail(expected, index)
    if len(blocks) < 5:
        raise fail("a day such as 'Mar 11'", 4)
    try:
        return resolve_day(blocks[4][1], today)
    except ValueError:
        raise fail("a day such as 'Mar 11'", 4) from None


def _page_papers(
    blocks: list[tuple[int, str]], origin: str, day: dt.date
) -> Iterator[ParsedItem]:
    i = 0
    while i < len(blocks):
        lineno, title = blocks[i]
        if len(title) > MAX_TITLE_CHARS or "\n" in title:
            yield Rejected(
                f"{origin}:{lineno}",
                f"expected a one-line title of at most {MAX_TITLE_CHARS} characters, got "
                f"{len(title)} characters: a title or abstract before it is missing",
            )
            i += 1  # get back in step: the next block should be a title
            continue
        abstract = blocks[i + 1][1] if i + 1 < len(blocks) else ""
        paper = RawPaper(title=title, abstract=abstract, date=day)
        too_large = oversized(paper)
        yield Rejected(f"{origin}:{lineno}", too_large) if too_large else paper
        i += 2
