"""The personal page in a real browser: headless Chromium driven by Selenium through Debian's
``chromium-driver``. Load the page, like a paper with the button, see the profile file change;
no sideways scrolling at 375 px; keyboard focus visible. Screenshots go to ``out/web_*.png``.

Skipped when chromedriver is not installed, unless ``CI`` is set: CI installs it (``.ci/run``),
so there a missing driver is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_server import SECRET, Site, running_site

from digest.profiles import load_profile
from digest.tokens import make_token

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "out"
ACT = make_token(SECRET, "ada")
PHONE = {"width": 375, "height": 812, "deviceScaleFactor": 2, "mobile": True}


def executables() -> tuple[str, str]:
    driver = shutil.which("chromedriver")
    browser = next((found for name in ("chromium", "chromium-browser", "google-chrome")
                    if (found := shutil.which(name))), None)
    if driver and browser:
        return driver, browser
    if os.environ.get("CI"):
        pytest.fail("chromedriver or chromium is missing, and CI is set (.ci/run installs them)")
    pytest.skip("no chromedriver on PATH (apt-get install chromium chromium-driver)")


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    driver_path, browser_path = executables()
    options = Options()
    options.binary_location = browser_path
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-extensions", "--disable-default-apps",
                 "--no-first-run", "--disable-quic", "--window-size=1280,900"):
        options.add_argument(flag)
    # Both paths are given, so Selenium Manager has nothing to look up or download.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with running_site(tmp_path) as site:
        yield site


def as_phone(driver: WebDriver) -> None:
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)


def overflow(driver: WebDriver) -> int:
    """How many CSS pixels the page is wider than the viewport (0: no sideways scrolling)."""
    return int(driver.execute_script(
        "const d = document.documentElement; return d.scrollWidth - d.clientWidth;"))


def shot(driver: WebDriver, name: str) -> None:
    OUT.mkdir(exist_ok=True)
    driver.save_screenshot(str(OUT / f"web_{name}.png"))


def navigating(driver: WebDriver, action: Callable[[], object]) -> None:
    """Do `action` (a click, a key) and wait until the page it submits has replaced this one:
    reading the next page at once may still read this one."""
    old = driver.find_element(By.TAG_NAME, "html")
    action()
    WebDriverWait(driver, 15).until(expected_conditions.staleness_of(old))


def like_button(driver: WebDriver, key: str) -> Any:
    return driver.find_element(
        By.CSS_SELECTOR, f'form[action*="paper={key}&v=like"] button')


def test_like_a_paper_on_the_personal_page(browser: WebDriver, site: Site) -> None:
    as_phone(browser)
    browser.get(site.url(f"/p/{ACT}"))

    assert "Latest digest, 2026-06-08" in browser.page_source
    assert overflow(browser) == 0
    shot(browser, "page_375")
    button = like_button(browser, "2506.00001")
    assert button.get_attribute("aria-pressed") == "false"
    assert "2506.00001" not in load_profile(site.ada_yaml).liked

    navigating(browser, button.click)

    heading = browser.find_element(By.TAG_NAME, "h1").text
    assert heading == "Thanks"
    assert overflow(browser) == 0
    shot(browser, "liked_375")
    assert load_profile(site.ada_yaml).liked == ("2506.00009", "2506.00001")
    # Comments in the file survive a vote from the browser.
    assert "# liked by hand" in site.ada_yaml.read_text(encoding="utf-8")

    navigating(browser, browser.find_element(By.LINK_TEXT, "Your page").click)
    pressed = like_button(browser, "2506.00001").get_attribute("aria-pressed")
    assert pressed == "true"


def test_the_page_is_usable_with_the_keyboard(browser: WebDriver, site: Site) -> None:
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    browser.get(site.url(f"/p/{ACT}"))
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    seen = []
    for _ in range(12):
        active = browser.switch_to.active_element
        seen.append(active.tag_name)
        if active.tag_name == "button":
            break
        active.send_keys(Keys.TAB)
    assert seen[-1] == "button", seen
    # The focused button shows where the keyboard is, and says what it does.
    assert active.value_of_css_property("outline-style") == "solid"
    assert "Like" in (active.get_attribute("aria-label") or "")
    shot(browser, "page_focus_1280")

    navigating(browser, lambda: active.send_keys(Keys.ENTER))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Thanks"
    assert "2506.00001" in load_profile(site.ada_yaml).liked


def test_the_other_pages_fit_a_phone(browser: WebDriver, site: Site) -> None:
    as_phone(browser)
    for name, path in [("root", "/"), ("digests", f"/digests/{ACT}/"),
                       ("digest", f"/digests/{ACT}/2026-06-08"),
                       ("unsubscribe", f"/unsubscribe/{ACT}"),
                       ("feedback", f"/feedback/{ACT}?paper=2506.00002&v=dislike")]:
        browser.get(site.url(path))
        assert overflow(browser) == 0, name
        shot(browser, f"{name}_375")


# WCAG 2 contrast of each element's own text against the first opaque background behind it.
CONTRAST = """
function lum(rgb) {
  const c = rgb.match(/[\\d.]+/g).slice(0, 3).map(Number).map(v => {
    v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
  return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
}
function background(el) {
  for (; el; el = el.parentElement) {
    const bg = getComputedStyle(el).backgroundColor;
    const alpha = bg.match(/[\\d.]+/g)[3];
    if (alpha === undefined || Number(alpha) > 0) return bg;
  }
  return "rgb(255, 255, 255)";
}
const out = [];
for (const el of document.querySelectorAll("h1, h2, h3, p, li, a, button, span, strong")) {
  if (![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
  const a = lum(getComputedStyle(el).color), b = lum(background(el));
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  out.push([el.tagName + ": " + el.textContent.trim().slice(0, 30), ratio]);
}
return out;
"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_has_enough_contrast(browser: WebDriver, site: Site, scheme: str) -> None:
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {
        "features": [{"name": "prefers-color-scheme", "value": scheme}]})
    try:
        browser.get(site.url(f"/p/{ACT}"))
        # The liked state too: a pressed button has colours of its own.
        navigating(browser, like_button(browser, "2506.00001").click)
        browser.get(site.url(f"/p/{ACT}"))
        shot(browser, f"page_{scheme}_1280")
        ratios = browser.execute_script(CONTRAST)
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    assert len(ratios) > 10
    low = [(what, round(ratio, 2)) for what, ratio in ratios if ratio < 4.5]
    assert low == []  # WCAG AA for normal text
