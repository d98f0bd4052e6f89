"""The WSGI application: which address is which page, and who may see it.

Each request is checked in this order, and nothing is read before its check passes: the path
has one of the shapes in `digest.web` (else 404, so ``..`` or an encoded slash can never reach
a file), the method fits (405), a state-changing POST does not come from another site's page
(403), the token's HMAC is ours under a key still accepted and for a purpose this route takes
(403), its profile is a profile of the profiles folder (404). Only then is the store asked, by
that name.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Collection, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from ..errors import DigestError
from ..store import Store
from ..tokens import Purpose
from . import actions, feeds, pages
from .profilecache import ProfileCache
from .security import SECURITY_HEADERS, cross_site
from .wsgi import Request, Response, Who, redact

if TYPE_CHECKING:
    # Only for types: importing the app would load the recommender (scikit-learn) as well.
    from ..app import DigestApp

log = logging.getLogger("digest.web")

Handler = Callable[["WebApp", Request, Who], Response]
_READ = ("GET", "HEAD")
_READ_WRITE = ("GET", "HEAD", "POST")
#: Which tokens each kind of route takes (see `digest.tokens`): feeds and archives only read.
_FEED: frozenset[Purpose] = frozenset({"feed"})
_ARCHIVE: frozenset[Purpose] = frozenset({"feed", "act"})
_UNSUBSCRIBE: frozenset[Purpose] = frozenset({"act", "legacy"})
_ACT: frozenset[Purpose] = frozenset({"act"})
_VOTE: frozenset[Purpose] = frozenset({"act", "vote"})
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class WebApp:
    """The WSGI application of `make_app`. It holds the store open: call `close` when done."""

    def __init__(self, app: DigestApp) -> None:
        keys = app.keyring()
        if keys is None:
            raise DigestError(
                f"the server needs a secret to sign its links: set the environment variable "
                f"{app.config.server.secret_env} (named by server.secret_env in the "
                f"configuration) to a long random string, e.g. from "
                f"`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        self.app = app
        self.keys = keys
        self.renderer = app.renderer()
        self.store: Store = app.open_store()
        self.profiles = ProfileCache(app.profiles_dir)
        self._pages = pages.page_environment(app.config.templates_dir)
        self.feedback_lock = threading.Lock()

    def close(self) -> None:
        self.store.close()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        try:
            response = self.handle(environ)
        except Exception:
            log.exception("error serving %s", redact(str(environ.get("PATH_INFO", ""))))
            response = self.message(500, "Something went wrong",
                                    "The server could not answer this request.")
        headers = [*SECURITY_HEADERS, *response.headers]
        if response.content_type is not None:
            headers.append(("Content-Type", response.content_type))
        if response.status != 304:
            headers.append(("Content-Length", str(len(response.body))))
        if not any(name == "Cache-Control" for name, _ in response.headers):
            headers.append(("Cache-Control", "no-store"))
        start_response(f"{response.status} {HTTPStatus(response.status).phrase}", headers)
        log.info("%s %s %s %d", environ.get("REMOTE_ADDR", "-"), method,
                 redact(str(environ.get("PATH_INFO", ""))), response.status)
        return [] if method == "HEAD" or response.status == 304 else [response.body]

    def handle(self, environ: WSGIEnvironment) -> Response:
        path = str(environ.get("PATH_INFO") or "/")
        # The server has already percent-decoded the path: an encoded slash is a slash here,
        # and `%2e%2e` is `..`. Any such segment ends the request before anything is looked at.
        segments = tuple(path.split("/")[1:]) if path.startswith("/") else ()
        if (not segments or "" in segments[:-1]
                or any(s in (".", "..") or "\x00" in s or "\\" in s for s in segments)):
            return self.not_found()
        try:
            query = parse_qs(str(environ.get("QUERY_STRING", "")), max_num_fields=20)
        except ValueError:  # too many fields
            return self.message(400, "Bad request", "This address has too many parameters.")
        request = Request(str(environ.get("REQUEST_METHOD", "GET")).upper(), segments, query,
                          environ)
        match segments:
            case [""]:
                if request.method not in _READ:
                    return self._not_allowed(request, _READ)
                return pages.root(self, request)
            case ["p", token]:
                return self._route(request, token, _READ, _ACT, pages.personal)
            case ["feeds", token, name] if name in feeds.FEEDS:
                return self._route(request, token, _READ, _FEED, feeds.feed)
            case ["unsubscribe", token]:
                return self._route(request, token, _READ_WRITE, _UNSUBSCRIBE,
                                   actions.unsubscribe)
            case ["feedback", token]:
                return self._route(request, token, _READ_WRITE, _VOTE, actions.feedback)
            case ["digests", token, ""]:
                return self._route(request, token, _READ, _ARCHIVE, pages.digests)
            case ["digests", token]:
                # The list's links are relative to it, so it lives at the trailing slash.
                return Response(308, b"", None, [("Location", f"{quote(token, safe='')}/")])
            case ["digests", token, key] if _DATE.match(key):
                return self._route(request, token, _READ, _ARCHIVE, pages.digest)
        return self.not_found()

    def _route(self, request: Request, token: str, methods: tuple[str, ...],
               purposes: Collection[Purpose], handler: Handler) -> Response:
        if request.method not in methods:
            return self._not_allowed(request, methods)
        if request.method == "POST" and cross_site(request.environ,
                                                   self.app.config.server.public_url):
            return self.message(403, "Not from this site", "This request came from another "
                                "site's page, so it was refused. Use the button on this "
                                "site's page or the link from your digest.")
        # A vote token is bound to the paper of its link, exactly as the link names it.
        papers = request.query.get("paper", [])
        name = self.keys.verify(token, purposes, today=self.app.clock().date(),
                                paper=papers[0].strip() if len(papers) == 1 else None)
        if name is None:
            return self.message(403, "Not a valid link", "This link is not one this server "
                                "made for this, or it was changed on the way, or it is from "
                                "an old digest. Use the link from your latest digest.")
        entry = self.profiles.get(name)
        if entry is None:
            return self.not_found()
        return handler(self, request, Who(token, name, entry.path, entry.profile))

    def is_act(self, token: str) -> bool:
        """Whether `token` may act (open the personal page, vote): see `digest.tokens`."""
        return self.keys.verify(token, _ACT, today=self.app.clock().date()) is not None

    # -- pages -----------------------------------------------------------------------------------

    def page(self, template: str, *, status: int = 200, **context: Any) -> Response:
        body = self._pages.get_template(template).render(
            site_name=self.renderer.site_name, **context
        )
        return Response(status, body.encode("utf-8"))

    def message(self, status: int, heading: str, text: str) -> Response:
        return self.page("server_message.html", status=status, heading=heading, text=text)

    def not_found(self) -> Response:
        return self.message(404, "Not found", "There is nothing at this address.")

    def _not_allowed(self, request: Request, methods: tuple[str, ...]) -> Response:
        response = self.message(405, "Method not allowed", "This address does not take "
                                f"{request.method} requests.")
        response.headers.append(("Allow", ", ".join(methods)))
        return response


def make_app(app: DigestApp) -> WebApp:
    """The server as a WSGI application (with a `close` method for its store). Raises
    DigestError when no secret is configured."""
    web = WebApp(app)
    _: WSGIApplication = web  # checked by mypy: a WebApp is a WSGI application
    return web
