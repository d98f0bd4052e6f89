"""Render benchmark: every format for many profiles x 12 papers, per-format cost.

    python bench/render.py [--profiles 10000] [--workers 2]

Each profile gets a digest of 12 real papers (from the bundled sample, with reasons), rendered
as the HTML email (CSS inlined) and its text part, the full MIME message, the markdown digest,
and both feeds (a 30-day window of 36 items). The per-format cost is measured on one process
over a sample of profiles; the whole run is then timed across `--workers` processes. Baseline
in the same run: the same HTML email template rendered without CSS inlining (what the inliner
adds). Target (issue 4): 10,000 profiles in under 60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from digest.cli import sample_path  # noqa: E402
from digest.mailer import build_message, make_message_id  # noqa: E402
from digest.profiles import Interest, Profile  # noqa: E402
from digest.render import FeedItem, Links, Renderer  # noqa: E402
from digest.types import Digest, Paper, Recommendation, Why  # noqa: E402

NOW = dt.datetime(2026, 7, 1, 7, 30, tzinfo=dt.UTC)


def _papers() -> list[Paper]:
    from digest.text import clean

    out = []
    with gzip.open(sample_path(), "rt", encoding="utf-8") as lines:
        for pid, line in enumerate(lines, start=1):
            r = json.loads(line)
            out.append(Paper(
                pid=pid, key=r["id"], title=clean(r["title"]), abstract=clean(r["abstract"]),
                authors=tuple(r["authors"]), categories=tuple(r["categories"]),
                announced=dt.date.fromisoformat(r["date"]), first_seen=NOW, url=None,
                arxiv_id=r["id"], title_raw=r["title"], abstract_raw=r["abstract"],
            ))
    return out


PAPERS: list[Paper] = []
RENDERER: Renderer | None = None


def _setup() -> None:
    global PAPERS, RENDERER
    PAPERS = _papers()
    RENDERER = Renderer(links=Links("https://digest.example.org", lambda p: f"{p}.token"))


def _profile(i: int) -> Profile:
    return Profile(version=1, name=f"p{i:05d}", email=f"p{i}@example.org",
                   interests=(Interest(name="vision-language models",
                                       text="vision language models"),))


def _digest(i: int) -> tuple[Profile, Digest, list[FeedItem]]:
    n = len(PAPERS)
    items = tuple(
        Recommendation(PAPERS[(i * 12 + k) % n], 0.5 - k * 0.01, Why(
            interest="vision-language models", similarity=0.4,
            terms=("vision", "language", "models", "multimodal", "benchmark"),
            seed_key=PAPERS[(i + 7) % n].key, seed_title=PAPERS[(i + 7) % n].title,
            seed_similarity=0.3,
        ))
        for k in range(12)
    )
    feed = [FeedItem(PAPERS[(i * 36 + k) % n], NOW - dt.timedelta(days=k // 12), None)
            for k in range(36)]
    profile = _profile(i)
    return profile, Digest(profile.name, "2026-07-01", NOW.date(), items, NOW), feed


def _render_all(i: int, timings: dict[str, float] | None = None) -> int:
    assert RENDERER is not None
    profile, digest, feed = _digest(i)
    marks = [time.perf_counter()]
    email = RENDERER.email(digest, profile)
    marks.append(time.perf_counter())
    message = build_message(
        sender="digest <digest@example.org>", to=profile.email or "", subject=email.subject,
        text=email.text, html=email.html, message_id=make_message_id("example.org"), date=NOW,
        list_id="digest.example.org",
        unsubscribe_url=RENDERER.links.unsubscribe(profile.name), unsubscribe_mailto=None,
    )
    marks.append(time.perf_counter())
    markdown = RENDERER.markdown(digest, profile)
    marks.append(time.perf_counter())
    rss, atom = RENDERER.feeds(profile, feed, now=NOW)
    marks.append(time.perf_counter())
    if timings is not None:
        for name, a, b in zip(("email html+text", "MIME message", "markdown", "feeds rss+atom"),
                              marks[:-1], marks[1:], strict=True):
            timings[name] = timings.get(name, 0.0) + (b - a)
    return len(message) + len(markdown) + len(rss) + len(atom)


def _feed_costs(sample: int) -> dict[str, float]:
    """ms per profile to build both feeds by hand (the builder before feedgen, the baseline),
    with feedgen, and to compute the stamp that decides whether they are rebuilt at all."""
    assert RENDERER is not None
    sys.path.insert(0, str(ROOT / "bench"))
    import feeds_by_hand

    from digest.deliver import _feeds_stamp

    spent = {"by hand": 0.0, "feedgen": 0.0, "stamp": 0.0}
    for i in range(sample):
        profile, _, feed = _digest(i)
        RENDERER._feed_bodies.clear()  # each builder pays for rendering the entry bodies
        t0 = time.perf_counter()
        feeds_by_hand.build_feeds(RENDERER, profile, feed, window_days=30, max_items=100,
                                  now=NOW)
        RENDERER._feed_bodies.clear()
        t1 = time.perf_counter()
        RENDERER.feeds(profile, feed, now=NOW)
        t2 = time.perf_counter()
        _feeds_stamp(RENDERER, profile, feed, 30, 100)
        t3 = time.perf_counter()
        spent["by hand"] += t1 - t0
        spent["feedgen"] += t2 - t1
        spent["stamp"] += t3 - t2
    return {name: secs / sample * 1000 for name, secs in spent.items()}


def _chunk(bounds: tuple[int, int]) -> int:
    return sum(_render_all(i) for i in range(*bounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profiles", type=int, default=10000)
    parser.add_argument("--sample", type=int, default=300, help="profiles timed per format")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", dest="json_out",
                        default=str(ROOT / "bench/results/render.json"))
    args = parser.parse_args()
    _setup()
    assert RENDERER is not None

    timings: dict[str, float] = {}
    for i in range(args.sample):
        _render_all(i, timings)
    per = {name: secs / args.sample * 1000 for name, secs in timings.items()}

    # Baseline: the HTML template alone, without the CSS inliner.
    profile, digest, _ = _digest(0)
    template = RENDERER  # the environment is private; time the inliner through css_inline
    import css_inline

    html = template.email(digest, profile).html
    t = time.perf_counter()
    inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
    for _ in range(args.sample):
        inliner.inline(html)
    inline_ms = (time.perf_counter() - t) / args.sample * 1000

    feeds = _feed_costs(args.sample)

    t = time.perf_counter()
    step = max(1, args.profiles // (args.workers * 8))
    bounds = [(a, min(a + step, args.profiles)) for a in range(0, args.profiles, step)]
    with ProcessPoolExecutor(args.workers, initializer=_setup) as pool:
        total_bytes = sum(pool.map(_chunk, bounds))
    wall = time.perf_counter() - t

    print(f"{args.profiles} profiles x 12 papers, {args.workers} processes: {wall:.1f} s "
          f"({args.profiles / wall:,.0f} profiles/s, {total_bytes / 2**20:.0f} MB written)")
    print("| format | ms per profile (1 process) |")
    print("| --- | ---: |")
    for name, ms in per.items():
        print(f"| {name} | {ms:.2f} |")
    print(f"| all formats | {sum(per.values()):.2f} |")
    print(f"(of the email, CSS inlining alone: {inline_ms:.2f} ms)")
    daily = {name: ms * args.profiles / 1000 for name, ms in feeds.items()}
    print(f"Feeds, daily cost for {args.profiles:,} profiles (1 process, build only):")
    print(f"  hand-written XML, every feed every run (before): {daily['by hand']:.1f} s")
    print(f"  feedgen, every feed rebuilt: {daily['feedgen']:.1f} s")
    print(f"  feedgen, rebuilt only when the ledger changed: quiet day {daily['stamp']:.1f} s "
          f"(the stamps), a day everyone gets a digest {daily['feedgen'] + daily['stamp']:.1f} s")
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_out).write_text(json.dumps({
        "profiles": args.profiles, "workers": args.workers, "wall_s": wall,
        "ms_per_profile": per, "inline_ms": inline_ms, "feeds_ms_per_profile": feeds,
        "feeds_daily_s": daily,
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
