"""Rendering fuzzed: papers whose every field is hostile come out as text in every format.

Titles, abstracts, authors, categories, ids, URLs and reasons are built from HTML, ``<script>``,
``javascript:`` links, markdown (links, images, headings, tables), Jinja syntax, right-to-left
overrides, zero-width and control characters, NUL, lone surrogates and 100 KB abstracts. Each
digest is rendered as the HTML email and its text part, the MIME message, the markdown page and
both feeds, and each output is parsed the way its reader would: a browser's HTML parser, an email
parser, an XML parser and feedparser, a markdown converter. Examples are derandomized;
``DIGEST_LONG_TESTS=1`` runs many more.
"""

from __future__ import annotations

import datetime as dt
import email
import os
import re
import xml.etree.ElementTree as ET
from email import policy
from email.message import EmailMessage
from html.parser import HTMLParser
from urllib.parse import urlsplit

import feedparser
import markdown as md  # type: ignore[import-untyped, unused-ignore]
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from digest.mailer import build_message
from digest.profiles import Interest, Profile
from digest.render import ABSTRACT_CHARS, FeedItem, Links, Renderer, display_text
from digest.types import Digest, Paper, Recommendation, Why

LONG = bool(os.environ.get("DIGEST_LONG_TESTS"))
FUZZ = settings(
    max_examples=500 if LONG else 25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

BASE = "https://digest.example.org"
LINKS = Links(BASE, token=lambda name: f"tok-{name}")
GENERATED = dt.datetime(2025, 11, 23, 7, 0, tzinfo=dt.UTC)
PROFILE = Profile.model_validate({
    "version": 1, "name": "ada", "email": "ada@example.org",
    "interests": (Interest(name="masked image modeling", text="masked autoencoders"),),
})
ATOM = "{http://www.w3.org/2005/Atom}"
#: Control characters (but tab and newline) and what XML 1.0 cannot hold.
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
#: Embeddings and overrides (closed by PDF, U+202C) and isolates (closed by PDI, U+2069).
EMBEDDINGS, ISOLATES = set("\u202a\u202b\u202d\u202e"), set("\u2066\u2067\u2068")

HOSTILE = [
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "<a href='javascript:alert(2)'>",
    '"><svg onload=alert(3)>', "javascript:alert(4)", "JaVaScRiPt:alert(5)", "data:text/html,x",
    "[click](javascript:alert(6))", "![img](javascript:alert(7))", "[ref]: javascript:alert(8)",
    "<http://evil.example>", "# heading", "## 1. fake", "---", "===", "* item", "1. item",
    "> quote", "| a | b |", "|---|---|", "`code`", "```", "**bold**", "__u__", "~~s~~", "\\",
    "{{ 7*7 }}", "{% for x in range(3) %}X{% endfor %}", "{# c #}", "{{ config }}", "${7*7}",
    "$a<b$", "$[x](javascript:alert(9))$", "$`x`$", "$$<script>$$", "\u202eevil", "\u2067rtl",
    "\u202c", "\u200bzero\u200dwidth", "\ufeff", "\x00", "\x01\x1b[31m", "\x7f", "\x85", "\u2028",
    "\r\n", "\nSubject: injected", "\r\nBcc: eve@example.org", "=?utf-8?q?x?=", "]]>",
    "<![CDATA[x]]>", "<!-- c -->", "&amp;", "&#0;", "&lt;script&gt;", "&", "<", ">", '"', "'",
    "Ünïcödé", "漢字", "😀", "\U0001d54f",
]
fragments = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=8))
hostile = st.lists(fragments, max_size=6).map("".join)
#: What the store can hold in a key: any text but lone surrogates (they cannot be encoded).
keys = hostile.map(lambda t: re.sub("[\ud800-\udfff]", "", t))
with_surrogates = st.one_of(hostile, hostile.map(lambda t: t + "\ud800" + t + "\udfff"))
huge = st.integers(1, 6).map(lambda n: ("word " * 20_000 + "x" * 100 * n)[: 100_000 + n])


@st.composite
def papers(draw: st.DrawFn, pid: int) -> Paper:
    title = draw(with_surrogates)
    abstract = draw(st.one_of(with_surrogates, huge,
                              st.tuples(hostile, huge).map(lambda t: t[0] + t[1])))
    math = draw(st.sampled_from(["", " $x<y$", " $[a](javascript:1)$", " $$**b**$$"]))
    arxiv_id = draw(st.one_of(st.none(), st.just(f"2501.{pid:05d}"), keys))
    return Paper(
        pid=pid,
        key=draw(st.one_of(st.just(f"2501.{pid:05d}"), keys)),
        title=title,
        abstract=abstract,
        authors=tuple(draw(st.lists(with_surrogates, max_size=6))),
        categories=tuple(draw(st.lists(hostile, max_size=3))),
        announced=dt.date(2025, 11, 22),
        first_seen=GENERATED,
        url=draw(st.one_of(st.none(), hostile, st.just("https://example.org/a b<c>\x00"),
                           st.just("javascript:alert(1)//https://x"))),
        arxiv_id=arxiv_id,
        version=None,
        title_raw=title + math,
        abstract_raw=abstract + math,
    )


@st.composite
def digests(draw: st.DrawFn) -> Digest:
    items = []
    for pid in range(1, draw(st.integers(1, 3)) + 1):
        why = Why(
            interest=draw(st.one_of(st.just("masked image modeling"), with_surrogates)),
            similarity=0.5,
            terms=tuple(draw(st.lists(with_surrogates, max_size=3))),
            authors=tuple(draw(st.lists(with_surrogates, max_size=2))),
            seed_title=draw(st.one_of(st.none(), with_surrogates)),
        )
        items.append(Recommendation(draw(papers(pid)), 0.9, why))
    # The store's papers are distinct: no two share a key or an abstract page.
    assume(len({r.paper.key for r in items}) == len(items))
    urls = [r.paper.abs_url for r in items if r.paper.abs_url]
    assume(len(set(urls)) == len(urls))
    return Digest("ada", "2025-11-23", dt.date(2025, 11, 23), tuple(items), GENERATED)


# -- readers ----------------------------------------------------------------------------------


class Parsed(HTMLParser):
    """Tags, attributes and text of an HTML document, as a browser would see them."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.chunks: list[str] = []
        #: Text of each <p> by its class ("abstract", "meta", ...).
        self.paragraphs: list[tuple[str, str]] = []
        self._open: list[str] | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "p":
            self._open = [dict(attrs).get("class") or ""]

    def handle_endtag(self, tag: str) -> None:
        if tag == "p" and self._open is not None:
            self.paragraphs.append((self._open[0], squash("".join(self._open[1:]))))
            self._open = None

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)
        if self._open is not None:
            self._open.append(data)

    @property
    def text(self) -> str:
        return squash("".join(self.chunks))


def squash(text: str) -> str:
    return " ".join(text.split())


def check_html(html: str, allowed: set[str]) -> Parsed:
    """Only the template's own elements; links only to http(s); no event handlers."""
    page = Parsed(html)
    assert {tag for tag, _ in page.tags} <= allowed, {tag for tag, _ in page.tags} - allowed
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            assert not re.match(r"\W*(javascript|data|vbscript):", value or "", re.I), (tag, value)
        if "href" in attrs:
            href = attrs["href"] or ""
            assert urlsplit(href).scheme == "https" and urlsplit(href).netloc, attrs
    assert not CONTROL.search(html)
    return page


def bidi_closed(text: str) -> bool:
    """Every right-to-left (or other) override or isolate opened is closed again, as Unicode's
    bidi algorithm (UAX #9) reads the closers: a PDF never closes an isolate, a PDI closes its
    isolate and everything opened inside it."""
    stack: list[str] = []
    for ch in text:
        if ch in EMBEDDINGS or ch in ISOLATES:
            stack.append(ch)
        elif ch == "\u202c" and stack and stack[-1] in EMBEDDINGS:
            stack.pop()
        elif ch == "\u2069" and any(c in ISOLATES for c in stack):
            while stack.pop() not in ISOLATES:
                pass
    return not stack


def shown_title(paper: Paper) -> str:
    return display_text(paper.title) or display_text(paper.key)


EMAIL_TAGS = {"html", "head", "meta", "title", "style", "body", "div", "table", "tbody", "tr",
              "td", "p",
              "h2", "a", "code"}


# -- the tests ------------------------------------------------------------------------------------


@FUZZ
@given(digest=digests())
def test_email_html_text_and_message(digest: Digest) -> None:
    rendered = Renderer(links=LINKS).email(digest, PROFILE)
    page = check_html(rendered.html, EMAIL_TAGS)
    assert sum(tag == "style" for tag, _ in page.tags) == 1  # the template's own, in <head>
    assert bidi_closed(page.text)
    for line in (rendered.subject, rendered.preheader):
        assert not CONTROL.search(line) and "\n" not in line and "\r" not in line
        assert bidi_closed(line)
    assert not CONTROL.search(rendered.text)
    assert bidi_closed(rendered.text)  # its URLs too: they are shown as text there
    text = squash(rendered.text)
    for rec in digest.items:
        paper = rec.paper
        title = shown_title(paper)
        assert squash(title) in page.text  # as text: not markup, not evaluated, not dropped
        assert squash(title) in text
        abstract = display_text(paper.abstract)
        shown = [text for kind, text in page.paragraphs if kind == "abstract"]
        if len(abstract) > ABSTRACT_CHARS:  # cut on a word, with a link to the whole
            cut = [t.removesuffix(" read more") for t in shown if squash(abstract[:300]) in t]
            assert cut and all(len(t) <= ABSTRACT_CHARS + 8 for t in cut), cut
            assert all(t.rstrip("\u202c\u2069").endswith("…") for t in cut), cut
        else:
            assert squash(abstract) in page.text
        if paper.url and not paper.url.lower().startswith(("http://", "https://")):
            assert f"Read more: {paper.url.strip()}" not in rendered.text

    message = build_message(
        sender="Paper Digest <digest@example.org>", to=PROFILE.email or "",
        subject=rendered.subject, text=rendered.text, html=rendered.html,
        message_id="<x@example.org>", date=GENERATED, list_id="ada.digest.example.org",
        unsubscribe_url=LINKS.unsubscribe("ada"), unsubscribe_mailto="u@example.org",
    )
    assert max(len(line) for line in message.split(b"\r\n")) <= 998
    assert message.isascii()
    parsed = email.message_from_bytes(message, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    assert all(part.defects == [] for part in parsed.walk())
    assert {name.lower() for name in parsed} == {
        "from", "to", "subject", "date", "message-id", "list-id", "list-unsubscribe",
        "list-unsubscribe-post", "auto-submitted", "mime-version", "content-type",
    }
    assert parsed["To"] == "ada@example.org"
    assert parsed["Subject"] == rendered.subject
    plain, html = parsed.iter_parts()
    assert plain.get_content().replace("\r\n", "\n").rstrip() == rendered.text.rstrip()
    assert html.get_content().replace("\r\n", "\n").rstrip() == rendered.html.rstrip()


@FUZZ
@given(digest=digests())
def test_markdown_has_no_markup_from_papers(digest: Digest) -> None:
    text = Renderer(links=LINKS).markdown(digest, PROFILE)
    assert not re.search(r"<[A-Za-z!/?]", text), "raw HTML in the markdown"
    assert not CONTROL.search(text)
    assert bidi_closed(text)
    # Emphasis inside $...$ math is GitHub's to typeset; python-markdown, knowing no math,
    # makes it <strong>. That is formatting, never markup or a link from the paper.
    math = any("$" in r.paper.title_raw + r.paper.abstract_raw for r in digest.items)
    page = check_html(md.markdown(text), {"h1", "h2", "p", "a", "em"} | (
        {"strong"} if math else set()))
    # Links are the template's: each paper's title and PDF, nothing from the paper's text.
    links = [a["href"] for tag, a in page.tags if tag == "a"]
    assert len(links) <= 2 * len(digest.items)
    assert all(href.startswith("https://") for href in links)
    shown = as_github(page.text)
    for rec in digest.items:
        if "$" not in rec.paper.title_raw + shown_title(rec.paper):  # math is typeset
            assert as_github(squash(shown_title(rec.paper))) in shown
        if "$" not in rec.paper.abstract_raw:  # the whole abstract
            assert as_github(squash(display_text(rec.paper.abstract))) in shown
        interest = display_text(rec.why.interest)
        if interest:
            assert as_github(f"matches “{squash(interest)}”") in shown


def as_github(text: str) -> str:
    """python-markdown does not read \\| \\~ \\$ \\= as escapes, GitHub does: drop the backslash
    there, on both sides of a comparison (a backslash written before | stays ambiguous)."""
    return re.sub(r"\\([|~$=])", r"\1", text)


def feed_entries(data: bytes) -> list[tuple[str, str]]:
    """(title, HTML body) of each entry, as the XML holds them."""
    root = ET.fromstring(data)  # well-formed XML, or this raises
    if root.tag == "rss":
        return [(item.findtext("title") or "", item.findtext("description") or "")
                for item in root.iter("item")]
    return [(entry.findtext(f"{ATOM}title") or "", entry.findtext(f"{ATOM}content") or "")
            for entry in root.iter(f"{ATOM}entry")]


@FUZZ
@given(digest=digests())
def test_feeds_are_well_formed_and_show_papers_as_text(digest: Digest) -> None:
    items = [FeedItem(r.paper, GENERATED - dt.timedelta(hours=n), r.why)
             for n, r in enumerate(digest.items)]
    rss, atom = Renderer(links=LINKS).feeds(PROFILE, items, now=GENERATED)
    for data in (rss, atom):
        parsed = feedparser.parse(data)
        assert not parsed.bozo, parsed.get("bozo_exception")
        for entry in parsed.entries:
            for link in entry.get("links", []):
                assert link.href.startswith("https://"), link.href
            assert entry.id.startswith(("https://", "urn:digest:paper:")), entry.id
        entries = feed_entries(data)
        # feedgen requires a title: an entry without one shows the paper's key instead.
        assert [title for title, _ in entries] == [
            shown_title(i.paper) or i.paper.key or "(untitled)" for i in items]
        for (_, body), item in zip(entries, items, strict=True):
            page = check_html(body, {"p", "a"})
            assert squash(display_text(item.paper.abstract)) in page.text  # whole, as text
            assert bidi_closed(body)
    for element in ET.fromstring(atom).iter(f"{ATOM}link"):
        assert (element.get("href") or "").startswith("https://")


def test_a_100_kb_abstract_is_cut_in_the_email_and_whole_elsewhere() -> None:
    abstract = ("token " * 20_000)[:100_000] + "END"
    paper = Paper(pid=1, key="2501.00001", title="<b>Huge</b>", abstract=abstract, authors=(),
                  categories=(), announced=dt.date(2025, 11, 22), first_seen=GENERATED,
                  url=None, arxiv_id="2501.00001", title_raw="<b>Huge</b>",
                  abstract_raw=abstract)
    digest = Digest("ada", "2025-11-23", dt.date(2025, 11, 23),
                    (Recommendation(paper, 0.9, Why("x", 0.5)),) * 3, GENERATED)
    renderer = Renderer(links=LINKS)
    rendered = renderer.email(digest, PROFILE)
    assert len(rendered.html.encode("utf-8")) < 100_000
    page = Parsed(rendered.html)
    assert page.text.count("read more") == 3 and "END" not in page.text
    shown = re.findall(r"token[ token]*…", page.text)
    assert len(shown) == 3 and all(len(s) <= ABSTRACT_CHARS + 1 for s in shown)
    assert rendered.text.count("Read more: https://arxiv.org/abs/2501.00001") == 3
    assert "END" in renderer.markdown(digest, PROFILE)
    rss, atom = renderer.feeds(PROFILE, [FeedItem(paper, GENERATED, None)], now=GENERATED)
    assert b"END" in rss and b"END" in atom


def test_what_fuzzing_found() -> None:
    # A paper whose title is nothing but control characters falls back to its key, which was
    # shown raw: NUL in the email and markdown, an unclosed override, and feeds that raised.
    paper = Paper(pid=1, key="k\x00\u202eevil<script>", title="\x00\x01", abstract="a",
                  authors=(), categories=(), announced=None, first_seen=GENERATED, url=None,
                  arxiv_id="2501.00001 x\x00")
    digest = Digest("ada", "2025-11-23", dt.date(2025, 11, 23),
                    (Recommendation(paper, 0.9, Why("x", 0.5)),), GENERATED)
    renderer = Renderer(links=LINKS)
    rendered = renderer.email(digest, PROFILE)
    assert rendered.preheader == "Top pick: k\u202eevil<script>\u202c"
    page = check_html(rendered.html, EMAIL_TAGS)
    assert "https://arxiv.org/pdf/2501.00001%20x" in [a.get("href") for _, a in page.tags]
    assert "k\u202eevil&lt;script&gt;\u202c" in renderer.markdown(digest, PROFILE)
    for data in renderer.feeds(PROFILE, [FeedItem(paper, GENERATED, None)], now=GENERATED):
        (entry,) = feedparser.parse(data).entries
        assert entry.title == "k\u202eevil<script>\u202c"


def test_urls_cannot_reverse_the_text_after_them() -> None:
    paper = Paper(pid=1, key="k", title="t", abstract="a", authors=(), categories=(),
                  announced=None, first_seen=GENERATED,
                  url="https://example.org/\u202egro.vixra//:sptth", arxiv_id=None)
    digest = Digest("ada", "2025-11-23", dt.date(2025, 11, 23),
                    (Recommendation(paper, 0.9, Why("x", 0.5)),), GENERATED)
    text = Renderer(links=LINKS).email(digest, PROFILE).text
    assert "https://example.org/%E2%80%AEgro.vixra//:sptth" in text
    assert "\u202e" not in text


def test_a_subject_that_looks_encoded_arrives_as_written() -> None:
    # The email package decoded "=?utf-8?q?x?=" in a subject: the message said "x".
    subject = "Your digest for Sun 23 Nov: 1 new paper on =?utf-8?q?x?="
    message = build_message(
        sender="d@example.org", to="ada@example.org", subject=subject, text="t", html="h",
        message_id="<x@example.org>", date=GENERATED, list_id="l", unsubscribe_url=None,
        unsubscribe_mailto=None,
    )
    assert email.message_from_bytes(message, policy=policy.default)["Subject"] == subject
