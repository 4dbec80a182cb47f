"""Take the README's dashboard screenshots from a running dashboard with headless Chromium.

Start the service first (``patentmatch demo``, or the API and ``patentmatch
dashboard``), then run::

    python -m dashboard.screenshots --url http://127.0.0.1:8050 --output docs

It writes ``dashboard-search.png`` (a search and its results),
``dashboard-charts.png`` (two checked patents, one bar hovered) and
``dashboard-empty.png`` (a search that matches nothing). Needs selenium and
Debian's ``chromium`` and ``chromium-driver`` (the ``dev`` extra and
``.ci/run`` install them).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlencode

from dashboard import ids

logger = logging.getLogger(__name__)

DEFAULT_QUERY = "딥러닝을 활용한 영상 인식"
WAIT_S = 120
WIDTH = 1400


class ScreenshotError(RuntimeError):
    """A page did not reach the state a screenshot needs."""


def _driver(width: int):
    from selenium import webdriver

    # Selenium Manager would look up driver versions online; offline it uses PATH.
    os.environ.setdefault("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    binary = shutil.which("chromium")
    if binary:
        options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--disable-background-networking",
                     "--disable-extensions", "--hide-scrollbars", "--lang=ko-KR",
                     f"--window-size={width},1000"):
        options.add_argument(argument)
    return webdriver.Chrome(options=options)


def _wait(driver, condition, message: str):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.wait import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT_S).until(condition)
    except TimeoutException as exc:
        raise ScreenshotError(message) from exc


def _fit_window(driver, width: int) -> None:
    """Grow the window until the whole page fits, so screenshots are not cut.

    Graphs redraw for the new size and may change the page's height, so this
    measures again until the height settles (at most five rounds).
    """
    for _ in range(5):
        height = int(driver.execute_script("return document.documentElement.scrollHeight"))
        inner = int(driver.execute_script("return window.innerHeight"))
        if height <= inner:
            return
        driver.set_window_size(width, height + 120)
        time.sleep(0.3)


def _capture(driver, path: Path, width: int) -> None:
    """Save the whole page."""
    _fit_window(driver, width)
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    logger.info("wrote %s", path)


def _search(driver, base_url: str, params: dict[str, object]) -> None:
    driver.set_window_size(WIDTH, 1000)
    driver.get(f"{base_url}/?{urlencode(params)}")
    _wait(driver, lambda d: d.find_elements("css selector", "#search-done, #search-error"),
          f"the search {params} did not finish within {WAIT_S} s")
    if driver.find_elements("id", "search-error"):
        raise ScreenshotError(driver.find_element("id", "search-error").text)


def take_screenshots(base_url: str, output: Path, query: str, mode: str | None) -> list[Path]:
    """Write the three screenshots into ``output`` and return their paths.

    Raises:
        ScreenshotError: the dashboard showed an error or a state never appeared.
    """
    from selenium.webdriver.common.action_chains import ActionChains

    base_url = base_url.rstrip("/")
    params: dict[str, object] = {"title": query}
    if mode:
        params["mode"] = mode
    written = []
    driver = _driver(WIDTH)
    try:
        # 1. A search and its results.
        _search(driver, base_url, params)
        _wait(driver, lambda d: d.find_elements(
            "css selector", f"#{ids.RESULTS_TABLE} td[data-dash-column='title']"),
            "the results table stayed empty")
        first_title = driver.find_elements(
            "css selector", f"#{ids.RESULTS_TABLE} td[data-dash-column='title']")[0]
        first_title.click()
        _wait(driver, lambda d: d.find_elements("id", "detail-title"),
              "the detail panel did not open")
        written.append(output / "dashboard-search.png")
        _capture(driver, written[-1], WIDTH)

        # 2. Two checked patents with scores; the mouse on the second one's bar.
        rows = driver.find_elements("css selector", f"#{ids.RESULTS_TABLE} tbody tr")
        checked = 0
        for row in rows:
            cells = row.find_elements("css selector", "td[data-dash-column='pqi']")
            boxes = row.find_elements("css selector", "td.dash-select-cell input")
            if cells and boxes and cells[0].text not in ("", "없음"):
                boxes[0].click()
                checked += 1
            if checked == 2:
                break
        if checked < 2:
            raise ScreenshotError("fewer than two results on page 1 have scores")
        _wait(driver, lambda d: len(d.find_elements(
            "css selector", f"#{ids.BAR_CHART} g.trace.bars")) == 2,
            "the bar chart did not show the two checked patents")
        _wait(driver, lambda d: d.find_elements("css selector", f"#{ids.VIOLIN_CHART} g.trace.violins"),
              "the violin plots did not appear")
        # An element screenshot only covers what is inside the window.
        _fit_window(driver, WIDTH)
        _wait(driver, lambda d: len(d.find_elements(
            "css selector", f"#{ids.BAR_CHART} g.trace.bars")) == 2,
            "the bar chart did not redraw after the window grew")
        bars = driver.find_elements("css selector", f"#{ids.BAR_CHART} g.trace.bars")[1]
        ActionChains(driver).move_to_element(bars.find_elements("css selector", "path")[0]).perform()
        _wait(driver, lambda d: d.find_elements("css selector", f"#{ids.VIOLIN_CHART} .textpoint"),
              "hovering a bar did not highlight the patent in the violins")
        written.append(output / "dashboard-charts.png")
        charts = driver.find_element("id", ids.BAR_CHART).find_element("xpath", "..")
        charts.screenshot(str(written[-1]))
        logger.info("wrote %s", written[-1])

        # 3. A search that matches nothing.
        _search(driver, base_url, {**params, "from": 1950, "to": 1955})
        _wait(driver, lambda d: d.find_elements("id", "notice-empty-result"),
              "the empty-result notice did not appear")
        written.append(output / "dashboard-empty.png")
        _capture(driver, written[-1], WIDTH)
    finally:
        driver.quit()
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboard.screenshots",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8050",
                        help="URL of the running dashboard (default: %(default)s)")
    parser.add_argument("--output", type=Path, default=Path("docs"),
                        help="folder for the PNG files (default: %(default)s)")
    parser.add_argument("--query", default=DEFAULT_QUERY,
                        help="demand title to search (default: %(default)s)")
    parser.add_argument("--mode", default=None,
                        help="search mode to request (default: the API's default)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        take_screenshots(args.url, args.output, args.query, args.mode)
    except ScreenshotError as exc:
        logger.error("screenshots failed: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
