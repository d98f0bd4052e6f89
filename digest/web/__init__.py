"""The web side of digest (``digest serve``): the personal page, feeds, one-click unsubscribe,
feedback and past digests, each at a URL that carries the profile's signed token
(`digest.tokens`: feed tokens only read; act tokens also vote and unsubscribe).

Routes::

    GET  /                                 what this service is
    GET  /p/<act>                          the personal page: latest digest, votes, feeds ...
    GET  /feeds/<feed>/feed.atom|feed.rss  the profile's feeds, rendered from the ledger
    GET  /unsubscribe/<act>                a confirmation page with a button
    POST /unsubscribe/<act>                RFC 8058 one-click: unsubscribed, 200, no redirect
    GET  /feedback/<act>?paper=ID&v=like|dislike   a confirmation page with a button
    POST /feedback/<act>?paper=ID&v=like|dislike   records it, as ``digest feedback`` does
    GET  /digests/<feed or act>/           the profile's past digests
    GET  /digests/<feed or act>/<date>     one digest, its markdown rendered and sanitized

Modules: `app` (routing and checks), `pages`, `feeds`, `actions`, `markup` (markdown to safe
HTML), `security` (headers, cross-site POSTs), `profilecache`, `serving` (waitress).
"""

from .actions import set_subscribed
from .app import WebApp, make_app
from .markup import render_markdown
from .security import SECURITY_HEADERS
from .serving import DigestServer, make_server, serve

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
