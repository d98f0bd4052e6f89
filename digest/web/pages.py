"""The pages a person reads: the site's root, their personal page, their past digests.

The personal page (``/p/<act token>``) is the one place that shows everything of a profile:
the latest digest with each paper's reason and score and a like/dislike button, the past
digests, the feed links and unsubscribe. Plain server-rendered HTML: forms, no script.

A page reached with a feed token (which people hand to feed readers) must never show an act
token: the digest list links to the personal page only when its own token is an act token.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    select_autoescape,
)
from markupsafe import Markup

from ..deliver import why_from
from ..render import shipped_templates_dir
from ..store import Delivery
from .markup import render_markdown
from .wsgi import Request, Response, Who

if TYPE_CHECKING:
    from .app import WebApp


def page_environment(templates_dir: str | None) -> Environment:
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


def root(web: WebApp, request: Request) -> Response:
    return web.page("server_root.html")


def personal(web: WebApp, request: Request, who: Who) -> Response:
    token = quote(who.token, safe="")
    sent = [d for d in web.store.deliveries_of(who.name) if d.status == "sent"]
    latest = sent[0] if sent else None
    items: list[Any] = []
    if latest is not None:
        papers = web.store.papers_by_pid(latest.pids)
        for number, entry in enumerate(latest.items, 1):
            paper = papers.get(int(entry["pid"]))
            if paper is None:
                continue
            score = entry.get("score")
            items.append(web.renderer.item(
                number, paper, why_from(entry.get("why")),
                float(score) if score is not None else None, who.name))
    profile = who.profile
    liked = set(profile.liked) if profile else set()
    disliked = set(profile.disliked) if profile else set()
    feed_token = quote(web.keys.sign(who.name, "feed"), safe="")
    base = (web.app.config.server.public_url or "").rstrip("/")
    feeds_at = f"{base}/feeds/{feed_token}" if base else f"../feeds/{feed_token}"
    return web.page(
        "server_page.html", profile=who.name, latest=latest, items=items, liked=liked,
        disliked=disliked, past=[d for d in sent if viewable(d)],
        digests_url=f"../digests/{token}/", feedback_url=f"../feedback/{token}",
        unsubscribe_url=f"../unsubscribe/{token}",
        atom_url=f"{feeds_at}/feed.atom", rss_url=f"{feeds_at}/feed.rss",
        unsubscribed=who.name in web.store.unsubscribed(),
        profile_error=profile is None,
    )


def digests(web: WebApp, request: Request, who: Who) -> Response:
    shown = [d for d in web.store.deliveries_of(who.name) if viewable(d)]
    page_url = f"../../p/{quote(who.token, safe='')}" if web.is_act(who.token) else None
    return web.page("server_digests.html", profile=who.name, digests=shown, page_url=page_url)


def digest(web: WebApp, request: Request, who: Who) -> Response:
    key = request.segments[-1]
    delivery = web.store.get_delivery(who.name, key)
    if delivery is None or not viewable(delivery):
        return web.not_found()
    text = delivery.markdown
    if text is None:
        text = _markdown_file(web.app.out_dir, who.name, key)
    if text is None:
        return web.not_found()
    return web.page("server_digest.html", profile=who.name, key=key,
                    content=Markup(render_markdown(text)))


def viewable(delivery: Delivery) -> bool:
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
