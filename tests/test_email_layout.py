"""The HTML email in a real browser (headless Chromium): no sideways scrolling on a phone
(375 px) or at the email's own width (600 px), and screenshots under ``out/`` to look at.

Skipped when no Chromium is installed, unless ``CI`` is set: CI installs it, so there a
missing browser is a failure.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from digest.profiles import Profile
from digest.render import Links, Renderer
from digest.text import clean
from digest.types import Digest, Paper, Recommendation, Why

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
OUT = ROOT / "out"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Only in the test copy of the page, never in the email: after loading, write each framed
# page's widths into the DOM, which --dump-dom then prints.
PROBE = """<script>
window.addEventListener("load", function () {
  document.querySelectorAll("iframe").forEach(function (frame) {
    var d = frame.contentDocument.documentElement;
    var p = document.createElement("pre");
    p.textContent = frame.id + " scrollWidth=" + d.scrollWidth + " clientWidth=" + d.clientWidth;
    document.body.appendChild(p);
  });
});
</script>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail("no chromium binary on PATH, and CI is set (CI installs it)")
    pytest.skip("no chromium binary on PATH (apt-get install chromium)")


def run(browser: str, *args: str) -> str:
    with tempfile.TemporaryDirectory(prefix="digest-chromium-") as profile_dir:
        done = subprocess.run(
            [browser, *FLAGS, f"--user-data-dir={profile_dir}", *args],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def full_email(hostile_tail: str = "") -> str:
    records = json.loads((DATA / "render_papers.json").read_text(encoding="utf-8"))
    papers = [
        Paper(
            pid=n,
            key=r["id"],
            # A long unbroken token must wrap, not widen the page.
            title=clean(r["title"]) + (hostile_tail if n == 1 else ""),
            abstract=clean(r["abstract"]),
            authors=tuple(r["authors"]),
            categories=tuple(r["categories"]),
            announced=dt.date.fromisoformat(r["date"]),
            first_seen=dt.datetime(2025, 11, 23, tzinfo=dt.UTC),
            url=None,
            arxiv_id=r["id"],
        )
        for n, r in enumerate(records[:12], 1)
    ]
    items = tuple(
        Recommendation(p, 0.5, Why("masked image modeling", 0.4, ("mask", "token"))) for p in papers
    )
    digest = Digest(
        "ada",
        "2025-11-23",
        dt.date(2025, 11, 23),
        items,
        dt.datetime(2025, 11, 23, 7, tzinfo=dt.UTC),
    )
    profile = Profile(
        version=1,
        name="ada",
        email="ada@example.org",
        interests=({"name": "masked image modeling", "text": "MIM"},),
    )
    links = Links("https://digest.example.org", token=lambda name: "t" * 43)
    return Renderer(links=links).email(digest, profile).html


def widths(browser: str, frames: dict[str, tuple[str, int]], tmp: Path) -> dict[str, int]:
    """Sideways overflow in px (scrollWidth - clientWidth) of each named (page, width) frame.

    Frames, because headless Chromium will not make its window narrower than about 500 px;
    all in one page, because each browser start costs a second or two.
    """
    probe = tmp / "probe.html"
    iframes = "".join(
        f'<iframe id="{name}" style="width:{width}px;height:1200px;border:0" '
        f'srcdoc="{html.escape(page)}"></iframe>'
        for name, (page, width) in frames.items()
    )
    probe.write_text(
        f'<!DOCTYPE html><html><body style="margin:0">{iframes}{PROBE}</body></html>',
        encoding="utf-8",
    )
    dom = run(browser, "--window-size=1600,1300", "--dump-dom", probe.as_uri())
    found = {
        m[1]: int(m[2]) - int(m[3])
        for m in re.finditer(r"([\w-]+) scrollWidth=(\d+) clientWidth=(\d+)", dom)
    }
    assert found.keys() == frames.keys(), dom[-2000:]
    return found


def test_email_has_no_horizontal_overflow_at_375_and_600_px(tmp_path: Path) -> None:
    browser = chromium()
    page = full_email(hostile_tail=" " + "Unbreakable" * 12)
    # The probe itself is checked: the email forced to 700 px does overflow.
    wide = page.replace("max-width: 600px", "min-width: 700px")
    assert wide != page
    frames = {"phone": (page, 375), "desktop": (page, 600), "forced-wide": (wide, 375)}
    overflow = widths(browser, frames, tmp_path)
    assert overflow["phone"] <= 0, f"{overflow['phone']}px of sideways scrolling at 375px"
    assert overflow["desktop"] <= 0, f"{overflow['desktop']}px of sideways scrolling at 600px"
    assert overflow["forced-wide"] > 0, "the probe does not see overflow"
    OUT.mkdir(exist_ok=True)
    email = OUT / "email.html"
    email.write_text(page, encoding="utf-8")
    for width in (375, 600):
        shot = OUT / f"email-{width}.png"
        shot.unlink(missing_ok=True)
        run(browser, f"--window-size={width},2000", f"--screenshot={shot}", email.as_uri())
        assert shot.stat().st_size > 10_000
