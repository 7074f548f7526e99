"""Open a campaign report file in a real headless Chromium (file://, no server), as a lab
engineer does: shared by the report tests (``hanlab report`` and ``hanlab campaign report``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import need


@contextmanager
def report_in_chromium(report: Path, profile: Path) -> Iterator[Any]:
    """A selenium driver with ``report`` loaded; the page's heatmap and first timing plot
    are checked to be rendered (visible, plot at least 600 × 150 px with drawn paths)."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    chromedriver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    need(os.access(chromium, os.X_OK) and os.access(chromedriver, os.X_OK),
         "chromium and chromedriver (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--window-size=1300,1000",
                 "--force-device-scale-factor=1"):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        driver.set_page_load_timeout(30)
        driver.get(report.as_uri())
        heatmaps = driver.find_elements(By.CSS_SELECTOR, "#heatmap table.heatmap")
        assert heatmaps and all(h.is_displayed() for h in heatmaps)
        plots = driver.find_elements(By.CSS_SELECTOR, "figure.timing-plot svg")
        assert plots
        size = plots[0].size
        assert size["width"] > 600 and size["height"] > 150, size
        assert driver.find_elements(By.CSS_SELECTOR, "figure.timing-plot svg path")
        yield driver
    finally:
        driver.quit()


def save_full_page(driver: Any, name: str, fallback: Path,
                   log: Callable[[str], None] = print) -> Path:
    """A full-page screenshot into ``$HANLAB_TEST_ARTIFACTS`` (else ``fallback``)."""
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(1300, min(height + 100, 16000))
    folder = Path(os.environ.get("HANLAB_TEST_ARTIFACTS") or fallback)
    folder.mkdir(parents=True, exist_ok=True)
    shot = folder / name
    assert driver.save_screenshot(str(shot))
    log(f"\nscreenshot: {shot}")
    return shot
