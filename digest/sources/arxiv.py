"""arXiv: the daily announcement feed (RSS or Atom) and the query API.

The feed gives one day's announcement in one request; the API back-fills days the feed no longer
holds and looks papers up by id. Both yield `RawPaper` or `Rejected` in input order, so one bad
entry never costs the rest. Every request goes through `HttpClient`, which keeps arXiv's three
seconds between requests.

Parsers keep text as arXiv sent it (LaTeX, hard line breaks): cleaning is `digest.text`'s job.
Ids keep their version (``2511.01234v1``); dropping it is the store's.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import feedparser

from ..errors import ArxivApiError, FormatError
from ..http import Fetched, HttpClient, Validators
from ..text import collapse, parse_arxiv_id
from ..types import ParsedItem, RawPaper, Rejected
from .limits import check_xml_depth, oversized

LISTING_BASE = "https://rss.arxiv.org"
API_URL = "https://export.arxiv.org/api/query"

#: Announce types of papers new to the listing's categories.
NEW_TYPES = frozenset({"new", "cross"})
#: Announce types that only update a paper announced before (``absonly``: abstract-only change).
UPDATE_TYPES = frozenset({"replace", "replace-cross", "absonly"})

#: The API serves at most this many results per request.
API_MAX_PAGE = 2000

_ABS_URL = "https://arxiv.org/abs/"

# "arXiv:2511.01234v1 Announce Type: new \nAbstract: ..." at the head of a listing description.
_HEADER = re.compile(
    r"\s*arXiv:(?P<id>\S+)\s+Announce Type:\s*(?P<type>[\w-]+)\s*(?:Abstract:[ \t]*)?"
)
_AUTHOR_SEP = re.compile(r"\s*[,;]\s*(?:and\s+)?|\s+and\s+")
# Name suffixes a comma split tears off the name they belong to ("John Smith, Jr.").
_NAME_SUFFIXES = frozenset({"jr", "jr.", "sr", "sr.", "ii", "iii", "iv"})
_CATEGORY = re.compile(r"[a-z]+(?:-[a-z]+)?(?:\.[A-Za-z]+(?:-[a-z]+)?)?")
_SORT_BY = frozenset({"relevance", "lastUpdatedDate", "submittedDate"})
_SORT_ORDER = frozenset({"ascending", "descending"})


# --- parsing ------------------------------------------------------------------------------------


def parse_listing(body: bytes, *, origin: str) -> Iterator[ParsedItem]:
    """Parse one response of ``rss.arxiv.org`` (RSS 2.0 or Atom): one day's announcement.

    Raises `FormatError` at once when `body` is not a feed at all (an HTML error page, JSON).
    An empty feed (weekends, holidays) yields nothing. Each entry without an arXiv id or a title
    becomes ``Rejected("<origin> entry <i>", ...)`` (`i` counts from 0) and the rest is still
    read. ``replace``, ``replace-cross`` and ``absonly`` entries come with ``update_only=True``.
    """
    parsed = _parse_feed(body, origin)
    channel = parsed.get("feed", {})
    channel_day = _day(channel.get("published")) or _day(channel.get("updated"))
    return _listing_items(parsed.get("entries", []), origin, channel_day)


@dataclass(frozen=True, slots=True)
class ApiPage:
    """One response of the arXiv API."""

    #: The page's papers (and rejections), in the order the API gave them.
    items: list[ParsedItem]
    #: Results the whole query has (``opensearch:totalResults``), over all pages.
    total_results: int
    #: Index of this page's first result in the whole query (``opensearch:startIndex``).
    start_index: int
    #: Results the API meant to put on a page (``opensearch:itemsPerPage``).
    items_per_page: int


def parse_api(body: bytes, *, origin: str) -> ApiPage:
    """Parse one response of the arXiv API (Atom with ``opensearch:`` counts).

    Raises `ArxivApiError` with arXiv's message for its error feed (an entry whose id is under
    ``arxiv.org/api/errors``, sent with HTTP 400), `FormatError` when `body` is not a feed.
    Rejections are named ``<origin> entry <i>``, `i` counting from the query's first result.
    """
    parsed = _parse_feed(body, origin)
    entries: list[Any] = parsed.get("entries", [])
    for entry in entries:
        if "arxiv.org/api/errors" in (entry.get("id") or ""):
            message = collapse(entry.get("summary") or "") or collapse(entry.get("id") or "")
            raise ArxivApiError(origin, message)
    channel = parsed.get("feed", {})
    start = _int(channel.get("opensearch_startindex"), 0)
    items = [_within_limits(_api_item(entry, where := f"{origin} entry {start + i}"), where)
             for i, entry in enumerate(entries)]
    return ApiPage(
        items=items,
        total_results=_int(channel.get("opensearch_totalresults"), len(entries)),
        start_index=start,
        items_per_page=_int(channel.get("opensearch_itemsperpage"), len(entries)),
    )


def split_authors(text: str) -> tuple[str, ...]:
    """Split a ``dc:creator`` list: ``"A B, C D and E F"`` gives three names.

    Commas, semicolons, `` and `` and ``, and`` separate names; a torn-off ``Jr.`` or ``III``
    goes back to the name before it.
    """
    names: list[str] = []
    for part in _AUTHOR_SEP.split(collapse(text)):
        if not part:
            continue
        if names and part.lower() in _NAME_SUFFIXES:
            names[-1] = f"{names[-1]} {part}"
        else:
            names.append(part)
    return tuple(names)


def _parse_feed(body: bytes, origin: str) -> Any:
    # A BytesIO, not the bytes: feedparser opens a bytes argument as a file name if it can.
    # No sanitizing and no link resolving: feedparser reads RSS titles and descriptions as HTML
    # and those passes eat the text between a "<" and a ">" ("p<0.05 ... q>1"), while arXiv
    # sends plain text escaped at the XML level. Whoever renders this text as HTML escapes it.
    check_xml_depth(body, origin)
    try:
        parsed = feedparser.parse(
            io.BytesIO(body), sanitize_html=False, resolve_relative_uris=False
        )
    except (ValueError, OverflowError) as exc:
        # feedparser's fallback for XML that is not well-formed fails on a character reference
        # to no character (&#xD800;, &#x110000;, a number of 5,000 digits).
        raise FormatError(origin, f"not a readable RSS/Atom feed: {exc}") from None
    if not parsed.get("version") and not parsed.get("entries"):
        problem = parsed.get("bozo_exception") or "no <rss> or <feed> root element"
        start = body[:60].decode("utf-8", "replace")
        raise FormatError(origin, f"not an RSS/Atom feed: {problem} (body starts {start!r})")
    return parsed


def _listing_items(
    entries: list[Any], origin: str, channel_day: dt.date | None
) -> Iterator[ParsedItem]:
    for i, entry in enumerate(entries):
        yield _within_limits(_listing_item(entry, f"{origin} entry {i}", channel_day),
                             f"{origin} entry {i}")


def _within_limits(item: ParsedItem, where: str) -> ParsedItem:
    too_large = oversized(item) if isinstance(item, RawPaper) else None
    return Rejected(where, too_large) if too_large else item


def _listing_item(entry: Any, where: str, channel_day: dt.date | None) -> ParsedItem:
    description: str = entry.get("summary") or ""
    header = _HEADER.match(description)
    arxiv_id = _first_id(entry.get("id"), header["id"] if header else None, entry.get("link"))
    if arxiv_id is None:
        return Rejected(where, "no arXiv id: expected a guid like oai:arXiv.org:2511.01234v1")
    title: str = entry.get("title") or ""
    if not title.strip():
        return Rejected(where, f"{arxiv_id} has no title")
    announce = _text(entry.get("arxiv_announce_type")) or (header["type"] if header else "")
    announce = announce.lower()
    if announce in UPDATE_TYPES:
        update_only = True
    elif announce in NEW_TYPES:
        update_only = False
    else:
        # Missing or unheard-of type: a later version can only be a replacement.
        version = (parse_arxiv_id(arxiv_id) or ("", None))[1]
        update_only = version is not None and version > 1
    abstract = description[header.end() :] if header else description
    authors = tuple(
        name
        for author in entry.get("authors") or []
        for name in split_authors(author.get("name") or "")
    )
    return RawPaper(
        id=arxiv_id,
        title=title.strip(),
        abstract=abstract.strip(),
        authors=authors,
        categories=_categories(entry),
        date=_day(entry.get("published")) or channel_day,
        url=entry.get("link") or _ABS_URL + _bare(arxiv_id),
        update_only=update_only,
    )


def _api_item(entry: Any, where: str) -> ParsedItem:
    arxiv_id = _first_id(entry.get("id"), entry.get("link"))
    if arxiv_id is None:
        return Rejected(where, f"no arXiv id: expected an abs URL, got {entry.get('id')!r}")
    title = entry.get("title")
    # Compare with None and "": a title can be "0" (arXiv:2104.12255).
    if title is None or not title.strip():
        return Rejected(where, f"{arxiv_id} has no title")
    authors = tuple(
        name
        for author in entry.get("authors") or []
        if (name := collapse(author.get("name") or ""))
    )
    return RawPaper(
        id=arxiv_id,
        title=title.strip(),
        abstract=(entry.get("summary") or "").strip(),
        authors=authors,
        categories=_categories(entry),
        date=_day(entry.get("published")),
        url=entry.get("link") or _ABS_URL + arxiv_id,
    )


def _text(value: Any) -> str:
    """An extension element's text; feedparser gives its attributes (a dict) instead when it
    has attributes and no text (``<arxiv:announce_type term="new"/>``)."""
    return value if isinstance(value, str) else ""


def _first_id(*candidates: str | None) -> str | None:
    """The first candidate that is an arXiv id, as ``id`` or ``idvN``."""
    for candidate in candidates:
        if candidate and (found := parse_arxiv_id(candidate)):
            bare, version = found
            return bare if version is None else f"{bare}v{version}"
    return None


def _bare(arxiv_id: str) -> str:
    found = parse_arxiv_id(arxiv_id)
    return found[0] if found else arxiv_id


def _categories(entry: Any) -> tuple[str, ...]:
    terms = [tag.get("term") for tag in entry.get("tags") or []]
    primary = entry.get("arxiv_primary_category")
    primary = _text(primary.get("term")) if isinstance(primary, dict) else None
    ordered = [primary, *terms] if primary else terms
    return tuple(dict.fromkeys(t.strip() for t in ordered if t and t.strip()))


def _day(value: str | None) -> dt.date | None:
    """The calendar day of an RFC 822 or ISO 8601 time, as written (not converted to UTC).

    arXiv stamps an announcement at local midnight (``Mon, 08 Jun 2026 00:00:00 -0400``); in
    UTC a midnight east of Greenwich would fall on the day before.
    """
    if not value:
        return None
    value = value.strip()
    try:
        return email.utils.parsedate_to_datetime(value).date()
    except (TypeError, ValueError, IndexError):
        pass
    try:
        return dt.datetime.fromisoformat(value).date()
    except ValueError:
        return None


def _int(value: object, default: int) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        return default


# --- fetching -----------------------------------------------------------------------------------


def listing_url(categories: Sequence[str], *, atom: bool = False) -> str:
    """The announcement feed of `categories`: ``https://rss.arxiv.org/rss/cs.CV+cs.LG``."""
    if isinstance(categories, str):
        categories = [categories]
    _check_categories(categories, "arxiv:cs.CV+cs.LG")
    return f"{LISTING_BASE}/{'atom' if atom else 'rss'}/{'+'.join(categories)}"


def fetch_listing(
    http: HttpClient,
    categories: Sequence[str],
    *,
    validators: Validators | None = None,
    source: str,
) -> tuple[Fetched, Iterator[ParsedItem]]:
    """GET today's announcement of `categories`, conditionally when `validators` are given.

    Returns the response (keep its `validators` for next time) and its items; on
    ``304 Not Modified`` the items are empty. Errors name `source`.
    """
    fetched = http.get(listing_url(categories), validators=validators, source=source)
    if fetched.not_modified:
        return fetched, iter(())
    return fetched, parse_listing(fetched.content, origin=source)


def date_range_query(category: str | Sequence[str], start: dt.date, end: dt.date) -> str:
    """An API search for papers of `category` submitted from `start` to `end`, both included.

    ``cat:cs.CV AND submittedDate:[202611010000 TO 202611202359]``; several categories are
    OR-ed. arXiv matches ``submittedDate`` in UTC, and a paper is announced one to three days
    after it is submitted, so a back-fill should reach a few days before the missed listings.
    """
    categories = [category] if isinstance(category, str) else list(category)
    _check_categories(categories, "arxiv-api:cs.CV:2026-11-01..2026-11-20")
    if end < start:
        raise ValueError(f"date range ends ({end}) before it starts ({start})")
    cats = " OR ".join(f"cat:{c}" for c in categories)
    if len(categories) > 1:
        cats = f"({cats})"
    return f"{cats} AND submittedDate:[{start:%Y%m%d}0000 TO {end:%Y%m%d}2359]"


@dataclass(frozen=True, slots=True)
class ApiQuery:
    """What to ask the arXiv API: papers by id, or a search. Exactly one of the two is set."""

    #: Ids to look up, with or without version (``2104.12255v1``, ``astro-ph/0601001``).
    id_list: tuple[str, ...] = ()
    #: A search in the API's syntax (``cat:cs.CV AND submittedDate:[... TO ...]``).
    search_query: str | None = None
    #: Results asked for per request (the API serves at most 2000).
    page_size: int = 100
    #: Stop after this many results over all pages; None reads every result.
    max_results: int | None = None
    #: ``relevance``, ``lastUpdatedDate`` or ``submittedDate``.
    sort_by: str = "relevance"
    #: ``ascending`` or ``descending``.
    sort_order: str = "descending"

    def __post_init__(self) -> None:
        if bool(self.id_list) == bool(self.search_query):
            raise ValueError("an ApiQuery needs either id_list or search_query, not both")
        if not 1 <= self.page_size <= API_MAX_PAGE:
            raise ValueError(f"page_size must be 1..{API_MAX_PAGE}, not {self.page_size}")
        if self.max_results is not None and self.max_results < 0:
            raise ValueError(f"max_results must not be negative, not {self.max_results}")
        if self.sort_by not in _SORT_BY:
            raise ValueError(f"sort_by must be one of {sorted(_SORT_BY)}, not {self.sort_by!r}")
        if self.sort_order not in _SORT_ORDER:
            raise ValueError(f"sort_order must be ascending or descending, not {self.sort_order!r}")

    @classmethod
    def date_range(
        cls, category: str | Sequence[str], start: dt.date, end: dt.date, **options: Any
    ) -> ApiQuery:
        """Papers of `category` submitted from `start` to `end`, oldest first."""
        return cls(
            search_query=date_range_query(category, start, end),
            sort_by="submittedDate",
            sort_order="ascending",
            **options,
        )

    def params(self, start: int, count: int) -> dict[str, str | int]:
        """The query string of the page of `count` results from `start`.

        Names and order as arXiv's own examples; empty ``search_query``/``id_list`` are sent.
        """
        return {
            "search_query": self.search_query or "",
            "id_list": ",".join(self.id_list),
            "sortBy": self.sort_by,
            "sortOrder": self.sort_order,
            "start": start,
            "max_results": count,
        }


def fetch_api(http: HttpClient, query: ApiQuery, *, source: str) -> Iterator[ParsedItem]:
    """Yield every result of `query`, a page at a time, until `total_results`, an empty page or
    `query.max_results`.

    arXiv's error feed (HTTP 400) raises `ArxivApiError` with its message; errors name `source`.
    """
    start = 0
    while True:
        count = query.page_size
        if query.max_results is not None:
            count = min(count, query.max_results - start)
        if count <= 0:
            return
        fetched = http.get(
            API_URL,
            params=query.params(start, count),
            source=source,
            accept_statuses=frozenset({400}),
        )
        try:
            page = parse_api(fetched.content, origin=source)
        except ArxivApiError as exc:
            raise ArxivApiError(source, exc.message, status=fetched.status) from None
        if fetched.status != 200:
            raise ArxivApiError(
                source, f"HTTP {fetched.status} without arXiv's error entry", status=fetched.status
            )
        if page.items and page.start_index != start:
            # A server ignoring ``start`` would have us read its first page forever.
            raise FormatError(
                source, f"asked for results from {start}, got a page from {page.start_index}"
            )
        yield from page.items
        start += len(page.items)
        if not page.items or start >= page.total_results:
            return


# --- named sources ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListingSpec:
    """A named source ``arxiv:cs.CV+cs.LG``: the daily announcement of those categories."""

    categories: tuple[str, ...]

    @property
    def url(self) -> str:
        return listing_url(self.categories)


@dataclass(frozen=True, slots=True)
class ApiSpec:
    """A named source ``arxiv-api:...``: an API query (a date range or an id list)."""

    query: ApiQuery


_NAMED_FORMS = (
    "expected arxiv:CAT[+CAT...] (e.g. arxiv:cs.CV+cs.LG), "
    "arxiv-api:CAT[+CAT...]:YYYY-MM-DD..YYYY-MM-DD (e.g. arxiv-api:cs.CV:2026-11-01..2026-11-20) "
    "or arxiv-api:id:ID[,ID...] (e.g. arxiv-api:id:2104.12255,astro-ph/0601001)"
)


def parse_named(spec: str) -> ListingSpec | ApiSpec:
    """Read a named arXiv source of the CLI; a bad one raises ValueError saying the forms."""
    kind, sep, rest = spec.strip().partition(":")
    kind = kind.lower()
    if not sep or not rest or kind not in {"arxiv", "arxiv-api"}:
        raise ValueError(f"{spec!r} is not an arXiv source: {_NAMED_FORMS}")
    try:
        if kind == "arxiv":
            return ListingSpec(_parse_categories(rest))
        head, sep, tail = rest.partition(":")
        if not sep or not tail:
            raise ValueError("missing the part after the second ':'")
        if head.lower() == "id":
            return ApiSpec(ApiQuery(id_list=_parse_ids(tail)))
        first, dots, last = tail.partition("..")
        start = dt.date.fromisoformat(first.strip())
        end = dt.date.fromisoformat(last.strip()) if dots else start
        return ApiSpec(ApiQuery.date_range(_parse_categories(head), start, end))
    except ValueError as exc:
        raise ValueError(f"{spec!r} is not a valid arXiv source ({exc}): {_NAMED_FORMS}") from None


def _parse_categories(text: str) -> tuple[str, ...]:
    categories = tuple(c.strip() for c in text.split("+"))
    _check_categories(categories, "cs.CV+cs.LG")
    return categories


def _check_categories(categories: Sequence[str], example: str) -> None:
    if not categories:
        raise ValueError(f"no categories given (e.g. {example})")
    for category in categories:
        if not _CATEGORY.fullmatch(category):
            raise ValueError(f"{category!r} is not an arXiv category such as cs.CV or astro-ph")


def _parse_ids(text: str) -> tuple[str, ...]:
    ids = []
    for raw in text.split(","):
        found = _first_id(raw.strip())
        if found is None:
            raise ValueError(f"{raw.strip()!r} is not an arXiv id such as 2104.12255v1")
        ids.append(found)
    return tuple(ids)
