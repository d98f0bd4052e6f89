"""``/feeds/<token>/feed.atom|rss``: the profile's feeds, rendered from the ledger per request.

They are always current and never depend on files a run may not have written; the bytes are
deterministic, so a hash of them is a strong ETag and a conditional GET gets 304.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
from typing import TYPE_CHECKING, Literal

from ..deliver import ledger_feeds
from .wsgi import Request, Response, Who, not_modified

if TYPE_CHECKING:
    from .app import WebApp

FEEDS: dict[str, tuple[Literal["rss", "atom"], str]] = {
    "feed.atom": ("atom", "application/atom+xml; charset=utf-8"),
    "feed.rss": ("rss", "application/rss+xml; charset=utf-8"),
}


def feed(web: WebApp, request: Request, who: Who) -> Response:
    profile = who.profile
    if profile is None:
        return web.message(503, "Feed unavailable", "This feed's profile has errors; it is "
                           "back once they are fixed.")
    fmt, content_type = FEEDS[request.segments[-1]]
    settings = web.app.config.feeds
    items, rss, atom = ledger_feeds(
        web.store, web.renderer, profile, now=web.app.clock(),
        window_days=settings.window_days, max_items=settings.max_items,
    )
    body = atom if fmt == "atom" else rss
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    headers = [("ETag", etag), ("Cache-Control", "private, no-cache")]
    newest = max((item.sent_at for item in items), default=None)
    if newest is not None:
        headers.append(("Last-Modified", email.utils.format_datetime(
            newest.astimezone(dt.UTC), usegmt=True)))
    if not_modified(request.environ, etag, newest):
        return Response(304, b"", None, headers)
    return Response(200, body, content_type, headers)
