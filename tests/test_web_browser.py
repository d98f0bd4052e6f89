"""The personal page in a real browser: headless Chromium driven by Selenium through Debian's
``chromium-driver``. Load the page, like a paper with the button, see the profile file change;
no sideways scrolling at 375 px; keyboard focus visible. Screenshots go to ``out/web_*.png``.

Skipped when chromedriver is not installed, unless ``CI`` is set: CI installs it (``.ci/run``),
so there a missing driver is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

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


def like_button(driver: WebDriver, key: str) -> object:
    return driver.find_element(
        By.CSS_SELECTOR, f'form[action*="paper={key}&v=like"] button')


def test_like_a_paper_on_the_personal_page(browser: WebDriver, site: Site) -> None:
    as_phone(browser)
    browser.get(site.url(f"/p/{ACT}"))

    assert "Latest digest, 2026-06-08" in browser.page_source
    assert overflow(browser) == 0
    shot(browser, "page_375")
    button = like_button(browser, "2506.00001")
    assert button.get_attribute("aria-pressed") == "false"  # type: ignore[attr-defined]
    assert "2506.00001" not in load_profile(site.ada_yaml).liked

    button.click()  # type: ignore[attr-defined]

    heading = browser.find_element(By.TAG_NAME, "h1").text
    assert heading == "Thanks"
    assert overflow(browser) == 0
    shot(browser, "liked_375")
    assert load_profile(site.ada_yaml).liked == ("2506.00009", "2506.00001")
    # Comments in the file survive a vote from the browser.
    assert "# liked by hand" in site.ada_yaml.read_text(encoding="utf-8")

    browser.find_element(By.LINK_TEXT, "Your page").click()
    pressed = like_button(browser, "2506.00001").get_attribute("aria-pressed")  # type: ignore[attr-defined]
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

    active.send_keys(Keys.ENTER)
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
