"""Rendering a digest: an HTML email with its plain-text part, a markdown page, RSS and Atom.

Everything is drawn by Jinja2 templates. The shipped ones live in ``templates/``; a user's own
directory, when given, is searched first, so a file named like a shipped one replaces it, and
``{% extends "shipped/email.html" %}`` builds on the original. HTML and XML templates are
autoescaped; ``.md`` and ``.txt`` ones are not, and use the ``md`` / ``md_math`` filters to
escape markdown. Templates see these names:

``digest``, ``profile``, ``site_name``, ``subject``, ``preheader``, ``items`` (a list of
`Item`, best first; empty for a "nothing new" note), ``empty``, ``omitted`` (papers left
out to keep the email small), ``day`` and ``generated`` (text), ``interests`` (names),
``view_url``, ``unsubscribe_url``, ``page_url`` (the personal page), ``rss_url``, ``atom_url``
(each None without a public base URL). ``feed_entry.html`` sees ``item`` and ``site_name``.

What comes from a paper or a profile is data, never markup: strings are escaped for their
format and links are kept only when they are http(s).
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import css_inline
from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PrefixLoader,
    StrictUndefined,
    TemplateNotFound,
    TemplateSyntaxError,
    pass_environment,
    select_autoescape,
)
from jinja2.filters import do_wordwrap

from digest.errors import DigestError
from digest.profiles import Profile
from digest.render_text import (
    display_text,
    escape_markdown,
    keep_math,
    markdown_url,
    markdown_with_math,
    safe_url,
    short_authors,
    truncate,
)
from digest.types import Digest, Paper, Why

__all__ = [
    "NO_LINKS",
    "FeedItem",
    "Item",
    "Links",
    "RenderedEmail",
    "Renderer",
    "display_text",
    "escape_markdown",
    "markdown_url",
    "markdown_with_math",
    "safe_url",
    "shipped_templates_dir",
]

#: Abstracts longer than this are cut (on a word boundary) in the email and its text part.
ABSTRACT_CHARS = 600
#: Subjects are kept under this length; topics that do not fit are left out.
SUBJECT_CHARS = 120
PREHEADER_CHARS = 140
#: The HTML email is kept under this size (Gmail clips at about 102 KB) by leaving papers out.
EMAIL_BYTES = 95_000
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def shipped_templates_dir() -> Path:
    """The directory of the shipped templates.

    In a checkout they sit beside the package (``templates/`` at the repository root); an
    installed package carries them as package data (``digest/templates``). A directory counts
    only if it holds ``email.html``, so an unrelated ``site-packages/templates`` is ignored.
    """
    beside = Path(__file__).resolve().parent.parent / "templates"
    if (beside / "email.html").is_file():
        return beside
    packaged = importlib.resources.files("digest") / "templates"
    if isinstance(packaged, Path) and (packaged / "email.html").is_file():
        return packaged
    raise DigestError(f"the shipped templates are missing: looked in {beside} and {packaged}")


@dataclass(frozen=True)
class Links:
    """Where the links in a digest point. Without a public base URL and a token maker there
    are no feedback, unsubscribe, browser or feed links, and every method returns None."""

    #: Public base URL of the digest server, e.g. ``https://digest.example.org``.
    base_url: str | None
    #: Profile name -> unguessable token that authorizes its links.
    token: Callable[[str], str] | None = None
    #: Profile name -> token for its feed and archive URLs, which only read (default: `token`).
    feed_token: Callable[[str], str] | None = None
    #: (profile name, paper key) -> token that only votes on that paper (default: `token`).
    vote_token: Callable[[str, str], str] | None = None

    def __post_init__(self) -> None:
        if self.base_url and urlsplit(self.base_url).scheme not in ("http", "https"):
            raise ValueError(f"base_url must be an absolute http(s) URL, not {self.base_url!r}")

    def _url(self, kind: str, profile: str) -> str | None:
        if not self.base_url or self.token is None:
            return None
        # Feeds and archived digests only read: their links carry the token that only reads.
        token = self.feed_token if kind in ("feeds", "digests") and self.feed_token else self.token
        return f"{self.base_url.rstrip('/')}/{kind}/{quote(token(profile), safe='')}"

    def feedback(
        self, profile: str, paper_key: str, vote: Literal["like", "dislike"]
    ) -> str | None:
        url = self._url("feedback", profile)
        if url is None:
            return None
        if self.vote_token is not None:
            token = quote(self.vote_token(profile, paper_key), safe="")
            url = f"{url.rsplit('/', 1)[0]}/{token}"
        return f"{url}?paper={quote(paper_key, safe='')}&v={vote}"

    def unsubscribe(self, profile: str) -> str | None:
        return self._url("unsubscribe", profile)

    def view(self, profile: str, digest_key: str) -> str | None:
        url = self._url("digests", profile)
        return None if url is None else f"{url}/{quote(digest_key, safe='')}"

    def page(self, profile: str) -> str | None:
        """The profile's personal page: its digests, votes, feeds and unsubscribe."""
        return self._url("p", profile)

    def feed(self, profile: str, fmt: Literal["rss", "atom"]) -> str | None:
        url = self._url("feeds", profile)
        return None if url is None else f"{url}/feed.{fmt}"


NO_LINKS = Links(None)


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    #: The text/plain part.
    text: str
    #: The text/html part, CSS inlined.
    html: str
    #: The preview line mail clients show after the subject (hidden in the HTML body).
    preheader: str


@dataclass(frozen=True)
class FeedItem:
    """A paper a profile was sent, for its feeds."""

    paper: Paper
    #: When it was sent (timezone-aware); the feed shows it as the entry's date.
    sent_at: dt.datetime
    why: Why | None = None


@dataclass(frozen=True)
class Item:
    """One paper as the templates see it: display-ready text, safe links."""

    number: int
    paper: Paper
    score: float | None
    why: Why | None
    #: Title and abstract as plain text (LaTeX as Unicode); `abstract` is cut when long.
    title: str
    abstract: str
    truncated: bool
    abstract_full: str
    #: Title and abstract with ``$...$`` math kept (for markdown, via ``md_math``).
    title_tex: str
    abstract_tex: str
    url: str | None
    pdf_url: str | None
    #: First three authors and "et al." when there are more than four.
    authors: str
    categories: tuple[str, ...]
    #: Day of announcement, ``YYYY-MM-DD`` (or of first sight).
    date: str
    interest: str | None
    terms: tuple[str, ...]
    followed: tuple[str, ...]
    #: The most similar seed or liked paper, when the reason was one.
    seed_title: str | None
    like_url: str | None
    dislike_url: str | None


class Renderer:
    """Renders digests with the shipped templates, or a user's directory of overrides."""

    def __init__(
        self,
        *,
        templates_dir: str | Path | None = None,
        links: Links = NO_LINKS,
        site_name: str = "digest",
    ) -> None:
        shipped = FileSystemLoader(shipped_templates_dir())
        loaders: list[BaseLoader] = []
        if templates_dir is not None:
            if not Path(templates_dir).is_dir():
                raise DigestError(f"{templates_dir}: the template directory does not exist")
            loaders.append(FileSystemLoader(templates_dir))
        loaders += [shipped, PrefixLoader({"shipped": shipped})]
        loader = ChoiceLoader(loaders)
        common: dict[str, Any] = {
            "loader": loader,
            "undefined": StrictUndefined,
            "trim_blocks": True,
            "lstrip_blocks": True,
            "keep_trailing_newline": True,
        }
        self._html = Environment(autoescape=select_autoescape(["html", "xml"]), **common)
        self._text = Environment(autoescape=False, **common)
        self._text.filters["md"] = escape_markdown
        self._text.filters["md_math"] = markdown_with_math
        self._text.filters["md_url"] = markdown_url
        self._text.filters["wordwrap"] = _wordwrap
        self.links = links
        self.site_name = display_text(site_name)
        self._inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
        self._shipped_feed_entry = str(shipped_templates_dir() / "feed_entry.html")
        #: Feed entry bodies by (paper, why, like link), while `feed_entry.html` is the shipped
        #: one (which shows only the paper, the reason and the profile's feedback links).
        self._feed_bodies: dict[tuple[Paper, Why | None, str | None], str] = {}

    # -- digests --------------------------------------------------------------------------------

    def email(self, digest: Digest, profile: Profile) -> RenderedEmail:
        """The email for a digest: subject, text and HTML parts. An empty digest gives the
        "nothing new" note (whether to send it is the caller's call: `Profile.send_empty`)."""
        context = self._context(digest, profile)
        html = self._inliner.inline(self._render("email.html", context))
        everything = context["items"]
        # Gmail clips messages over about 102 KB: drop papers from the end until it fits.
        while len(html.encode("utf-8")) > EMAIL_BYTES and len(context["items"]) > 1:
            size = len(html.encode("utf-8"))
            shown = min(len(context["items"]) - 1, int(len(context["items"]) * EMAIL_BYTES / size))
            context["items"] = everything[: max(shown, 1)]
            context["omitted"] = len(everything) - len(context["items"])
            html = self._inliner.inline(self._render("email.html", context))
        text = self._render("email.txt", context)
        return RenderedEmail(context["subject"], text, html, context["preheader"])

    def markdown(self, digest: Digest, profile: Profile) -> str:
        """The digest as a markdown page, readable on GitHub (math kept as ``$...$``)."""
        return self._render("digest.md", self._context(digest, profile))

    def feeds(
        self,
        profile: Profile,
        items: Sequence[FeedItem],
        *,
        window_days: int = 30,
        max_items: int = 100,
        now: dt.datetime,
    ) -> tuple[bytes, bytes]:
        """RSS 2.0 and Atom for what the profile was sent in the last `window_days` (at most
        `max_items`, newest first). `now` only picks the window: the same items give the
        same bytes whenever they are rendered."""
        # render_feeds builds on this module, so it is imported when first needed.
        from digest.render_feeds import build_feeds

        return build_feeds(
            self, profile, items, window_days=window_days, max_items=max_items, now=now
        )

    def feed_entry_html(self, item: Item) -> str:
        """The HTML body of one feed entry (template ``feed_entry.html``)."""
        return self._render("feed_entry.html", {"item": item, "site_name": self.site_name})

    def item(
        self, number: int, paper: Paper, why: Why | None, score: float | None, profile: str
    ) -> Item:
        (title, abstract, truncated, abstract_full, title_tex, abstract_tex, url, pdf, authors,
         categories, date) = _paper_fields(paper)
        return Item(
            number=number,
            paper=paper,
            score=score,
            why=why,
            title=title,
            abstract=abstract,
            truncated=truncated,
            abstract_full=abstract_full,
            title_tex=title_tex,
            abstract_tex=abstract_tex,
            url=url,
            pdf_url=pdf,
            authors=authors,
            categories=categories,
            date=date,
            interest=display_text(why.interest) if why else None,
            terms=tuple(display_text(t) for t in why.terms[:5]) if why else (),
            followed=tuple(display_text(a) for a in why.authors) if why else (),
            seed_title=display_text(why.seed_title) if why and why.seed_title else None,
            like_url=self.links.feedback(profile, paper.key, "like"),
            dislike_url=self.links.feedback(profile, paper.key, "dislike"),
        )

    def _feed_bodies_cached(self) -> bool:
        """Whether feed entry bodies can be cached by paper, reason and feedback link: while
        ``feed_entry.html`` is the shipped one, which shows nothing else of the profile."""
        return self._html.get_template("feed_entry.html").filename == self._shipped_feed_entry

    def _feed_body(self, item: Item, cached: bool) -> str:
        """`feed_entry_html` as `display_text`; `cached` from `_feed_bodies_cached`."""
        if not cached:
            return display_text(self.feed_entry_html(item))
        key = (item.paper, item.why, item.like_url)  # the links are the profile's own
        body = self._feed_bodies.get(key)
        if body is None:
            if len(self._feed_bodies) >= _CACHE_SIZE:
                self._feed_bodies.clear()
            body = self._feed_bodies[key] = display_text(self.feed_entry_html(item))
        return body

    # -- internals ------------------------------------------------------------------------------

    def _context(self, digest: Digest, profile: Profile) -> dict[str, Any]:
        items = [
            self.item(n, rec.paper, rec.why, rec.score, profile.name)
            for n, rec in enumerate(digest.items, 1)
        ]
        generated = digest.generated_at.astimezone(dt.UTC)
        return {
            "digest": digest,
            "profile": profile,
            "site_name": self.site_name,
            "items": items,
            "empty": not items,
            "omitted": 0,  # papers left out of the email to keep it under EMAIL_BYTES
            "subject": _subject(digest.day, items),
            "preheader": _preheader(items, profile),
            "day": _day_text(digest.day),
            "generated": f"{generated:%Y-%m-%d %H:%M} UTC",
            "interests": [display_text(i.name) for i in profile.interests],
            "view_url": self.links.view(profile.name, digest.key),
            "unsubscribe_url": self.links.unsubscribe(profile.name),
            "page_url": self.links.page(profile.name),
            "rss_url": self.links.feed(profile.name, "rss"),
            "atom_url": self.links.feed(profile.name, "atom"),
        }

    def _render(self, name: str, context: dict[str, Any]) -> str:
        env = self._html if name.endswith((".html", ".xml")) else self._text
        try:
            return env.get_template(name).render(context)
        except TemplateSyntaxError as exc:
            raise DigestError(f"{exc.filename or name}:{exc.lineno}: {exc.message}") from exc
        except TemplateNotFound as exc:
            raise DigestError(f"{exc.name}: template not found") from exc
        except Exception as exc:  # a user's template can fail in any way a Jinja expression can
            raise DigestError(f"{_where(exc.__traceback__, name)}: {exc}") from exc


#: Entries kept by the per-paper caches (a day's papers, many times over).
_CACHE_SIZE = 4096


@lru_cache(maxsize=_CACHE_SIZE)
def _paper_fields(
    paper: Paper,
) -> tuple[str, str, bool, str, str, str, str | None, str | None, str, tuple[str, ...], str]:
    """What an `Item` shows of a paper: the same for every profile it is sent to."""
    title = display_text(paper.title) or display_text(paper.key)
    abstract_full = display_text(paper.abstract)
    abstract, truncated = truncate(abstract_full, ABSTRACT_CHARS)
    if truncated:  # the cut may have dropped the close of an override opened before it
        abstract = display_text(abstract)
    return (
        title,
        abstract,
        truncated,
        abstract_full,
        display_text(keep_math(paper.title_raw, paper.title)) or title,
        display_text(keep_math(paper.abstract_raw, paper.abstract)),
        safe_url(paper.abs_url),
        safe_url(f"https://arxiv.org/pdf/{paper.arxiv_id}") if paper.arxiv_id else None,
        display_text(short_authors(paper.authors)),
        tuple(display_text(c) for c in paper.categories),
        (paper.announced or paper.first_seen.date()).isoformat(),
    )


@pass_environment
def _wordwrap(
    env: Environment,
    s: str,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    """Jinja's ``wordwrap``, cached: textwrap is slow and the same abstracts recur."""
    if wrapstring is None:
        wrapstring = env.newline_sequence
    if type(s) is not str:
        return do_wordwrap(env, s, width, break_long_words, wrapstring, break_on_hyphens)
    return _wordwrap_cached(s, width, break_long_words, wrapstring, break_on_hyphens)


_WRAP_ENV = Environment()


@lru_cache(maxsize=_CACHE_SIZE)
def _wordwrap_cached(
    s: str, width: int, break_long_words: bool, wrapstring: str, break_on_hyphens: bool
) -> str:
    # With `wrapstring` given, do_wordwrap does not read the environment.
    return do_wordwrap(_WRAP_ENV, s, width, break_long_words, wrapstring, break_on_hyphens)


def _where(tb: types.TracebackType | None, name: str) -> str:
    """``file:line`` of the innermost template frame (Jinja rewrites tracebacks so template
    frames carry the template's file name and line)."""
    where = name
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not filename.endswith(".py") and not filename.startswith("<"):
            where = f"{filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return where


def _day_text(day: dt.date) -> str:
    # Not strftime: %a and %b follow the process locale.
    return f"{_DAYS[day.weekday()]} {day.day} {_MONTHS[day.month - 1]}"


def _subject(day: dt.date, items: Sequence[Item]) -> str:
    head = f"Your digest for {_day_text(day)}: "
    if not items:
        return head + "nothing new"
    subject = head + (f"{len(items)} new paper" + ("s" if len(items) != 1 else ""))
    topics = list(dict.fromkeys(i.interest for i in items if i.interest))
    shown: list[str] = []
    for n, topic in enumerate(topics, 1):
        more = ", …" if n < len(topics) else ""
        if len(f"{subject} on {', '.join([*shown, topic])}{more}") > SUBJECT_CHARS:
            break
        shown.append(topic)
    if shown:
        subject += " on " + ", ".join(shown) + (", …" if len(shown) < len(topics) else "")
    return subject


def _preheader(items: Sequence[Item], profile: Profile) -> str:
    if not items:
        return (f"Nothing new reached relevance {profile.min_relevance:g} for {profile.name} "
                "this time.")
    text = "Top pick: " + items[0].title
    if len(items) > 1:
        text += f" — and {len(items) - 1} more"
    return text if len(text) <= PREHEADER_CHARS else display_text(text[: PREHEADER_CHARS - 1] + "…")
