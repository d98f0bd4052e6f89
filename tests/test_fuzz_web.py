"""The server's routes under generated requests (hypothesis), called in-process as WSGI: any
path, method, query, headers and body give a page of ours (never a 500 or a traceback), every
response carries the security headers, and nothing changes unless an act token of ours asked
for it with a POST from no other site. Then raw bytes to the real server (waitress and its
per-request deadline): any request head and body, cut short, get an HTTP answer that is not a
500, or a closed connection, and the server goes on. ``DIGEST_LONG_TESTS=1`` runs many more.
"""

from __future__ import annotations

import io
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_server import SECRET, SECRET_ENV, Site, fill, make_digest_app, running_site

from digest.tokens import make_legacy_token, make_token
from digest.web import SECURITY_HEADERS, WebApp, make_app

LONG = bool(os.environ.get("DIGEST_LONG_TESTS"))
FUZZ = settings(max_examples=800 if LONG else 80, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
TOKENS = [make_token(SECRET, "ada"), make_token(SECRET, "ada", "feed"),
          make_legacy_token(SECRET, "ada"), make_token("other", "ada"), "ada", "",
          make_token(SECRET, "zoe"), make_token(SECRET, "ada")[:-1] + "A", "%2e%2e", ".."]
KINDS = ["p", "feeds", "unsubscribe", "feedback", "digests", "", "static", "..", "%2f"]
TAILS = ["", "/", "/feed.atom", "/feed.rss", "/2026-06-08", "/2026-06-01", "/../secret.md",
         "/2026-06-08/x", "/feed.json"]


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WebApp, Path]]:
    tmp = tmp_path_factory.mktemp("fuzzweb")
    with pytest.MonkeyPatch.context() as env:
        env.setenv(SECRET_ENV, SECRET)
        app = make_digest_app(tmp)
        fill(app, tmp)
        web = make_app(app)
    try:
        yield web, tmp
    finally:
        web.close()


texts = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
paths = st.one_of(
    st.builds(lambda k, t, tail: f"/{k}/{quote(t, safe='.')}{tail}", st.sampled_from(KINDS),
              st.sampled_from(TOKENS), st.sampled_from(TAILS)),
    texts.map(lambda s: "/" + s),
)
queries = st.one_of(
    st.just(""),
    st.builds(lambda p, v: f"paper={p}&v={v}", st.sampled_from(["2506.00001", "x", "", "%00"]),
              st.sampled_from(["like", "dislike", "love", ""])),
    texts,
)
headers = st.dictionaries(
    st.sampled_from(["HTTP_ORIGIN", "HTTP_SEC_FETCH_SITE", "HTTP_IF_NONE_MATCH",
                     "HTTP_IF_MODIFIED_SINCE", "CONTENT_LENGTH", "CONTENT_TYPE", "HTTP_HOST"]),
    st.one_of(texts, st.sampled_from(["null", "cross-site", "same-origin", "-1", "99999999",
                                      "https://evil.example", "*"])),
    max_size=4,
)


def call(web: WebApp, method: str, path: str, query: str, extra: dict[str, str],
         body: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
        "SERVER_NAME": "localhost", "SERVER_PORT": "80", "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body), "REMOTE_ADDR": "127.0.0.1", **extra,
    }
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc: Any = None) -> Any:
        seen["status"], seen["headers"] = status, headers
        return lambda data: None

    out = b"".join(web(environ, start_response))
    return seen["status"], seen["headers"], out


@FUZZ
@given(method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "get"]),
       path=paths, query=queries, extra=headers, body=st.binary(max_size=64))
@example(method="POST", path=f"/feedback/{TOKENS[0]}", query="paper=2506.00001&v=like",
         extra={"HTTP_SEC_FETCH_SITE": "same-origin"}, body=b"")
@example(method="POST", path=f"/feedback/{TOKENS[0]}", query="paper=2506.00001&v=like",
         extra={"HTTP_ORIGIN": "https://evil.example"}, body=b"")
@example(method="POST", path=f"/unsubscribe/{TOKENS[1]}", query="", extra={}, body=b"")
@example(method="POST", path=f"/unsubscribe/{TOKENS[2]}", query="", extra={"CONTENT_LENGTH": "-1"},
         body=b"")
def test_any_request_gets_one_of_our_pages(
    web: tuple[WebApp, Path], method: str, path: str, query: str, extra: dict[str, str],
    body: bytes,
) -> None:
    app, tmp = web
    before = (tmp / "profiles" / "ada.yaml").read_bytes()
    status, headers, out = call(app, method, path, query, extra, body)

    code = int(status.split()[0])
    assert code in {200, 304, 308, 400, 403, 404, 405, 413, 503}, (status, path)
    names = {name for name, _ in headers}
    assert {name for name, _ in SECURITY_HEADERS} <= names
    assert b"Traceback" not in out
    changed = (tmp / "profiles" / "ada.yaml").read_bytes() != before
    if changed:
        # Only a vote with Ada's act token, POSTed from no other site, writes her file.
        assert method == "POST" and path.startswith(f"/feedback/{TOKENS[0]}")
        assert extra.get("HTTP_SEC_FETCH_SITE", "same-origin") in ("same-origin", "none")
        (tmp / "profiles" / "ada.yaml").write_bytes(before)
    with app.app.open_store() as store:
        if store.unsubscribed():
            assert method == "POST" and path.rstrip("/").startswith("/unsubscribe/")
            store.set_subscribed("ada", True, now=app.app.clock())


# -- raw bytes to the real server ----------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_site(tmp_path_factory.mktemp("fuzzraw")) as site:
        yield site


def exchange(site: Site, data: bytes) -> bytes:
    host, port = site.base.removeprefix("http://").rstrip("/").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)  # the client says it has nothing more to send
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


heads = st.builds(
    lambda method, path, version, lines, body: (
        f"{method} {path} {version}\r\n".encode("utf-8", "surrogatepass")
        + b"".join(lines) + b"\r\n" + body),
    st.sampled_from(["GET", "POST", "HEAD", "PUT", "G\x00T", ""]),
    st.one_of(st.sampled_from(["/", f"/unsubscribe/{TOKENS[1]}", "/p/x", "*", "//", "/%"]),
              texts.map(lambda s: "/" + s.replace(" ", ""))),
    st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/9", ""]),
    st.lists(st.one_of(
        st.sampled_from([b"Host: x\r\n", b"Content-Length: 50\r\n", b"Content-Length: -5\r\n",
                         b"Content-Length: 1e9\r\n", b"Transfer-Encoding: chunked\r\n",
                         b"Expect: 100-continue\r\n", b"Origin: null\r\n", b" folded\r\n"]),
        st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"") + b"\r\n")), max_size=5),
    st.binary(max_size=80),
)


@FUZZ
@given(data=heads)
def test_any_bytes_get_an_http_answer_and_the_server_goes_on(served: Site, data: bytes) -> None:
    before = served.ada_yaml.read_bytes()
    answer = exchange(served, data)

    # An answer, or a closed connection for bytes that are no request at all; never a 500.
    if answer:
        assert answer.startswith(b"HTTP/1."), answer[:60]
        assert answer.split(b" ", 2)[1] != b"500", answer[:200]
    assert b"Traceback" not in answer
    assert served.ada_yaml.read_bytes() == before
    assert served.unsubscribed() == set()
    assert exchange(served, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 200 ")
