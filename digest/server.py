"""The web side of digest (``digest serve``): feeds, one-click unsubscribe, feedback, and digests
in the browser, each at a URL that carries the profile's signed token (`digest.tokens`).

Routes (``<token>`` is ``make_token(secret, profile)``, as `Links` puts it in emails)::

    GET  /feeds/<token>/feed.atom        the profile's Atom feed, rendered from the ledger
    GET  /feeds/<token>/feed.rss         the same as RSS 2.0
    GET  /unsubscribe/<token>            a confirmation page with a button
    POST /unsubscribe/<token>            RFC 8058 one-click: unsubscribed, 200, no redirect
    GET  /feedback/<token>?paper=ID&v=like|dislike   a confirmation page with a button
    POST /feedback/<token>?paper=ID&v=like|dislike   records it, as ``digest feedback`` does
    GET  /digests/<token>/               the profile's past digests
    GET  /digests/<token>/<YYYY-MM-DD>   one digest, its markdown rendered and sanitized

Design notes:

- The standard library's `wsgiref` with a threading server: eight routes need no framework,
  and a WSGI callable (`make_app`) can be put behind any WSGI server later.
- Each request is checked in this order, and nothing is read before its check passes: the path
  has one of the shapes above (else 404, so ``..`` or an encoded slash can never reach a file),
  the method fits (405), the token's HMAC is ours (403), its profile is a profile of the
  profiles folder (404). Only then is the store asked, by that name. The one file read from
  disk, a digest's ``out/<profile>/<date>.md`` when the ledger holds no markdown, is built from
  those checked parts and must still resolve inside the out directory.
- Feeds are rendered on each request from the ledger, so they are always current and never
  depend on files a run may not have written; the bytes are deterministic, so a hash of them
  is a strong ETag, and a conditional GET gets 304.
- Feedback asks before it writes. The issue asked that the GET itself record the vote, but mail
  security scanners (Outlook Safe Links, Proofpoint, Mimecast, ...) fetch every link of a
  message before the person sees it: every paper would then be liked *and* disliked, in an
  order of the scanner's choosing, and the profile would learn noise. So the GET shows the
  paper and one button that POSTs, like the unsubscribe page (which RFC 8058 asks for the same
  reason). Scanners do not submit forms; a person pays one click.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import html
import importlib.util
import logging
import re
import secrets
import signal
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from socketserver import TCPServer, ThreadingMixIn
from types import FrameType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs, quote
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

import markdown
import nh3
from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    select_autoescape,
)
from markupsafe import Markup

from .deliver import ledger_feeds
from .errors import DigestError
from .profiles import Profile, add_feedback
from .render import display_text, shipped_templates_dir
from .store import Delivery, Store
from .tokens import verify_token

if TYPE_CHECKING:
    # Only for types: importing the app would load the recommender (scikit-learn) as well.
    from .app import DigestApp

__all__ = [
    "SECURITY_HEADERS",
    "DigestServer",
    "WebApp",
    "make_app",
    "make_server",
    "render_markdown",
    "serve",
    "set_subscribed",
]

log = logging.getLogger("digest.server")

#: Sent with every response: the pages run no script, load nothing but https images, and
#: cannot be framed (the unsubscribe and feedback buttons are worth clickjacking).
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)
#: A POST body larger than this is refused (one-click bodies are a few dozen bytes).
MAX_BODY = 64 * 1024
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_FEEDS: dict[str, tuple[Literal["rss", "atom"], str]] = {
    "feed.atom": ("atom", "application/atom+xml; charset=utf-8"),
    "feed.rss": ("rss", "application/rss+xml; charset=utf-8"),
}
_HTML = "text/html; charset=utf-8"
# What the access log shows instead of a token: a token in a log is a key to that profile.
_TOKEN_IN_PATH = re.compile(r"(/(?:feeds|unsubscribe|feedback|digests)/)[^/?#\s]+")


# -- markdown ------------------------------------------------------------------------------------

#: Whether pymdown-extensions (for its arithmatex extension) is installed.
HAVE_ARITHMATEX = importlib.util.find_spec("pymdownx") is not None

_ALLOWED_TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "code", "del", "div", "em", "h1", "h2", "h3", "h4",
    "h5", "h6", "hr", "i", "img", "li", "ol", "p", "pre", "span", "strong", "sub", "sup",
    "table", "tbody", "td", "th", "thead", "tr", "ul",
})
_ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "td": {"align"},
    "th": {"align"},
}
_ALLOWED_CLASSES = {"span": {"arithmatex"}, "div": {"arithmatex"}}
# `$...$` or `$$...$$` not after a backslash; inline math neither starts nor ends with a space.
_MATH = re.compile(
    r"(?<!\\)\$\$(?P<display>.+?)(?<!\\)\$\$"
    r"|(?<![\\$])\$(?P<inline>[^\s$](?:[^$]*?[^\s$\\])?)\$(?!\$)",
    re.DOTALL,
)


def render_markdown(text: str, *, arithmatex: bool = HAVE_ARITHMATEX) -> str:
    """Markdown (a stored digest) as sanitized HTML, math kept intact.

    ``$x^2$`` becomes ``<span class="arithmatex">\\(x^2\\)</span>`` (what MathJax or KaTeX
    auto-render read) instead of emphasis: with pymdown-extensions' arithmatex when it is
    installed, else by setting the math aside before markdown sees it. The markdown package
    does not sanitize (raw ``<script>`` passes through), so its output goes through nh3.
    """
    md = markdown.Markdown(
        extensions=["pymdownx.arithmatex"] if arithmatex else [],
        extension_configs={"pymdownx.arithmatex": {"generic": True}} if arithmatex else {},
    )
    rendered = _convert_keeping_math(md, text, inline=not arithmatex)
    return nh3.clean(
        rendered,
        tags=set(_ALLOWED_TAGS),
        attributes={tag: set(names) for tag, names in _ALLOWED_ATTRIBUTES.items()},
        allowed_classes={tag: set(names) for tag, names in _ALLOWED_CLASSES.items()},
        url_schemes={"http", "https", "mailto"},
    )


def _convert_keeping_math(md: markdown.Markdown, text: str, *, inline: bool) -> str:
    """Convert, setting ``$$...$$`` math (and with `inline`, ``$...$`` too) aside first:
    arithmatex reads ``$$`` only as a block of its own, but a digest has it inside sentences."""
    # Letters and digits only: markdown leaves such a word alone wherever it stands.
    nonce = secrets.token_hex(8)
    kept: list[str] = []

    def set_aside(match: re.Match[str]) -> str:
        if match["display"] is not None:
            kept.append(f"\\[{match['display']}\\]")
        elif inline:
            kept.append(f"\\({match['inline']}\\)")
        else:
            return match[0]
        return f"mathx{nonce}x{len(kept) - 1}x"

    if inline:
        md.ESCAPED_CHARS.append("$")  # `\$` is a dollar sign, as with arithmatex
    rendered = md.convert(_MATH.sub(set_aside, text))
    return re.sub(
        rf"mathx{nonce}x(\d+)x",
        lambda m: f'<span class="arithmatex">{html.escape(kept[int(m[1])], quote=False)}</span>',
        rendered,
    )


# -- subscriptions -------------------------------------------------------------------------------


def set_subscribed(app: DigestApp, profile: str, subscribed: bool) -> bool:
    """(Re)subscribe or unsubscribe a profile of the profiles folder (unknown names are
    errors); True when it changed anything. Runs skip unsubscribed profiles."""
    app.profiles([profile])
    with app.open_store() as store:
        return store.set_subscribed(profile, subscribed, now=app.clock())


# -- the WSGI application ------------------------------------------------------------------------


@dataclass
class _Response:
    status: int
    body: bytes = b""
    content_type: str | None = _HTML
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class _Request:
    method: str
    segments: tuple[str, ...]
    query: Mapping[str, list[str]]
    environ: WSGIEnvironment


@dataclass(frozen=True)
class _Who:
    """The profile a request's token stands for, once checked."""

    token: str
    name: str
    #: Its file. The profile itself is None while the file has errors: unsubscribing, votes
    #: and past digests still work then; only the feeds need a valid profile.
    path: Path
    profile: Profile | None


class WebApp:
    """The WSGI application of `make_app`. It holds the store open: call `close` when done."""

    def __init__(self, app: DigestApp) -> None:
        secret = app.config.secret()
        if not secret:
            raise DigestError(
                f"the server needs a secret to sign its links: set the environment variable "
                f"{app.config.server.secret_env} (named by server.secret_env in the "
                f"configuration) to a long random string, e.g. from "
                f"`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        self.app = app
        self.secret = secret
        self.renderer = app.renderer()
        self.store: Store = app.open_store()
        self._pages = _page_environment(app.config.templates_dir)
        # add_feedback rewrites a whole file: two votes at once must not lose one.
        self._feedback_lock = threading.Lock()

    def close(self) -> None:
        self.store.close()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        try:
            response = self.handle(environ)
        except Exception:
            log.exception("error serving %s", _redact(str(environ.get("PATH_INFO", ""))))
            response = self._message(
                500, "Something went wrong", "The server could not answer this request."
            )
        headers = [*SECURITY_HEADERS, *response.headers]
        if response.content_type is not None:
            headers.append(("Content-Type", response.content_type))
        if response.status != 304:
            headers.append(("Content-Length", str(len(response.body))))
        if not any(name == "Cache-Control" for name, _ in response.headers):
            headers.append(("Cache-Control", "no-store"))
        start_response(f"{response.status} {HTTPStatus(response.status).phrase}", headers)
        return [] if method == "HEAD" or response.status == 304 else [response.body]

    def handle(self, environ: WSGIEnvironment) -> _Response:
        path = str(environ.get("PATH_INFO") or "/")
        # wsgiref has already percent-decoded the path: an encoded slash is a slash here, and
        # `%2e%2e` is `..`. Any such segment ends the request before anything is looked at.
        segments = tuple(path.split("/")[1:]) if path.startswith("/") else ()
        if (not segments or "" in segments[:-1]
                or any(s in (".", "..") or "\x00" in s or "\\" in s for s in segments)):
            return self._not_found()
        try:
            query = parse_qs(str(environ.get("QUERY_STRING", "")), max_num_fields=20)
        except ValueError:  # too many fields
            return self._message(400, "Bad request", "This address has too many parameters.")
        request = _Request(str(environ.get("REQUEST_METHOD", "GET")).upper(), segments, query,
                           environ)
        match segments:
            case ["feeds", token, name] if name in _FEEDS:
                return self._route(request, token, ("GET", "HEAD"), self._feed)
            case ["unsubscribe", token]:
                return self._route(request, token, ("GET", "HEAD", "POST"), self._unsubscribe)
            case ["feedback", token]:
                return self._route(request, token, ("GET", "HEAD", "POST"), self._feedback)
            case ["digests", token, ""]:
                return self._route(request, token, ("GET", "HEAD"), self._digests)
            case ["digests", token]:
                # The list's links are relative to it, so it lives at the trailing slash.
                return _Response(308, b"", None, [("Location", f"{quote(token, safe='')}/")])
            case ["digests", token, key] if _DATE.match(key):
                return self._route(request, token, ("GET", "HEAD"), self._digest)
        return self._not_found()

    def _route(
        self,
        request: _Request,
        token: str,
        methods: tuple[str, ...],
        handler: Callable[[_Request, _Who], _Response],
    ) -> _Response:
        if request.method not in methods:
            response = self._message(405, "Method not allowed", "This address does not take "
                                     f"{request.method} requests.")
            response.headers.append(("Allow", ", ".join(methods)))
            return response
        name = verify_token(self.secret, token)
        if name is None:
            return self._message(403, "Not a valid link", "This link is not one this server "
                                 "made, or it was changed on the way. Use the link from your "
                                 "latest digest.")
        # Read fresh each time: profiles come and go, and feedback rewrites them.
        found = self.app.profiles()
        path = found.paths.get(name) or next(
            (Path(e.path) for e in found.errors if Path(e.path).stem == name), None
        )
        if path is None:
            return self._not_found()
        return handler(request, _Who(token, name, path, found.get(name)))

    # -- feeds -----------------------------------------------------------------------------------

    def _feed(self, request: _Request, who: _Who) -> _Response:
        profile = who.profile
        if profile is None:
            return self._message(503, "Feed unavailable", "This feed's profile has errors; "
                                 "it is back once they are fixed.")
        fmt, content_type = _FEEDS[request.segments[-1]]
        settings = self.app.config.feeds
        items, rss, atom = ledger_feeds(
            self.store, self.renderer, profile, now=self.app.clock(),
            window_days=settings.window_days, max_items=settings.max_items,
        )
        body = atom if fmt == "atom" else rss
        etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
        headers = [("ETag", etag), ("Cache-Control", "private, no-cache")]
        newest = max((item.sent_at for item in items), default=None)
        if newest is not None:
            headers.append(("Last-Modified", email.utils.format_datetime(
                newest.astimezone(dt.UTC), usegmt=True)))
        if _not_modified(request.environ, etag, newest):
            return _Response(304, b"", None, headers)
        return _Response(200, body, content_type, headers)

    # -- unsubscribe -----------------------------------------------------------------------------

    def _unsubscribe(self, request: _Request, who: _Who) -> _Response:
        if request.method == "POST":
            # RFC 8058: the body is `List-Unsubscribe=One-Click` (form-encoded or multipart);
            # the page's own button sends the same. The signed URL is what authorizes, so the
            # body is read (bounded) but not required: an empty POST unsubscribes too.
            if _read_body(request.environ) is None:
                return self._message(413, "Request too large", "That request was too large.")
            self.store.set_subscribed(who.name, False, now=self.app.clock())
            log.info("unsubscribed %s", who.name)
            return self._page("server_unsubscribe.html", profile=who.name, done=True,
                              unsubscribed=True, action=quote(who.token, safe=""))
        unsubscribed = who.name in self.store.unsubscribed()
        return self._page("server_unsubscribe.html", profile=who.name, done=False,
                          unsubscribed=unsubscribed, action=quote(who.token, safe=""))

    # -- feedback --------------------------------------------------------------------------------

    def _feedback(self, request: _Request, who: _Who) -> _Response:
        refs = request.query.get("paper", [])
        votes = request.query.get("v", [])
        if len(refs) != 1 or not refs[0].strip() or votes not in (["like"], ["dislike"]):
            return self._message(400, "Not a feedback link", "This link should name one paper "
                                 "and say like or dislike. Use the link from your digest.")
        ref, vote = refs[0].strip(), votes[0]
        paper = self.store.resolve_refs([ref]).get(ref)
        if paper is None:
            return self._message(404, "Unknown paper", "This server does not know that paper.")
        like = vote == "like"
        title = display_text(paper.title) or paper.key
        action = f"{quote(who.token, safe='')}?paper={quote(paper.key, safe='')}&v={vote}"
        if request.method != "POST":
            return self._page("server_feedback.html", profile=who.name, title=title,
                              like=like, done=False, changed=False, action=action)
        if _read_body(request.environ) is None:
            return self._message(413, "Request too large", "That request was too large.")
        with self._feedback_lock:
            changed = add_feedback(who.path, paper.key, like)
        log.info("%s %s %s", who.name, vote, paper.key)
        return self._page("server_feedback.html", profile=who.name, title=title, like=like,
                          done=True, changed=changed, action=action)

    # -- digests ---------------------------------------------------------------------------------

    def _digests(self, request: _Request, who: _Who) -> _Response:
        shown = [d for d in self.store.deliveries_of(who.name) if _viewable(d)]
        return self._page("server_digests.html", profile=who.name, digests=shown)

    def _digest(self, request: _Request, who: _Who) -> _Response:
        key = request.segments[-1]
        delivery = self.store.get_delivery(who.name, key)
        if delivery is None or not _viewable(delivery):
            return self._not_found()
        text = delivery.markdown
        if text is None:
            text = _markdown_file(self.app.out_dir, who.name, key)
        if text is None:
            return self._not_found()
        return self._page("server_digest.html", profile=who.name, key=key,
                          content=Markup(render_markdown(text)))

    # -- pages -----------------------------------------------------------------------------------

    def _page(self, template: str, *, status: int = 200, **context: Any) -> _Response:
        body = self._pages.get_template(template).render(
            site_name=self.renderer.site_name, **context
        )
        return _Response(status, body.encode("utf-8"))

    def _message(self, status: int, heading: str, text: str) -> _Response:
        return self._page("server_message.html", status=status, heading=heading, text=text)

    def _not_found(self) -> _Response:
        return self._message(404, "Not found", "There is nothing at this address.")


def make_app(app: DigestApp) -> WebApp:
    """The server as a WSGI application (with a `close` method for its store). Raises
    DigestError when no secret is configured."""
    web = WebApp(app)
    _: WSGIApplication = web  # checked by mypy: a WebApp is a WSGI application
    return web


def _page_environment(templates_dir: str | None) -> Environment:
    loaders: list[BaseLoader] = []
    if templates_dir is not None and Path(templates_dir).is_dir():
        loaders.append(FileSystemLoader(templates_dir))
    loaders.append(FileSystemLoader(shipped_templates_dir()))
    return Environment(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(["html", "xml"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _viewable(delivery: Delivery) -> bool:
    return delivery.status == "sent" and (
        delivery.markdown is not None or any(f.endswith(".md") for f in delivery.files)
    )


def _markdown_file(out_dir: Path, profile: str, key: str) -> str | None:
    """``out/<profile>/<key>.md`` as the run wrote it; None if it is not there, or if it
    resolves (through a symlink, say) to anywhere outside the out directory."""
    root = out_dir.resolve()
    candidate = (root / profile / f"{key}.md").resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    try:
        return candidate.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _read_body(environ: WSGIEnvironment) -> bytes | None:
    """The request body, or None when it is larger than MAX_BODY."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > MAX_BODY:
        return None
    return environ["wsgi.input"].read(length) if length > 0 else b""


def _not_modified(environ: WSGIEnvironment, etag: str, newest: dt.datetime | None) -> bool:
    """Whether a conditional GET can be answered 304 (RFC 9110 13.2.2: If-None-Match wins)."""
    if_none_match = environ.get("HTTP_IF_NONE_MATCH")
    if if_none_match is not None:
        tags = {t.strip().removeprefix("W/") for t in str(if_none_match).split(",")}
        return "*" in tags or etag in tags
    since = environ.get("HTTP_IF_MODIFIED_SINCE")
    if since is None or newest is None:
        return False
    try:
        when = email.utils.parsedate_to_datetime(str(since))
    except (TypeError, ValueError):
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return newest.replace(microsecond=0) <= when


def _redact(path: str) -> str:
    return _TOKEN_IN_PATH.sub(r"\1<token>", path)


# -- the HTTP server -----------------------------------------------------------------------------


class _Handler(WSGIRequestHandler):
    server_version = "digest"
    sys_version = ""
    #: Seconds a client may stall: a stopping server waits for requests in flight, not longer.
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), _redact(format % args))


class DigestServer(ThreadingMixIn, WSGIServer):
    """`wsgiref`'s server, a thread per request, serving a `WebApp` (see `make_server`).
    ``server_close`` waits for the requests in flight, then closes the store."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], web: WebApp) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.web = web
        super().__init__(address, _Handler)
        self.set_app(web)

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks DNS for the host's full name (socket.getfqdn), which can
        # take seconds; the name is only used for SERVER_NAME.
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)
        self.setup_environ()

    @property
    def url(self) -> str:
        host, port = str(self.server_address[0]), int(self.server_address[1])
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/"

    def server_close(self) -> None:
        super().server_close()
        self.web.close()


def make_server(app: DigestApp, host: str | None = None, port: int | None = None
                ) -> DigestServer:
    """A server bound to `host`:`port` (default from the configuration; port 0 picks a free
    one), not yet serving: call ``serve_forever()``, then ``shutdown()`` and
    ``server_close()``. Raises DigestError without a secret or when the port is taken."""
    host = app.config.server.host if host is None else host
    port = app.config.server.port if port is None else port
    web = make_app(app)
    try:
        return DigestServer((host, port), web)
    except OSError as exc:
        web.close()
        raise DigestError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def serve(
    app: DigestApp,
    host: str | None = None,
    port: int | None = None,
    *,
    ready: Callable[[DigestServer], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM (or until `stop` is set), then finish the requests in
    flight and return. `ready` is called once the server listens."""
    server = make_server(app, host, port)
    stop = stop or threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, on_signal)
    if not app.config.server.public_url:
        log.warning("server.public_url is not set: emails and feeds carry no links to this "
                    "server")
    worker = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              name="digest-serve", daemon=True)
    worker.start()
    try:
        log.info("serving on %s (SIGINT or SIGTERM stops it)", server.url)
        if ready is not None:
            ready(server)
        while not stop.wait(0.5):
            pass
    finally:
        server.shutdown()
        worker.join()
        server.server_close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        log.info("stopped")

