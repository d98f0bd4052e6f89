"""Rendering: the email (HTML and text), the markdown page and the feeds, with real papers and
with hostile ones, whose titles and abstracts must come out as text in every format."""

from __future__ import annotations

import datetime as dt
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import feedparser
import markdown as md  # type: ignore[import-untyped, unused-ignore]
import pytest

from digest.errors import DigestError
from digest.profiles import Interest, Profile
from digest.render import (
    FeedItem,
    Links,
    Renderer,
    display_text,
    escape_markdown,
    shipped_templates_dir,
)
from digest.text import clean
from digest.types import Digest, Paper, Recommendation, Why

DATA = Path(__file__).resolve().parent / "data"
BASE = "https://digest.example.org"
LINKS = Links(BASE, token=lambda name: f"tok-{name}")
GENERATED = dt.datetime(2025, 11, 23, 7, 0, tzinfo=dt.UTC)
ATOM = "{http://www.w3.org/2005/Atom}"

HOSTILE_TITLE = (
    "<script>alert(1)</script> **bold** {{ 7*7 }} [x](javascript:alert(1))"
    " \u2067\u0639\u0631\u0628\u064a\u2069 zero\u200bwidth"
)
HOSTILE_ABSTRACT = (
    'We show <img src=x onerror=alert(1)> is text, & so is <a href="javascript:alert(2)">this'
    "</a>; also {% if true %}jinja{% endif %} and # not a heading."
)


def real_papers() -> list[Paper]:
    """Fourteen real arXiv records (tests/data/render_papers.json) as the store holds them:
    twelve with long abstracts, then two with ``$...$`` math in title and abstract."""
    records = json.loads((DATA / "render_papers.json").read_text(encoding="utf-8"))
    return [
        Paper(
            pid=n,
            key=r["id"],
            title=clean(r["title"]),
            abstract=clean(r["abstract"]),
            authors=tuple(r["authors"]),
            categories=tuple(r["categories"]),
            announced=dt.date.fromisoformat(r["date"]),
            first_seen=dt.datetime.fromisoformat(r["date"]).replace(tzinfo=dt.UTC),
            url=f"https://arxiv.org/abs/{r['id']}v2",
            version=2,
            arxiv_id=r["id"],
            title_raw=r["title"],
            abstract_raw=r["abstract"],
        )
        for n, r in enumerate(records, 1)
    ]


def hostile_paper() -> Paper:
    return Paper(
        pid=99,
        key="2501.00001",
        title=HOSTILE_TITLE,
        abstract=HOSTILE_ABSTRACT,
        authors=("<b>Mallory</b>", "Eve [x](javascript:alert(3))"),
        categories=("cs.CV",),
        announced=dt.date(2025, 1, 2),
        first_seen=dt.datetime(2025, 1, 2, tzinfo=dt.UTC),
        url="javascript:alert(4)",  # a source's URL is not trusted either
        title_raw=HOSTILE_TITLE,
        abstract_raw=HOSTILE_ABSTRACT + " Math: $a<b$ and $[y](javascript:alert(5))$.",
    )


def profile(**changes: object) -> Profile:
    fields: dict[str, object] = {
        "version": 1,
        "name": "ada",
        "email": "ada@example.org",
        "interests": (
            Interest(name="masked image modeling", text="masked autoencoders, MIM"),
            Interest(name="dataset distillation", text="condensing a training set"),
        ),
    }
    return Profile.model_validate({**fields, **changes})


def digest_of(papers: list[Paper], interests: tuple[str, ...] = ()) -> Digest:
    names = interests or ("masked image modeling", "dataset distillation")
    items = tuple(
        Recommendation(p, 0.9 - n / 100, Why(names[n % len(names)], 0.5, ("mask", "token")))
        for n, p in enumerate(papers)
    )
    return Digest("ada", "2025-11-23", dt.date(2025, 11, 23), items, GENERATED)


class Parsed(HTMLParser):
    """Tags, hrefs and text of an HTML document, as a browser would see them."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.chunks: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)

    @property
    def text(self) -> str:
        return " ".join("".join(self.chunks).split())

    def names(self) -> set[str]:
        return {tag for tag, _ in self.tags}

    def hrefs(self) -> list[str]:
        return [a["href"] or "" for tag, a in self.tags if tag == "a" and "href" in a]


def body_of(entry: feedparser.FeedParserDict) -> str:
    """An entry's HTML: Atom content, or the RSS description."""
    return str(entry.content[0].value if "content" in entry else entry.summary)


def squash(text: str) -> str:
    return " ".join(text.split())


# -- hostile content renders as text everywhere -----------------------------------------------


def test_hostile_paper_is_text_in_the_html_email() -> None:
    email = Renderer(links=LINKS).email(digest_of([hostile_paper()]), profile())
    page = Parsed(email.html)
    assert not page.names() & {"script", "img", "iframe", "form", "b"}
    assert HOSTILE_TITLE in page.text
    assert squash(HOSTILE_ABSTRACT) in page.text
    assert "<b>Mallory</b>" in page.text
    assert not [h for h in page.hrefs() if not h.startswith("https://")]
    assert "49" not in page.text  # {{ 7*7 }} was not evaluated


def test_hostile_paper_is_text_in_the_text_part_and_subject() -> None:
    email = Renderer(links=LINKS).email(digest_of([hostile_paper()]), profile())
    assert HOSTILE_TITLE in squash(email.text)
    assert squash(HOSTILE_ABSTRACT) in squash(email.text)
    assert "javascript:alert(4)" not in email.text
    assert "\n" not in email.subject and "\n" not in email.preheader


def test_hostile_paper_is_text_in_markdown() -> None:
    text = Renderer(links=LINKS).markdown(digest_of([hostile_paper()]), profile())
    page = Parsed(md.markdown(text))
    assert not page.names() & {"script", "img", "iframe", "b", "strong"}
    assert not [h for h in page.hrefs() if h.lower().startswith("javascript")]
    assert HOSTILE_TITLE in page.text
    assert "We show <img src=x onerror=alert(1)> is text" in page.text
    assert "# not a heading" in page.text


def test_hostile_paper_is_text_in_feeds() -> None:
    item = FeedItem(hostile_paper(), GENERATED, Why("<i>x</i>", 0.5))
    for data in Renderer(links=LINKS).feeds(profile(), [item], now=GENERATED):
        parsed = feedparser.parse(data)
        assert not parsed.bozo, parsed.get("bozo_exception")
        (entry,) = parsed.entries
        assert entry.title == HOSTILE_TITLE
        body = Parsed(body_of(entry))
        assert squash(HOSTILE_ABSTRACT) in body.text
        assert not body.names() & {"script", "img"}
        assert "links" not in entry or all("javascript" not in lnk.href for lnk in entry.links)


def test_right_to_left_overrides_are_closed_where_they_are_opened() -> None:
    assert display_text("abc\u202edef") == "abc\u202edef\u202c"
    assert display_text("a\u2067b\u2069c") == "a\u2067b\u2069c"
    assert display_text("nul\x00 and\nnewline") == "nul and newline"


def test_markdown_escapes_only_what_markdown_would_read() -> None:
    assert escape_markdown("1. *a* [b](c) <d> $e$ x_y") == (
        r"1\. \*a\* \[b\](c) &lt;d&gt; \$e\$ x\_y"
    )
    assert escape_markdown("# h", line_start=False) == "# h"


# -- the email ----------------------------------------------------------------------------------


def test_full_digest_email_is_small_inlined_and_dark_mode_aware() -> None:
    papers = real_papers()[:12]
    assert all(len(p.abstract) > 1300 for p in papers)
    email = Renderer(links=LINKS).email(digest_of(papers), profile())
    size = len(email.html.encode("utf-8"))
    assert size < 100_000, size
    page = Parsed(email.html)
    assert '<meta name="color-scheme" content="light dark">' in email.html
    assert "@media (prefers-color-scheme: dark)" in email.html
    assert not page.names() & {"script", "form", "link", "input", "iframe"}
    assert "@import" not in email.html and "@font-face" not in email.html
    containers = [
        a for tag, a in page.tags if tag == "table" and "max-width: 600px" in (a.get("style") or "")
    ]
    assert len(containers) == 1 and containers[0]["role"] == "presentation"
    # Inlined: the class rules are on the elements themselves.
    tds = [a for tag, a in page.tags if tag == "td" and "cell" in (a.get("class") or "")]
    assert tds and all("padding" in (a.get("style") or "") for a in tds)
    hidden = [a for tag, a in page.tags if tag == "div" and "preheader" in (a.get("class") or "")]
    assert len(hidden) == 1 and "display: none" in (hidden[0].get("style") or "")
    assert email.preheader.startswith("Top pick: " + papers[0].title[:40])
    assert email.preheader in page.text
    hrefs = page.hrefs()
    assert hrefs and all(h.startswith("https://") for h in hrefs)
    assert f"{BASE}/digests/tok-ada/2025-11-23" in hrefs


def test_each_paper_shows_title_link_authors_abstract_and_why() -> None:
    papers = real_papers()[:12]
    email = Renderer(links=LINKS).email(digest_of(papers), profile())
    page = Parsed(email.html)
    first = papers[0]  # 16 authors, a 1469-character abstract
    assert "https://arxiv.org/abs/2503.11731" in page.hrefs()  # no version
    assert "Xianming Zeng, Sicong Du, Qifeng Chen et al." in page.text
    assert "Lizhe Liu" not in page.text
    assert "cs.CV, cs.RO · 2025-03-18" in page.text
    shown = re.search(r"Sensor simulation is pivotal.*?…", page.text)
    assert shown and 400 < len(shown.group(0)) <= 601
    assert first.abstract.startswith(shown.group(0)[:-1].rstrip())
    assert page.text.count("read more") == 12
    assert "Why: matches “masked image modeling” on mask, token" in page.text
    assert 'Why: matches "masked image modeling" on mask, token' in email.text
    assert "Read more: https://arxiv.org/abs/2503.11731" in email.text


def test_a_huge_digest_leaves_papers_out_to_stay_under_100_kb() -> None:
    papers = real_papers() * 8  # 112 papers
    email = Renderer(links=LINKS).email(digest_of(papers), profile(max_papers=200))
    assert len(email.html.encode("utf-8")) < 100_000
    shown = Parsed(email.html).text.count("read more")
    assert 20 < shown < 112
    assert f"{112 - shown} more papers did not fit in this email" in email.text
    assert email.subject.startswith("Your digest for Sun 23 Nov: 112 new papers")


def test_the_shipped_templates_are_found() -> None:
    found = shipped_templates_dir()
    assert {"email.html", "email.txt", "digest.md", "feed_entry.html"} <= {
        p.name for p in found.iterdir()
    }


def test_four_authors_are_all_shown() -> None:
    four = next(p for p in real_papers() if len(p.authors) == 4)
    text = Renderer().email(digest_of([four]), profile()).text
    assert ", ".join(four.authors) in text and "et al." not in text


def test_subject_names_the_day_the_count_and_topics_within_bounds() -> None:
    renderer = Renderer()
    email = renderer.email(digest_of(real_papers()[:12]), profile())
    assert email.subject == (
        "Your digest for Sun 23 Nov: 12 new papers on masked image modeling, dataset distillation"
    )
    topics = tuple(f"a rather long interest name number {n}" for n in range(6))
    long = renderer.email(digest_of(real_papers()[:6], topics), profile())
    assert len(long.subject) <= 120
    assert long.subject.startswith("Your digest for Sun 23 Nov: 6 new papers on a rather")
    assert long.subject.endswith(", …")


def test_empty_digest_is_a_nothing_new_note() -> None:
    email = Renderer(links=LINKS).email(digest_of([]), profile(send_empty=True))
    assert email.subject == "Your digest for Sun 23 Nov: nothing new"
    assert "Nothing new this time" in email.text
    assert "Nothing new this time" in Parsed(email.html).text
    assert "Unsubscribe" in email.text
    assert "Nothing new this time" in Renderer().markdown(digest_of([]), profile())


def test_feedback_and_unsubscribe_links_need_a_base_url_and_a_token() -> None:
    papers = real_papers()[:2]
    for links in (Links(None), Links(BASE), Links(None, token=lambda n: "t")):
        email = Renderer(links=links).email(digest_of(papers), profile())
        for part in (email.html, email.text):
            assert "/feedback/" not in part and "/unsubscribe/" not in part
            assert "/feeds/" not in part and "/digests/" not in part
        assert "remove “email” from formats in ada.yaml" in Parsed(email.html).text
    email = Renderer(links=LINKS).email(digest_of(papers), profile())
    hrefs = Parsed(email.html).hrefs()
    key = papers[0].key
    assert f"{BASE}/feedback/tok-ada?paper={key}&v=like" in hrefs
    assert f"{BASE}/feedback/tok-ada?paper={key}&v=dislike" in hrefs
    assert f"{BASE}/unsubscribe/tok-ada" in hrefs
    assert f"{BASE}/feeds/tok-ada/feed.rss" in hrefs
    assert f"{BASE}/unsubscribe/tok-ada" in email.text
    assert f"{BASE}/feedback/tok-ada?paper={key}&v=like" in email.text


def test_links_encode_keys_and_tokens() -> None:
    links = Links(BASE + "/", token=lambda n: f"{n}/x y")
    assert links.feedback("ada", "title:ab&c=d", "like") == (
        f"{BASE}/feedback/ada%2Fx%20y?paper=title%3Aab%26c%3Dd&v=like"
    )
    assert links.feed("ada", "atom") == f"{BASE}/feeds/ada%2Fx%20y/feed.atom"
    assert Links(None).view("ada", "2025-11-23") is None
    with pytest.raises(ValueError, match="absolute http"):
        Links("digest.example.org")


# -- markdown -------------------------------------------------------------------------------------


def test_markdown_keeps_math_and_full_abstracts() -> None:
    papers = real_papers()
    text = Renderer().markdown(digest_of(papers[12:]), profile())
    assert "## 1. [GSBAK$^K$: $top$-$K$ Geometric" in text
    assert "(https://arxiv.org/abs/2503.12827)" in text
    assert "GenM$^3$" in text
    assert papers[13].abstract_raw[-60:] in text  # not truncated
    assert text.startswith("# digest: papers for ada, Sun 23 Nov\n")


# -- templates --------------------------------------------------------------------------------


def test_a_user_template_overrides_the_shipped_one(tmp_path: Path) -> None:
    (tmp_path / "email.txt").write_text(
        '{% extends "shipped/email.txt" %}{% block footer %}Bye, {{ profile.name }}.{% endblock %}',
        encoding="utf-8",
    )
    (tmp_path / "digest.md").write_text("Only {{ items|length }} for {{ profile.name }}\n")
    renderer = Renderer(templates_dir=tmp_path)
    email = renderer.email(digest_of(real_papers()[:2]), profile())
    assert email.text.rstrip().endswith("Bye, ada.")
    assert "1. Industrial-Grade Sensor Simulation" in email.text
    assert "masked image modeling" in email.html  # not overridden: the shipped one
    assert renderer.markdown(digest_of(real_papers()[:2]), profile()) == "Only 2 for ada\n"


@pytest.mark.parametrize(
    ("name", "source", "where", "message"),
    [
        ("email.txt", "ok\nok\n{% if %}\n", ":3: ", "Expected an expression"),
        ("email.html", "<p>\n{{ nope }}</p>\n", ":2: ", "'nope' is undefined"),
        ("digest.md", "{% for i in items %}\n\n{{ i.nope }}{% endfor %}", ":3: ", "nope"),
    ],
)
def test_a_broken_user_template_names_its_file_and_line(
    tmp_path: Path, name: str, source: str, where: str, message: str
) -> None:
    (tmp_path / name).write_text(source, encoding="utf-8")
    renderer = Renderer(templates_dir=tmp_path)
    with pytest.raises(DigestError) as caught:
        if name == "digest.md":
            renderer.markdown(digest_of(real_papers()[:1]), profile())
        else:
            renderer.email(digest_of(real_papers()[:1]), profile())
    assert str(caught.value).startswith(f"{tmp_path / name}{where}")
    assert message in str(caught.value)


def test_a_missing_template_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DigestError, match="does not exist"):
        Renderer(templates_dir=tmp_path / "nope")


# -- feeds ----------------------------------------------------------------------------------------


def sent(papers: list[Paper], newest: dt.datetime, step: dt.timedelta) -> list[FeedItem]:
    return [
        FeedItem(p, newest - n * step, Why("dataset distillation", 0.4))
        for n, p in enumerate(papers)
    ]


def test_feeds_parse_with_expected_entries_newest_first() -> None:
    papers = real_papers()
    items = sent(papers, GENERATED, dt.timedelta(hours=6))[::-1]  # the order given is no matter
    rss, atom = Renderer(links=LINKS).feeds(profile(), items, now=GENERATED)
    for data, fmt in ((rss, "rss"), (atom, "atom")):
        parsed = feedparser.parse(data)
        assert not parsed.bozo, parsed.get("bozo_exception")
        assert parsed.version == ("rss20" if fmt == "rss" else "atom10")
        assert [e.title for e in parsed.entries] == [p.title for p in papers]
        assert [e.link for e in parsed.entries] == [
            f"https://arxiv.org/abs/{p.key}" for p in papers
        ]
        assert [e.id for e in parsed.entries] == [f"https://arxiv.org/abs/{p.key}" for p in papers]
        assert parsed.entries[0].published_parsed[:4] == (2025, 11, 23, 7)
        assert "https://arxiv.org/pdf/2503.11731" in body_of(parsed.entries[0])


def test_rss_guid_is_a_permalink_and_self_link_is_its_own() -> None:
    rss, _ = Renderer(links=LINKS).feeds(
        profile(), sent(real_papers()[:3], GENERATED, dt.timedelta(days=1)), now=GENERATED
    )
    channel = ET.fromstring(rss).find("channel")
    assert channel is not None
    assert channel.findtext("link") == f"{BASE}/"
    (self_link,) = channel.findall(f"{ATOM}link")
    assert self_link.get("rel") == "self"
    assert self_link.get("href") == f"{BASE}/feeds/tok-ada/feed.rss"
    assert channel.findtext("lastBuildDate") == "Sun, 23 Nov 2025 07:00:00 +0000"
    for item in channel.findall("item"):
        guid = item.find("guid")
        assert guid is not None and guid.get("isPermaLink") == "true"
        assert re.fullmatch(r"https://arxiv\.org/abs/\d{4}\.\d{5}", guid.text or "")


def test_atom_entries_have_one_alternate_link_and_html_content() -> None:
    _, atom = Renderer(links=LINKS).feeds(
        profile(), sent(real_papers()[:3], GENERATED, dt.timedelta(days=1)), now=GENERATED
    )
    feed = ET.fromstring(atom)
    links = {lnk.get("rel"): lnk.get("href") for lnk in feed.findall(f"{ATOM}link")}
    assert links == {"self": f"{BASE}/feeds/tok-ada/feed.atom", "alternate": f"{BASE}/"}
    assert feed.findtext(f"{ATOM}updated") == "2025-11-23T07:00:00+00:00"
    for entry in feed.findall(f"{ATOM}entry"):
        (link,) = entry.findall(f"{ATOM}link")
        assert link.get("rel") in (None, "alternate")
        content = entry.find(f"{ATOM}content")
        assert content is not None and content.get("type") == "html"


def test_feeds_keep_a_rolling_window_of_at_most_max_items() -> None:
    papers = real_papers()
    many = [
        Paper(
            **{
                **{f: getattr(p, f) for f in Paper.__dataclass_fields__},
                "pid": 1000 + n,
                "key": f"2511.{n:05d}",
                "arxiv_id": f"2511.{n:05d}",
            }
        )
        for n, p in enumerate(papers * 8)
    ]
    items = sent(many, GENERATED, dt.timedelta(hours=1))  # 112 in the last five days
    old = FeedItem(papers[0], GENERATED - dt.timedelta(days=31), None)
    rss, atom = Renderer().feeds(profile(), [old, *items], now=GENERATED)
    for data in (rss, atom):
        entries = feedparser.parse(data).entries
        assert len(entries) == 100
        assert [e.id for e in entries] == [f"https://arxiv.org/abs/{p.key}" for p in many[:100]]
    few = Renderer().feeds(profile(), [old, *items[:3]], now=GENERATED, window_days=1)
    assert len(feedparser.parse(few[0]).entries) == 3


def test_a_paper_sent_twice_is_one_entry_dated_by_its_latest_sending() -> None:
    paper = real_papers()[0]
    items = [
        FeedItem(paper, GENERATED - dt.timedelta(days=2), None),
        FeedItem(paper, GENERATED, None),
    ]
    parsed = feedparser.parse(Renderer().feeds(profile(), items, now=GENERATED)[1])
    (entry,) = parsed.entries
    assert entry.updated_parsed[:3] == (2025, 11, 23)


def test_feeds_are_the_same_bytes_whatever_the_time_of_rendering() -> None:
    items = sent(real_papers(), GENERATED, dt.timedelta(hours=3))
    renderer = Renderer(links=LINKS)
    first = renderer.feeds(profile(), items, now=GENERATED + dt.timedelta(minutes=5))
    later = renderer.feeds(profile(), items, now=GENERATED + dt.timedelta(days=20))
    assert first == later
    assert b"2025-11-23T07:05" not in first[1]


def test_an_empty_feed_is_valid_and_dated_by_a_fixed_epoch() -> None:
    rss, atom = Renderer().feeds(profile(), [], now=GENERATED)
    for data in (rss, atom):
        parsed = feedparser.parse(data)
        assert not parsed.bozo and parsed.entries == []
        assert parsed.feed.updated_parsed[:1] == (1970,)
    assert b'rel="self"' not in rss + atom  # no public URL, no self link


def test_feeds_need_an_aware_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Renderer().feeds(profile(), [], now=dt.datetime(2025, 11, 23))
