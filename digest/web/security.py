"""What every response says about itself, and which POSTs come from somewhere we trust."""

from __future__ import annotations

from urllib.parse import urlsplit
from wsgiref.types import WSGIEnvironment

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


def cross_site(environ: WSGIEnvironment, public_url: str | None) -> bool:
    """Whether a state-changing request was sent by a page of another site (CSRF).

    Browsers say where a request comes from (Sec-Fetch-Site, else Origin); a request that
    says neither is not from a browser page: mail providers' RFC 8058 one-click POSTs and
    command-line clients, which the signed URL alone authorizes. "same-site" is refused too: a
    sibling subdomain may belong to someone else.
    """
    fetch_site = environ.get("HTTP_SEC_FETCH_SITE")
    if fetch_site is not None:
        return str(fetch_site).strip().lower() not in ("same-origin", "none")
    origin = environ.get("HTTP_ORIGIN")
    if origin is None:
        return False
    netloc = urlsplit(str(origin).strip()).netloc.lower()
    ours = {str(environ.get("HTTP_HOST", "")).lower()}
    if public_url:
        ours.add(urlsplit(public_url).netloc.lower())
    ours.discard("")
    return netloc not in ours
