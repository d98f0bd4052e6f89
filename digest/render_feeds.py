"""RSS 2.0 and Atom feeds of what a profile was sent, written by feedgen.

feedgen's traps (see ../shared/brief/ECOSYSTEM.md), and what is done about each:

1. Atom drops an entry link's attributes: each entry has exactly one link (the abstract
   page); the PDF and the like/dislike links are in the content.
2. The RSS channel ``<link>`` is the last link added: the self link goes first, the
   alternate (the site's home page, ``public_url/``) last.
3. The self link is shared by both formats: it is replaced between ``atom_str`` and
   ``rss_str``.
4. ``content(type='CDATA')`` writes an invalid Atom type: the content is ``type='html'``
   (escaped HTML), which is also the RSS ``<description>``.
5. ``add_entry`` prepends: entries are appended in the order wanted.
6. ``updated`` defaults to now: every date is set, to the newest item's time (a fixed one
   when empty), so the same items give the same bytes.
7. ``fe.id`` alone gives a non-permalink guid: the guid is the abstract URL without version,
   ``isPermaLink="true"``, so a new version is not a new item.

Building a feed costs about 20 ms; `digest run` rebuilds a profile's feeds only when what it
was sent changed (see `deliver.Deliverer.write_feeds`). Entries come newest digest first,
each digest's papers in its ranking order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import quote

from feedgen.feed import FeedGenerator

from digest.render import FeedItem, display_text, safe_url

if TYPE_CHECKING:
    from digest.profiles import Profile
    from digest.render import Renderer

#: What an empty feed says it was updated: a fixed time, so that it is reproducible.
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def build_feeds(
    renderer: Renderer,
    profile: Profile,
    items: Sequence[FeedItem],
    *,
    window_days: int,
    max_items: int,
    now: dt.datetime,
) -> tuple[bytes, bytes]:
    """(RSS, Atom) bytes; see `Renderer.feeds`."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    chosen = select(items, window_days=window_days, max_items=max_items, now=now)
    links = renderer.links
    site = renderer.site_name
    home = f"{links.base_url.rstrip('/')}/" if links.base_url else "https://arxiv.org/"
    title = f"{site}: papers for {profile.name}"
    interests = ", ".join(display_text(i.name) for i in profile.interests)
    updated = max((fi.sent_at for fi in chosen), default=EPOCH)

    fg = FeedGenerator()
    fg.id(links.feed(profile.name, "atom") or f"urn:digest:{quote(site)}:{profile.name}")
    fg.title(title)
    fg.description(f"Papers {site} sent to {profile.name}"
                   + (f" on {interests}" if interests else ""))
    fg.language("en")
    if site:
        fg.author({"name": site})
        fg.generator(site)
    fg.updated(updated)
    fg.lastBuildDate(updated)
    cached = renderer._feed_bodies_cached()
    for n, fi in enumerate(chosen, 1):
        item = renderer.item(n, fi.paper, fi.why, None, profile.name)
        guid = _guid(fi.paper.abs_url, fi.paper.key)
        entry = fg.add_entry(order="append")
        entry.id(guid)
        entry.guid(guid, permalink=safe_url(guid) is not None)
        entry.title(item.title or fi.paper.key or "(untitled)")  # feedgen requires one
        if item.url:
            entry.link(href=item.url)
        body = renderer._feed_body(item, cached)
        if body:
            entry.content(body, type="html")
        for name in (display_text(a) for a in fi.paper.authors):
            if name:
                entry.author({"name": name})
        for category in item.categories:
            entry.category(term=category)
        entry.updated(fi.sent_at)
        entry.published(fi.sent_at)

    feeds: dict[str, bytes] = {}
    for fmt, media in (("atom", "application/atom+xml"), ("rss", "application/rss+xml")):
        self_url = links.feed(profile.name, fmt)  # type: ignore[arg-type]
        fg.link([{"href": self_url, "rel": "self", "type": media}] if self_url else [],
                replace=True)
        fg.link(href=home, rel="alternate", type="text/html")
        feeds[fmt] = fg.atom_str(pretty=True) if fmt == "atom" else fg.rss_str(pretty=True)
    return feeds["rss"], feeds["atom"]


def select(
    items: Sequence[FeedItem], *, window_days: int, max_items: int, now: dt.datetime
) -> list[FeedItem]:
    """The items of the window, newest first, one per paper (its latest sending). Items sent
    together (one digest) keep the order they come in: the ledger gives its ranking order."""
    cutoff = now - dt.timedelta(days=window_days)
    latest: dict[str, FeedItem] = {}
    for fi in items:
        if fi.sent_at.tzinfo is None:
            raise ValueError(f"sent_at of {fi.paper.key} must be timezone-aware")
        if fi.sent_at < cutoff:
            continue
        guid = _guid(fi.paper.abs_url, fi.paper.key)
        if guid not in latest or fi.sent_at > latest[guid].sent_at:
            latest[guid] = fi
    ordered = sorted(latest.values(), key=lambda fi: fi.sent_at, reverse=True)  # stable
    return ordered[:max_items]


def _guid(abs_url: str | None, key: str) -> str:
    return safe_url(abs_url) or f"urn:digest:paper:{quote(key, safe=':')}"
