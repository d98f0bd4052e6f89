"""RSS 2.0 and Atom feeds of what a profile was sent, with feedgen 1.0.

feedgen has traps, each avoided here on purpose:

1. Atom drops an entry link's ``rel``/``type``: each entry gets exactly one link (the
   abstract page); the PDF link goes in the content.
2. The RSS channel ``<link>`` is the last link added: the self link goes first.
3. The self link would be shared by both formats: each format gets its own generator.
4. ``content(type='CDATA')`` writes an invalid Atom type: ``type='html'``.
5. ``add_entry()`` prepends: ``order='append'`` keeps newest first.
6. ``updated`` and ``lastBuildDate`` default to now: both are the newest item's time.
7. ``id()`` makes the RSS guid a non-permalink: ``guid(url, permalink=True)`` with the
   abstract URL without version, so a new version is not a new item.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote

from feedgen.feed import FeedGenerator

from digest.render import FeedItem, Item, display_text, safe_url

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
    entries = [
        (fi, renderer.item(n, fi.paper, fi.why, None, profile.name))
        for n, fi in enumerate(chosen, 1)
    ]
    bodies = [renderer.feed_entry_html(item) for _, item in entries]
    rss = _generator(renderer, profile, entries, bodies, "rss").rss_str(pretty=True)
    atom = _generator(renderer, profile, entries, bodies, "atom").atom_str(pretty=True)
    return bytes(rss), bytes(atom)


def select(
    items: Sequence[FeedItem], *, window_days: int, max_items: int, now: dt.datetime
) -> list[FeedItem]:
    """The items of the window, newest first, one per paper (its latest sending)."""
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
    # Ties broken by key so that the order never depends on the caller's.
    ordered = sorted(latest.values(), key=lambda fi: fi.paper.key)
    ordered.sort(key=lambda fi: fi.sent_at, reverse=True)
    return ordered[:max_items]


def _generator(
    renderer: Renderer,
    profile: Profile,
    entries: Sequence[tuple[FeedItem, Item]],
    bodies: Sequence[str],
    fmt: Literal["rss", "atom"],
) -> FeedGenerator:
    links = renderer.links
    site = renderer.site_name
    home = f"{links.base_url.rstrip('/')}/" if links.base_url else "https://arxiv.org/"
    fg = FeedGenerator()
    fg.id(links.feed(profile.name, "atom") or f"urn:digest:{quote(site)}:{profile.name}")
    fg.title(f"{site}: papers for {profile.name}")
    interests = ", ".join(display_text(i.name) for i in profile.interests)
    fg.description(
        f"Papers {site} sent to {profile.name}" + (f" on {interests}" if interests else "")
    )
    fg.author({"name": site})
    fg.language("en")
    fg.generator(generator=site)
    self_url = links.feed(profile.name, fmt)
    if self_url:
        fg.link(
            href=self_url,
            rel="self",
            type="application/rss+xml" if fmt == "rss" else "application/atom+xml",
        )
    fg.link(href=home, rel="alternate", type="text/html")
    fg.updated(max((fi.sent_at for fi, _ in entries), default=EPOCH))
    for (fi, item), body in zip(entries, bodies, strict=True):
        fe = fg.add_entry(order="append")
        guid = _guid(fi.paper.abs_url, fi.paper.key)
        fe.guid(guid, permalink=safe_url(guid) is not None)
        fe.title(item.title)
        if item.url:
            fe.link(href=item.url)
        fe.content(display_text(body), type="html")
        fe.published(fi.sent_at)
        fe.updated(fi.sent_at)
        if fmt == "atom" and fi.paper.authors:
            fe.author([{"name": display_text(a)} for a in fi.paper.authors if display_text(a)])
        for category in item.categories:
            fe.category(term=category)
    return fg


def _guid(abs_url: str | None, key: str) -> str:
    return safe_url(abs_url) or f"urn:digest:paper:{quote(key, safe=':')}"
