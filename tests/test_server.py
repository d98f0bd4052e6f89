"""`digest serve`: the real server on loopback, spoken to over HTTP, tampered tokens included;
its routes over each store backend in turn (SQLite, PostgreSQL).

A store holds four papers; Ada was sent two digests (2026-06-01, whose markdown is only in its
file, and 2026-06-08, in the ledger) and has one in flight. Ben has a profile and nothing else.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import feedparser
import httpx
import pytest
from stores import Backend

from digest.app import DigestApp
from digest.config import Config, ServerConfig
from digest.errors import DigestError
from digest.profiles import load_profile
from digest.store import Store
from digest.tokens import make_token
from digest.types import Digest, Paper, Recommendation, Why
from digest.web import DigestServer, make_server, render_markdown, serve, set_subscribed

NOW = dt.datetime(2026, 6, 8, 12, 0, tzinfo=dt.UTC)
SECRET = "test-secret-0123456789"
SECRET_ENV = "DIGEST_TEST_SERVER_SECRET"
PUBLIC = "https://digest.example.org"
HOSTILE_TITLE = "<script>alert(1)</script> Attention is <b>all</b> you need"
SENTINEL = "TOP-SECRET-SENTINEL"

ADA_YAML = """\
# Ada's profile: comments here must survive feedback from the web.
version: 1
email: ada@example.org

interests:
  - name: masked image modeling
    text: masked autoencoders, MIM  # what she reads

# Papers Ada liked so far.
liked:
  - 2506.00009  # liked by hand
"""
BEN_YAML = "version: 1\ninterests:\n  - dataset distillation\n"

PAPERS = [
    # key, title (raw, with math where it has some), abstract
    ("2506.00001", "Scaling masked autoencoders as $x^2$", "We mask $a_1 < b_2$ of patches."),
    ("2506.00002", HOSTILE_TITLE, "Transformers <img src=x onerror=alert(2)>."),
    ("2506.00003", "A paper nobody was sent", "Still liked from the web."),
    ("2506.00004", "Dataset distillation, a week earlier", "Condensing a training set."),
]


def paper_row(key: str, title: str, abstract: str) -> dict[str, object]:
    return {
        "key": key, "arxiv_id": key, "version": 1, "title": title.replace("$", ""),
        "abstract": abstract, "title_raw": title, "abstract_raw": abstract,
        "norm_title": title.lower(), "authors": json.dumps(["Ada Lovelace", "Alan Turing"]),
        "categories": json.dumps(["cs.CV"]), "announced": "2026-06-05", "first_seen": NOW,
        "updated_at": NOW, "url": f"https://arxiv.org/abs/{key}v1", "content_hash": "0" * 40,
    }


@dataclass
class Site:
    app: DigestApp
    base: str
    tmp: Path
    papers: dict[str, Paper]

    @property
    def ada_yaml(self) -> Path:
        return self.tmp / "profiles" / "ada.yaml"

    def url(self, path: str) -> str:
        return self.base.rstrip("/") + path

    def unsubscribed(self) -> set[str]:
        with self.app.open_store() as store:
            return store.unsubscribed()


def ada() -> str:
    """Ada's act token: her page, votes, unsubscribe."""
    return make_token(SECRET, "ada", "act")


def ada_feed() -> str:
    """Ada's feed token: it only reads."""
    return make_token(SECRET, "ada", "feed")


def tampered(token: str) -> str:
    """The same token with the last character of its signature changed."""
    return token[:-1] + ("A" if token[-1] != "A" else "B")


def send(store: Store, app: DigestApp, key: str, papers: list[Paper], *, sent_at: dt.datetime,
         markdown: str | None, complete: bool = True, files: tuple[str, ...] = ()) -> None:
    items = [{"pid": p.pid, "score": 0.9, "why": Why("masked image modeling", 0.5,
                                                     ("mask",)).as_dict()} for p in papers]
    delivery = store.record_delivery(
        profile="ada", key=key, covered_to=dt.date.fromisoformat(key), status="pending",
        message_id=f"<{key}@example.org>", message=b"Subject: x\r\n\r\nx", markdown=markdown,
        items=items, now=sent_at,
    )
    if complete:
        store.complete_delivery(delivery.id, files=files, now=sent_at)


def make_digest_app(tmp_path: Path, url: str | None = None) -> DigestApp:
    """Ada and Ben's profiles, an out directory, and a file outside it that must stay unread;
    the store at `url` (SQLite in `tmp_path` by default: the tests of sockets and tokens)."""
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "ada.yaml").write_text(ADA_YAML, encoding="utf-8")
    (tmp_path / "profiles" / "ben.yaml").write_text(BEN_YAML, encoding="utf-8")
    (tmp_path / "secret.md").write_text(SENTINEL, encoding="utf-8")
    config = Config(
        out_dir=str(tmp_path / "out"),
        server=ServerConfig(public_url=PUBLIC, secret_env=SECRET_ENV),
    )
    return DigestApp(config, url or f"sqlite:///{tmp_path}/digest.sqlite",
                     str(tmp_path / "profiles"), clock=lambda: NOW)


def fill(app: DigestApp, tmp_path: Path) -> dict[str, Paper]:
    """The papers, and Ada's digests as runs would have left them in the ledger."""
    with app.open_store() as store:
        with store.transaction() as tx:
            tx.insert_papers([paper_row(*p) for p in PAPERS])
        papers = {p.key: p for p in store.papers_by_pid(range(1, 10)).values()}
        profile = load_profile(tmp_path / "profiles" / "ada.yaml")
        chosen = [papers["2506.00001"], papers["2506.00002"]]
        digest = Digest("ada", "2026-06-08", dt.date(2026, 6, 8), tuple(
            Recommendation(p, 0.9, Why("masked image modeling", 0.5, ("mask",)))
            for p in chosen), NOW)
        markdown = app.renderer().markdown(digest, profile)
        week_ago = NOW - dt.timedelta(days=7)
        # As a run before markdown was kept in the ledger: only the file has it.
        send(store, app, "2026-06-01", [papers["2506.00004"]], sent_at=week_ago, markdown=None,
             files=(str(tmp_path / "out" / "ada" / "2026-06-01.md"),))
        send(store, app, "2026-06-08", chosen, sent_at=NOW, markdown=markdown)
        send(store, app, "2026-06-09", [papers["2506.00003"]], sent_at=NOW, markdown="# later",
             complete=False)
    (tmp_path / "out" / "ada").mkdir(parents=True)
    (tmp_path / "out" / "ada" / "2026-06-01.md").write_text(
        "# The digest of 1 June\n\nOne paper on *dataset distillation*.\n", encoding="utf-8")
    return papers


@contextmanager
def running_site(tmp_path: Path, url: str | None = None) -> Iterator[Site]:
    """The real server on a free loopback port, in a thread, over a filled store (at `url`)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv(SECRET_ENV, SECRET)
        app = make_digest_app(tmp_path, url)
        papers = fill(app, tmp_path)
        server = make_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield Site(app, server.url, tmp_path, papers)
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


@pytest.fixture
def digest_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DigestApp:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    return make_digest_app(tmp_path)


@pytest.fixture(scope="module")
def transport() -> Iterator[httpx.HTTPTransport]:
    # One transport for every client: building one reads the system's CA bundle (slow).
    with httpx.HTTPTransport() as transport:
        yield transport


def client_of(site: Site, transport: httpx.HTTPTransport) -> httpx.Client:
    return httpx.Client(base_url=site.base, transport=transport, trust_env=False,
                        follow_redirects=False, timeout=5)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, module_backend: Backend) -> Iterator[Site]:
    """A site for the tests that only read (they check that nothing changed, too), on each
    backend in turn."""
    root = tmp_path_factory.mktemp("shared")
    with running_site(root, module_backend.new_url(root)) as site:
        yield site


@pytest.fixture(scope="module")
def reader(shared: Site, transport: httpx.HTTPTransport) -> Iterator[httpx.Client]:
    with client_of(shared, transport) as client:
        yield client


@pytest.fixture
def site(tmp_path: Path, store_url: str) -> Iterator[Site]:
    """A site of its own, for a test that changes something."""
    with running_site(tmp_path, store_url) as site:
        yield site


@pytest.fixture
def client(site: Site, transport: httpx.HTTPTransport) -> Iterator[httpx.Client]:
    with client_of(site, transport) as client:
        yield client


def raw_get(site: Site, path: str) -> tuple[int, bytes]:
    """GET `path` exactly as written: no client normalizes its dots or encoded slashes."""
    host, port = site.base.removeprefix("http://").rstrip("/").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# --- feeds --------------------------------------------------------------------------------------


def test_feeds_hold_what_the_ledger_says_was_sent(reader: httpx.Client) -> None:
    for fmt, media_type in (("atom", "application/atom+xml"), ("rss", "application/rss+xml")):
        response = reader.get(f"/feeds/{ada_feed()}/feed.{fmt}")

        assert response.status_code == 200
        assert response.headers["content-type"].startswith(media_type)
        feed = feedparser.parse(response.content)
        assert not feed.bozo
        # Newest first (ties by key); the digest in flight (2506.00003) was never sent.
        assert [entry.link for entry in feed.entries] == [
            "https://arxiv.org/abs/2506.00001",
            "https://arxiv.org/abs/2506.00002",
            "https://arxiv.org/abs/2506.00004",
        ]
        self_links = [link.href for link in feed.feed.links if link.rel == "self"]
        assert self_links == [f"{PUBLIC}/feeds/{ada_feed()}/feed.{fmt}"]


def test_feeds_answer_conditional_requests_with_304(reader: httpx.Client) -> None:
    first = reader.get(f"/feeds/{ada_feed()}/feed.atom")
    etag, last_modified = first.headers["etag"], first.headers["last-modified"]
    assert last_modified == "Mon, 08 Jun 2026 12:00:00 GMT"

    again = reader.get(f"/feeds/{ada_feed()}/feed.atom", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag

    by_date = reader.get(f"/feeds/{ada_feed()}/feed.atom",
                         headers={"If-Modified-Since": last_modified})
    assert by_date.status_code == 304

    other = reader.get(f"/feeds/{ada_feed()}/feed.atom", headers={"If-None-Match": '"stale"'})
    assert other.status_code == 200
    assert other.content == first.content
    # RSS is another document, so another ETag.
    assert reader.get(f"/feeds/{ada_feed()}/feed.rss").headers["etag"] != etag


def test_head_on_a_feed_has_headers_and_no_body(reader: httpx.Client) -> None:
    response = reader.head(f"/feeds/{ada_feed()}/feed.rss")
    assert response.status_code == 200
    assert response.content == b""
    assert int(response.headers["content-length"]) > 0


def test_a_profile_never_sent_anything_has_a_valid_empty_feed(reader: httpx.Client) -> None:
    response = reader.get(f"/feeds/{make_token(SECRET, 'ben', 'feed')}/feed.atom")
    assert response.status_code == 200
    feed = feedparser.parse(response.content)
    assert not feed.bozo
    assert feed.entries == []


# --- tokens -------------------------------------------------------------------------------------


def every_route(token: str) -> list[tuple[str, str]]:
    return [
        ("GET", f"/p/{token}"),
        ("GET", f"/feeds/{token}/feed.atom"),
        ("GET", f"/feeds/{token}/feed.rss"),
        ("GET", f"/unsubscribe/{token}"),
        ("POST", f"/unsubscribe/{token}"),
        ("GET", f"/feedback/{token}?paper=2506.00003&v=like"),
        ("POST", f"/feedback/{token}?paper=2506.00003&v=like"),
        ("GET", f"/digests/{token}/"),
        ("GET", f"/digests/{token}/2026-06-08"),
    ]


@pytest.mark.parametrize("token", [
    pytest.param(tampered(make_token(SECRET, "ada")), id="tampered signature"),
    pytest.param(tampered(make_token(SECRET, "ada", "feed")), id="tampered feed token"),
    pytest.param(make_token(SECRET, "ada").replace("ada.", "ben."), id="another name"),
    pytest.param(make_token(SECRET, "ada").replace(".a", ".f", 1), id="act relabelled feed"),
    pytest.param(make_token(SECRET, "ada", "feed").replace(".f", ".a", 1),
                 id="feed relabelled act"),
    pytest.param(make_token(SECRET, "ada", "feed").replace(".f", ".v", 1),
                 id="feed relabelled vote"),
    pytest.param(make_token("another-secret", "ada"), id="foreign secret"),
    pytest.param("ada", id="bare name"),
    pytest.param("ada.", id="empty signature"),
])
def test_a_token_that_is_not_ours_gets_403_and_changes_nothing(
    shared: Site, reader: httpx.Client, token: str
) -> None:
    before = shared.ada_yaml.read_bytes()
    for method, path in every_route(token):
        response = reader.request(method, path, content=b"List-Unsubscribe=One-Click")
        assert response.status_code == 403, (method, path)
        assert b"2506.0000" not in response.content
    assert shared.unsubscribed() == set()
    assert shared.ada_yaml.read_bytes() == before


def test_a_genuine_token_of_a_profile_that_is_gone_gets_404(
    shared: Site, reader: httpx.Client
) -> None:
    act, feed = make_token(SECRET, "zoe"), make_token(SECRET, "zoe", "feed")
    routes = [*(r for r in every_route(act) if "/feeds/" not in r[1]),
              *(r for r in every_route(feed) if "/feeds/" in r[1])]
    for method, path in routes:
        assert reader.request(method, path).status_code == 404, (method, path)
    assert shared.unsubscribed() == set()


# --- paths --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "/feeds",
    "/feeds/{ada}",
    "/feeds/{ada}/feed.json",
    "/feeds/{ada}/feed.atom/more",
    "/unsubscribe/{ada}/extra",
    "/digests/{ada}/2026-6-8",
    "/digests/{ada}/2026-06-08.md",
    "/digests/{ada}/2026-06-08/",
    "/digests//2026-06-08",
    "/etc/passwd",
    "/favicon.ico",
])
def test_unknown_paths_get_404(reader: httpx.Client, path: str) -> None:
    response = reader.get(path.format(ada=ada()))
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("path", [
    "/digests/{ada}/../../etc/passwd",
    "/digests/{ada}/../../secret.md",
    "/digests/{ada}/%2e%2e/%2e%2e/secret.md",
    "/digests/{ada}/..%2f..%2fsecret.md",
    "/digests/{ada}/%2e%2e%2f%2e%2e%2fsecret",
    "/digests/{ada}/..%5c..%5csecret.md",
    "/digests/..%2f..%2f/secret.md",
    "/digests/{ada}%2f..%2f..%2f..%2fsecret.md",
    "/feeds/{ada}/..%2f..%2f..%2fsecret.md",
    "/feeds/%2e%2e/%2e%2e/secret.md",
    "/digests/{ada}/2026-06-01%00.md",
    "/../../../../etc/passwd",
    "/digests/{ada}/./2026-06-08",
])
def test_path_traversal_never_reaches_a_file(shared: Site, path: str) -> None:
    status, body = raw_get(shared, path.format(ada=ada()))
    assert status in (403, 404)
    assert SENTINEL.encode() not in body
    assert b"root:" not in body


# --- unsubscribe --------------------------------------------------------------------------------


def test_one_click_unsubscribe_is_a_200_without_cookies_or_redirect(
    site: Site, client: httpx.Client
) -> None:
    # What a mail provider sends (RFC 8058 3.2).
    response = client.post(
        f"/unsubscribe/{ada()}", content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    assert "location" not in response.headers
    assert "unsubscribed" in response.text
    assert site.unsubscribed() == {"ada"}

    # Idempotent, and the page's own button (an empty body is accepted too) says the same.
    again = client.post(f"/unsubscribe/{ada()}")
    assert again.status_code == 200
    assert site.unsubscribed() == {"ada"}


def test_unsubscribe_get_asks_with_a_button_and_changes_nothing(
    shared: Site, reader: httpx.Client
) -> None:
    response = reader.get(f"/unsubscribe/{ada()}")

    assert response.status_code == 200
    assert '<form method="post"' in response.text
    assert f'action="{ada()}"' in response.text
    assert '<button type="submit">Unsubscribe</button>' in response.text
    assert shared.unsubscribed() == set()


def test_resubscribe_undoes_it(site: Site, client: httpx.Client) -> None:
    client.post(f"/unsubscribe/{ada()}", content=b"List-Unsubscribe=One-Click")
    assert "Already unsubscribed" in client.get(f"/unsubscribe/{ada()}").text

    assert set_subscribed(site.app, "ada", True) is True
    assert site.unsubscribed() == set()
    assert set_subscribed(site.app, "ada", True) is False
    with pytest.raises(DigestError, match="no profile named 'zoe'"):
        set_subscribed(site.app, "zoe", False)


def test_a_profile_whose_file_has_errors_can_still_unsubscribe_and_vote(
    site: Site, client: httpx.Client
) -> None:
    site.ada_yaml.write_text(ADA_YAML + "max_papers: 9999  # out of range\n", encoding="utf-8")

    assert client.post(f"/unsubscribe/{ada()}").status_code == 200
    assert site.unsubscribed() == {"ada"}
    assert client.post(f"/feedback/{ada()}?paper=2506.00003&v=like").status_code == 200
    assert "2506.00003" in site.ada_yaml.read_text(encoding="utf-8")
    assert client.get(f"/digests/{ada()}/2026-06-08").status_code == 200
    # A feed is drawn for a profile, so it waits until the file is fixed.
    assert client.get(f"/feeds/{ada_feed()}/feed.atom").status_code == 503


def test_a_huge_body_is_refused(site: Site, client: httpx.Client) -> None:
    response = client.post(f"/unsubscribe/{ada()}", content=b"x" * 100_000)
    assert response.status_code == 413
    assert site.unsubscribed() == set()


# --- feedback -----------------------------------------------------------------------------------


def test_feedback_asks_first_then_records_a_like_keeping_comments(
    site: Site, client: httpx.Client
) -> None:
    before = site.ada_yaml.read_text(encoding="utf-8")
    url = f"/feedback/{ada()}?paper=arXiv:2506.00003v2&v=like"

    # A mail scanner that follows the link changes nothing.
    page = client.get(url)
    assert page.status_code == 200
    assert "A paper nobody was sent" in page.text
    assert '<form method="post"' in page.text
    assert site.ada_yaml.read_text(encoding="utf-8") == before

    # The button posts to the canonical key (any form of the id resolves to it).
    action = page.text.split('action="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert action == f"{ada()}?paper=2506.00003&v=like"
    done = client.post(f"/feedback/{action}")

    assert done.status_code == 200
    assert "Thanks" in done.text
    after = site.ada_yaml.read_text(encoding="utf-8")
    assert load_profile(site.ada_yaml).liked == ("2506.00009", "2506.00003")
    for comment in ("# Ada's profile", "# what she reads", "# Papers Ada liked so far.",
                    "# liked by hand"):
        assert comment in after

    assert "Already noted" in client.post(f"/feedback/{action}").text


def test_a_dislike_moves_a_liked_paper(site: Site, client: httpx.Client) -> None:
    response = client.post(f"/feedback/{ada()}?paper=2506.00009&v=dislike")
    # 2506.00009 is liked in the file but unknown to the store.
    assert response.status_code == 404

    client.post(f"/feedback/{ada()}?paper=2506.00001&v=like")
    client.post(f"/feedback/{ada()}?paper=2506.00001&v=dislike")
    profile = load_profile(site.ada_yaml)
    assert profile.liked == ("2506.00009",)
    assert profile.disliked == ("2506.00001",)


def test_votes_at_the_same_time_are_all_kept(site: Site, client: httpx.Client) -> None:
    keys = ["2506.00001", "2506.00002", "2506.00003", "2506.00004"]
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(
            lambda key: client.post(f"/feedback/{ada()}?paper={key}&v=like").status_code, keys))
    assert statuses == [200] * 4
    assert set(load_profile(site.ada_yaml).liked) == {"2506.00009", *keys}


@pytest.mark.parametrize("query", [
    "", "?paper=2506.00003", "?v=like", "?paper=2506.00003&v=love", "?paper=&v=like",
    "?paper=2506.00003&paper=2506.00001&v=like",
])
def test_a_malformed_feedback_link_is_a_400(
    site: Site, client: httpx.Client, query: str
) -> None:
    before = site.ada_yaml.read_bytes()
    assert client.post(f"/feedback/{ada()}{query}").status_code == 400
    assert site.ada_yaml.read_bytes() == before


@pytest.mark.parametrize("paper", ["2506.00003%00", "%00", "a%00b%20c"])
def test_a_feedback_link_naming_a_paper_with_a_nul_is_an_unknown_paper(
    reader: httpx.Client, shared: Site, paper: str
) -> None:
    # PostgreSQL cannot compare text with a NUL in it: such a paper is simply not stored.
    before = shared.ada_yaml.read_bytes()
    for method in ("GET", "POST"):
        response = reader.request(method, f"/feedback/{ada()}?paper={paper}&v=like")
        assert response.status_code == 404, (method, response.text)
        assert "Unknown paper" in response.text
    assert shared.ada_yaml.read_bytes() == before


# --- digests ------------------------------------------------------------------------------------


def test_the_digest_list_links_each_sent_digest(reader: httpx.Client) -> None:
    response = reader.get(f"/digests/{ada()}/")

    assert response.status_code == 200
    assert '<a href="2026-06-08">2026-06-08</a>' in response.text
    assert '<a href="2026-06-01">2026-06-01</a>' in response.text
    assert "2026-06-09" not in response.text  # still in flight

    bare = reader.get(f"/digests/{ada()}")
    assert bare.status_code == 308
    assert bare.headers["location"] == f"{ada()}/"


def test_a_digest_page_is_its_markdown_as_safe_html_with_math_intact(
    reader: httpx.Client,
) -> None:
    response = reader.get(f"/digests/{ada()}/2026-06-08")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    html = response.text
    assert "<h1>" in html and "<h2>" in html
    assert '<span class="arithmatex">\\(x^2\\)</span>' in html
    # What a paper says is text: shown, never markup.
    assert "<script" not in html.lower() and "<img" not in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Attention" in html
    assert 'href="https://arxiv.org/abs/2506.00001"' in html


def test_a_digest_without_markdown_in_the_ledger_is_read_from_its_file(
    reader: httpx.Client,
) -> None:
    response = reader.get(f"/digests/{ada()}/2026-06-01")
    assert response.status_code == 200
    assert "<h1>The digest of 1 June</h1>" in response.text
    assert "<em>dataset distillation</em>" in response.text


def test_a_digest_not_sent_or_not_there_is_404(reader: httpx.Client) -> None:
    assert reader.get(f"/digests/{ada()}/2026-06-09").status_code == 404
    assert reader.get(f"/digests/{ada()}/2026-05-01").status_code == 404
    assert reader.get(f"/digests/{make_token(SECRET, 'ben')}/2026-06-08").status_code == 404


def test_a_stored_digest_with_raw_html_is_sanitized(site: Site, client: httpx.Client) -> None:
    with site.app.open_store() as store:
        send(store, site.app, "2026-06-10", [], sent_at=NOW, markdown=(
            "# Hi\n\n<script>alert(1)</script>\n\n<img src=x onerror=alert(2)>\n\n"
            "[click](javascript:alert(3)) <iframe src=https://evil.example></iframe>\n"
        ))
    html = client.get(f"/digests/{ada()}/2026-06-10").text
    for bad in ("<script", "alert(1)", "onerror", "javascript:", "<iframe"):
        assert bad not in html


# --- every response -----------------------------------------------------------------------------


def test_every_response_carries_the_security_headers(client: httpx.Client) -> None:
    for method, path in [*every_route(ada()), *every_route(ada_feed()), ("GET", "/"),
                         ("GET", "/nope"),
                         ("GET", f"/feeds/{tampered(ada())}/feed.atom"),
                         ("DELETE", f"/unsubscribe/{ada()}")]:
        response = client.request(method, path)
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "set-cookie" not in response.headers


def test_requests_at_the_same_time_are_each_answered(reader: httpx.Client) -> None:
    paths = [f"/feeds/{ada_feed()}/feed.atom", f"/digests/{ada()}/",
             f"/digests/{ada()}/2026-06-08",
             f"/unsubscribe/{ada()}"] * 8
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda path: reader.get(path).status_code, paths))
    assert statuses == [200] * len(paths)


def test_a_wrong_method_is_405_with_allow(reader: httpx.Client) -> None:
    response = reader.post(f"/feeds/{ada_feed()}/feed.atom")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


def test_the_access_log_never_shows_tokens(
    reader: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="digest.web"):
        reader.get(f"/feeds/{ada_feed()}/feed.atom")
        # The request is logged once its response is out: give the server's thread a moment.
        deadline = time.monotonic() + 5
        while "feed.atom" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.01)
    assert "/feeds/<token>/feed.atom" in caplog.text
    assert ada_feed() not in caplog.text


# --- markdown -----------------------------------------------------------------------------------


@pytest.mark.parametrize("arithmatex", [True, False], ids=["arithmatex", "built-in"])
def test_markdown_keeps_math_and_drops_markup(arithmatex: bool) -> None:
    if arithmatex:
        pytest.importorskip("pymdownx.arithmatex")
    html = render_markdown(
        "Math $x_1^2$ and $a_1 < b_2$, not $5 or $6; \\$7; $$\\sum_i x_i$$ inline.\n\n"
        "<script>alert(1)</script> *emph*",
        arithmatex=arithmatex,
    )
    assert '<span class="arithmatex">\\(x_1^2\\)</span>' in html
    assert '<span class="arithmatex">\\(a_1 &lt; b_2\\)</span>' in html
    assert '<span class="arithmatex">\\[\\sum_i x_i\\]</span>' in html
    assert "not $5 or $6; $7" in html
    assert "<em>emph</em>" in html
    assert "<script" not in html and "alert" not in html


# --- starting and stopping ----------------------------------------------------------------------


def test_serve_refuses_to_start_without_a_secret(
    digest_app: DigestApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SECRET_ENV)
    with pytest.raises(DigestError, match=SECRET_ENV):
        serve(digest_app, "127.0.0.1", 0)


def test_serve_runs_until_told_to_stop(digest_app: DigestApp) -> None:
    stop = threading.Event()
    started: list[DigestServer] = []

    def ready(server: DigestServer) -> None:
        started.append(server)
        response = httpx.get(server.url + "nothing-here", trust_env=False, timeout=5)
        assert response.status_code == 404
        stop.set()

    worker = threading.Thread(target=serve, args=(digest_app, "127.0.0.1", 0),
                              kwargs={"ready": ready, "stop": stop})
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert started
    with pytest.raises(httpx.ConnectError):
        httpx.get(started[0].url, trust_env=False, timeout=2)


def test_a_taken_port_is_a_clear_error(shared: Site, digest_app: DigestApp) -> None:
    port = int(shared.base.rstrip("/").rsplit(":", 1)[1])
    with pytest.raises(DigestError, match=f"cannot listen on 127.0.0.1:{port}"):
        make_server(digest_app, "127.0.0.1", port)
