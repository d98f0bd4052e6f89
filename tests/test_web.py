"""The web side's defences and its production server, on the real server over loopback:
tokens per purpose, key rotation, cross-site POSTs, the personal page, requests that never
fully arrive, slow clients, and the profiles read once.

The site is `test_server`'s: Ada was sent two digests; Ben has a profile and nothing else. It
keeps its store in SQLite (what these tests are about is sockets and tokens; test_server runs
the routes on both backends), but for the personal page, which reads the ledger: on both.
"""

from __future__ import annotations

import datetime as dt
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from test_server import (
    ADA_YAML,
    NOW,
    SECRET,
    SECRET_ENV,
    Site,
    client_of,
    fill,
    make_digest_app,
    running_site,
)

from digest.app import DigestApp
from digest.cli import main
from digest.errors import DigestError
from digest.profiles import load_profile
from digest.tokens import Keyring, make_legacy_token, make_token
from digest.web import make_server
from digest.web.profilecache import RACY_NS, ProfileCache

ACT = make_token(SECRET, "ada", "act")
FEED = make_token(SECRET, "ada", "feed")
VOTE = "/feedback/{token}?paper=2506.00003&v=like"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with running_site(tmp_path) as site:
        yield site


@pytest.fixture
def client(site: Site) -> Iterator[httpx.Client]:
    with httpx.HTTPTransport() as transport, client_of(site, transport) as client:
        yield client


@pytest.fixture
def page_client(tmp_path: Path, store_url: str) -> Iterator[httpx.Client]:
    """A client of a site on each store backend in turn, for the pages that read the ledger."""
    with running_site(tmp_path, store_url) as site, httpx.HTTPTransport() as transport, \
            client_of(site, transport) as client:
        yield client


def address(site: Site) -> tuple[str, int]:
    host, port = site.base.removeprefix("http://").rstrip("/").rsplit(":", 1)
    return host, int(port)


# --- tokens with a purpose ----------------------------------------------------------------------


def test_a_feed_token_reads_but_cannot_unsubscribe_vote_or_open_the_page(
    site: Site, client: httpx.Client
) -> None:
    before = site.ada_yaml.read_bytes()

    assert client.get(f"/feeds/{FEED}/feed.atom").status_code == 200
    assert client.get(f"/digests/{FEED}/2026-06-08").status_code == 200
    for method, path in [("POST", f"/unsubscribe/{FEED}"), ("GET", f"/unsubscribe/{FEED}"),
                         ("POST", VOTE.format(token=FEED)), ("GET", VOTE.format(token=FEED)),
                         ("GET", f"/p/{FEED}")]:
        response = client.request(method, path, content=b"List-Unsubscribe=One-Click")
        assert response.status_code == 403, (method, path)

    assert site.unsubscribed() == set()
    assert site.ada_yaml.read_bytes() == before


def test_an_act_token_is_not_a_feed_token(client: httpx.Client) -> None:
    # The feed URL is the one people share; the act token must never be needed (or work) there.
    assert client.get(f"/feeds/{ACT}/feed.atom").status_code == 403


def test_a_page_reached_with_a_feed_token_never_shows_an_act_token(client: httpx.Client) -> None:
    listing = client.get(f"/digests/{FEED}/").text
    assert ACT not in listing and "/p/" not in listing
    assert "Your page" in client.get(f"/digests/{ACT}/").text


def test_a_vote_token_votes_on_its_paper_and_does_nothing_else(
    site: Site, client: httpx.Client
) -> None:
    vote = Keyring(SECRET).sign_vote("ada", "2506.00003")

    # Everything else it is refused: other papers, unsubscribe, the page, the feeds.
    for method, path in [("POST", f"/feedback/{vote}?paper=2506.00001&v=like"),
                         ("POST", f"/feedback/{vote}?paper=2506.00003v2&v=like"),
                         ("POST", f"/unsubscribe/{vote}"), ("GET", f"/p/{vote}"),
                         ("GET", f"/feeds/{vote}/feed.atom"), ("GET", f"/digests/{vote}/")]:
        assert client.request(method, path).status_code == 403, (method, path)
    assert site.unsubscribed() == set()
    assert load_profile(site.ada_yaml).liked == ("2506.00009",)

    page = client.get(VOTE.format(token=vote))
    assert page.status_code == 200 and "/p/" not in page.text  # no way to the page from here
    assert client.post(VOTE.format(token=vote)).status_code == 200
    assert client.post(f"/feedback/{vote}?paper=2506.00003&v=dislike").status_code == 200
    assert load_profile(site.ada_yaml).disliked == ("2506.00003",)


# --- cross-site requests ------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [
    pytest.param({"Origin": "https://evil.example"}, id="foreign origin"),
    pytest.param({"Origin": "null"}, id="opaque origin"),
    pytest.param({"Sec-Fetch-Site": "cross-site"}, id="sec-fetch-site cross-site"),
    pytest.param({"Sec-Fetch-Site": "same-site", "Origin": "https://x.digest.example.org"},
                 id="a sibling subdomain"),
])
def test_a_post_from_another_sites_page_is_refused(
    site: Site, client: httpx.Client, headers: dict[str, str]
) -> None:
    before = site.ada_yaml.read_bytes()
    for path in (f"/unsubscribe/{ACT}", VOTE.format(token=ACT)):
        response = client.post(path, headers=headers, content=b"List-Unsubscribe=One-Click")
        assert response.status_code == 403, path
        assert "another site" in response.text
    assert site.unsubscribed() == set()
    assert site.ada_yaml.read_bytes() == before


@pytest.mark.parametrize("headers", [
    pytest.param({}, id="a mail provider's one-click POST: no Origin"),
    pytest.param({"Sec-Fetch-Site": "same-origin"}, id="this site's own button"),
    pytest.param({"Origin": "https://digest.example.org"}, id="the public origin"),
])
def test_posts_from_mail_providers_and_our_own_pages_pass(
    site: Site, client: httpx.Client, headers: dict[str, str]
) -> None:
    response = client.post(f"/unsubscribe/{ACT}", headers=headers,
                           content=b"List-Unsubscribe=One-Click")
    assert response.status_code == 200
    assert site.unsubscribed() == {"ada"}


def test_the_host_we_were_reached_at_is_our_origin(site: Site, client: httpx.Client) -> None:
    origin = site.base.rstrip("/")  # no Sec-Fetch-Site: an older browser
    response = client.post(VOTE.format(token=ACT), headers={"Origin": origin})
    assert response.status_code == 200
    assert "2506.00003" in load_profile(site.ada_yaml).liked


# --- key rotation -------------------------------------------------------------------------------


@pytest.fixture
def rotated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """The secret was rotated: SECRET is now the previous key, in its grace until 2026-06-30."""
    with running_site(tmp_path) as old:
        pass  # fills the store and the profiles under the old key
    monkeypatch.setenv(SECRET_ENV, "the-new-secret-9876543210")
    monkeypatch.setenv("DIGEST_TEST_PREVIOUS", f"older-one {SECRET}")
    server = old.app.config.server.model_copy(update={
        "previous_secrets_env": "DIGEST_TEST_PREVIOUS",
        "previous_secrets_until": dt.date(2026, 6, 30)})
    app = DigestApp(old.app.config.model_copy(update={"server": server}), old.app.db_url,
                    old.app.profiles_dir, clock=lambda: NOW)
    yield from _serving(app, tmp_path)


def _serving(app: DigestApp, tmp_path: Path) -> Iterator[Site]:
    import threading

    server = make_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield Site(app, server.url, tmp_path, {})
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def test_links_under_the_previous_key_work_during_the_grace_period(rotated: Site) -> None:
    with httpx.Client(base_url=rotated.base, trust_env=False, timeout=5) as client:
        assert client.get(f"/feeds/{FEED}/feed.atom").status_code == 200
        assert client.get(f"/p/{ACT}").status_code == 200
        assert client.post(VOTE.format(token=ACT)).status_code == 200
    # New mail carries links under the new key.
    links = rotated.app.links()
    unsubscribe = links.unsubscribe("ada")
    assert unsubscribe is not None and ACT not in unsubscribe
    assert make_token("the-new-secret-9876543210", "ada") in unsubscribe


def test_the_previous_key_is_refused_after_the_grace_period() -> None:
    keys = Keyring("new-key", ("old-key",), dt.date(2026, 6, 30))
    old = make_token("old-key", "ada")
    assert keys.verify(old, {"act"}, today=dt.date(2026, 6, 30)) == "ada"
    assert keys.verify(old, {"act"}, today=dt.date(2026, 7, 1)) is None
    assert keys.verify(keys.sign("ada", "act"), {"act"}, today=dt.date(2030, 1, 1)) == "ada"
    # Without an end date the previous keys count as long as they are listed.
    assert Keyring("new-key", ("old-key",)).verify(old, {"act"}, today=dt.date(2099, 1, 1))


def test_links_mailed_before_tokens_had_a_purpose(site: Site, client: httpx.Client) -> None:
    legacy = make_legacy_token(SECRET, "ada")
    before = site.ada_yaml.read_bytes()
    # Feeds and archives read; one-click unsubscribe from mail already sent keeps working ...
    assert client.get(f"/feeds/{legacy}/feed.atom").status_code == 200
    assert client.get(f"/digests/{legacy}/2026-06-08").status_code == 200
    # ... but such a token never changes a profile or opens the page.
    assert client.post(VOTE.format(token=legacy)).status_code == 403
    assert client.get(f"/p/{legacy}").status_code == 403
    assert site.ada_yaml.read_bytes() == before
    assert client.post(f"/unsubscribe/{legacy}").status_code == 200
    assert site.unsubscribed() == {"ada"}


# --- run without a secret -----------------------------------------------------------------------


def test_run_refuses_to_send_without_a_secret_when_links_are_expected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGEST_SECRET", raising=False)
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "ada.yaml").write_text(ADA_YAML, encoding="utf-8")
    (tmp_path / "digest.toml").write_text(
        '[server]\npublic_url = "https://digest.example.org"\n', encoding="utf-8")

    # About the secret, checked before any store is opened: SQLite only.
    result = CliRunner().invoke(main, ["--db", f"sqlite:///{tmp_path}/x.sqlite", "run",
                                       "--date", "2026-06-08"])

    assert result.exit_code == 1
    message = result.output.strip()
    assert message.count("\n") == 0 and "Traceback" not in message
    assert "DIGEST_SECRET" in message and "nothing was sent" in message
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.eml"))


# --- the pages ----------------------------------------------------------------------------------


def test_the_root_says_what_the_service_is(client: httpx.Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert "research papers" in response.text
    assert client.post("/").status_code == 405


def test_the_personal_page_shows_the_latest_digest_with_reasons_scores_and_links(
    page_client: httpx.Client,
) -> None:
    response = page_client.get(f"/p/{ACT}")
    assert response.status_code == 200
    html = response.text
    assert "Latest digest, 2026-06-08" in html
    assert "Scaling masked autoencoders" in html
    # What a paper says is text, never markup.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script" not in html
    assert "relevance 0.90" in html  # the score the ledger holds for that paper
    assert "masked image modeling" in html and "(mask)" in html
    assert f'action="../feedback/{ACT}?paper=2506.00001&amp;v=like"' in html
    assert 'aria-pressed="false"' in html
    # Feed links carry the feed token (they are shared with feed readers), never the act one.
    assert f"https://digest.example.org/feeds/{FEED}/feed.atom" in html
    assert f"../unsubscribe/{ACT}" in html
    assert f'href="../digests/{ACT}/2026-06-01"' in html
    assert "2026-06-09" not in html  # still in flight


def test_a_profile_with_no_digest_has_a_page_too(page_client: httpx.Client) -> None:
    response = page_client.get(f"/p/{make_token(SECRET, 'ben')}")
    assert response.status_code == 200
    assert "No digest yet" in response.text


# --- the server ---------------------------------------------------------------------------------


def test_no_server_banner(client: httpx.Client) -> None:
    response = client.get("/")
    assert "server" not in response.headers


def raw(site: Site, data: bytes, *, half_close: bool = False, timeout: float = 10
        ) -> tuple[bytes, float]:
    """Send `data` as is; what came back until the server closed, and how long it took."""
    started = time.monotonic()
    with socket.create_connection(address(site), timeout=timeout) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks), time.monotonic() - started


SHORT_POST = (f"POST /unsubscribe/{ACT} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
              "List-Unsubscribe=One-Click").encode()


def test_a_body_shorter_than_its_content_length_is_a_quick_400(site: Site) -> None:
    answer, took = raw(site, SHORT_POST, half_close=True)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"shorter than its Content-Length" in answer
    assert b"Traceback" not in answer
    assert took < 2
    assert site.unsubscribed() == set()


@pytest.fixture
def quick(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """A site whose clients have one second to send a request."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    app = make_digest_app(tmp_path)
    fill(app, tmp_path)
    server = app.config.server.model_copy(update={"request_timeout": 1.0})
    app = DigestApp(app.config.model_copy(update={"server": server}), app.db_url,
                    app.profiles_dir, clock=lambda: NOW)
    yield from _serving(app, tmp_path)


def test_a_body_that_never_comes_is_a_400_after_the_request_timeout(quick: Site) -> None:
    answer, took = raw(quick, SHORT_POST)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert 0.9 < took < 5
    assert quick.unsubscribed() == set()


def test_a_client_trickling_its_headers_is_cut_off_at_the_deadline(quick: Site) -> None:
    # wsgiref's timeout was per read: one byte every 0.3 s would have held it for ever.
    started = time.monotonic()
    with socket.create_connection(address(quick), timeout=10) as sock:
        request = f"GET /p/{ACT} HTTP/1.1\r\nHost: x\r\nX-Slow: {'a' * 40}\r\n\r\n".encode()
        answer = b""
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.3)
            if time.monotonic() - started > 6:
                break
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < 6


def test_a_normal_request_is_answered_while_slow_clients_hold_connections(
    quick: Site,
) -> None:
    host, port = address(quick)
    slow = []
    try:
        for _ in range(200):  # the benchmark holds 1,000; this keeps the suite quick
            sock = socket.create_connection((host, port), timeout=5)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
            slow.append(sock)
        started = time.monotonic()
        response = httpx.get(quick.url(f"/feeds/{FEED}/feed.atom"), trust_env=False, timeout=5)
        assert response.status_code == 200
        assert time.monotonic() - started < 1
    finally:
        for sock in slow:
            sock.close()


# --- profiles read once -------------------------------------------------------------------------


def test_profiles_are_read_once_and_again_when_they_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "ada.yaml").write_text(ADA_YAML, encoding="utf-8")
    calls: list[Path] = []
    import digest.web.profilecache as module

    real = module.load_profile
    monkeypatch.setattr(module, "load_profile", lambda p: calls.append(p) or real(p))
    old = time.time_ns() - 2 * RACY_NS

    def settle(path: Path) -> None:
        """Date the file (and the folder) back, as if written more than a tick ago."""
        import os
        os.utime(path, ns=(old, old))
        os.utime(folder, ns=(old, old))

    settle(folder / "ada.yaml")
    cache = ProfileCache(folder)
    first = cache.get("ada")
    assert first is not None and first.profile is not None
    assert cache.get("ada") is first and cache.get("ada") is first
    assert len(calls) == 1

    (folder / "ada.yaml").write_text(ADA_YAML + "max_papers: 3\n", encoding="utf-8")
    changed = cache.get("ada")
    assert changed is not None and changed.profile is not None
    assert changed.profile.max_papers == 3
    assert cache.get("zoe") is None
    (folder / "zoe.yaml").write_text("version: 1\ninterests: [x]\n", encoding="utf-8")
    assert cache.get("zoe") is not None
    (folder / "zoe.yaml").unlink()
    assert cache.get("zoe") is None
    (folder / "bad.yaml").write_text("version: 1\nmax_papers: 9999\n", encoding="utf-8")
    bad = cache.get("bad")
    assert bad is not None and bad.profile is None and bad.error is not None


def test_the_server_sees_a_profile_added_while_it_runs(site: Site, client: httpx.Client) -> None:
    token = make_token(SECRET, "cy")
    assert client.get(f"/p/{token}").status_code == 404
    (site.tmp / "profiles" / "cy.yaml").write_text("version: 1\ninterests: [x]\n",
                                                  encoding="utf-8")
    assert client.get(f"/p/{token}").status_code == 200


def test_the_server_refuses_to_start_without_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    app = make_digest_app(tmp_path)
    with pytest.raises(DigestError, match=SECRET_ENV):
        make_server(app, "127.0.0.1", 0)




def test_emails_link_to_the_personal_page_and_feeds_with_a_feed_token(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    from digest.types import Digest

    monkeypatch.setenv(SECRET_ENV, SECRET)  # as `digest run` has it

    profile = load_profile(site.ada_yaml)
    email = site.app.renderer().email(Digest("ada", "2026-06-08", dt.date(2026, 6, 8), (), NOW),
                                      profile)
    assert f"Your page: https://digest.example.org/p/{ACT}" in email.text
    assert f'href="https://digest.example.org/p/{ACT}"' in email.html
    assert f"https://digest.example.org/feeds/{FEED}/feed.rss" in email.text
    assert f"/feeds/{ACT}/" not in email.text


def test_like_links_carry_a_token_for_their_paper_only(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    links = site.app.links()
    vote = Keyring(SECRET).sign_vote("ada", "2506.00001")
    assert links.feedback("ada", "2506.00001", "like") == (
        f"https://digest.example.org/feedback/{vote}?paper=2506.00001&v=like")
    # Feed entries show these links too (a feed reader can vote): never an act token.
    assert ACT not in (links.feedback("ada", "2506.00001", "dislike") or "")


def test_view_in_a_browser_links_only_read(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    assert site.app.links().view("ada", "2026-06-08") == (
        f"https://digest.example.org/digests/{FEED}/2026-06-08")


def test_a_profile_renamed_with_an_id_keeps_its_links(
    site: Site, client: httpx.Client
) -> None:
    folder = site.tmp / "profiles"
    (folder / "dee.yaml").write_text("version: 1\nid: dee\ninterests: [x]\n", encoding="utf-8")
    token = make_token(SECRET, "dee")
    assert client.get(f"/p/{token}").status_code == 200
    (folder / "dee.yaml").rename(folder / "dee-renamed.yaml")
    assert client.get(f"/p/{token}").status_code == 200  # the id, not the file, names it
    # A file named like an id it does not carry is not that profile.
    (folder / "eve.yaml").write_text("version: 1\nid: other\ninterests: [x]\n", encoding="utf-8")
    assert client.get(f"/p/{make_token(SECRET, 'eve')}").status_code == 404


def test_stopping_a_stopped_server_is_harmless(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The loop may end (and close what it owns) before `shutdown` wakes it: a second
    # `shutdown` is that case made certain.
    import threading

    monkeypatch.setenv(SECRET_ENV, SECRET)
    server = make_server(make_digest_app(tmp_path), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    assert httpx.get(server.url, trust_env=False, timeout=5).status_code == 200
    server.shutdown()
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()
    assert not thread.is_alive()
