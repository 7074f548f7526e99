"""The dashboard in a real headless Chromium (selenium + Debian's chromedriver).

:func:`test_dashboard_on_the_lab_daemon` runs ``hanlab up`` (the bundled emulated lab,
control API on a free port), signs in on the page (login box: a wrong token is refused
with 401; then ``#token=``), submits jobs through the API and waits until the page shows
both rigs with frames/s per sniffer, the job's steps advancing to a finished state,
per-band timing plots with points and exchanges with segment bars; then a firmware
update (``firmware-management`` ``update-electricity``: SR 11.1 and the OTA transfer to
the ESME) whose transfer the OTA panel shows reaching 100 % with Upgrade End SUCCESS.
:func:`test_dashboard_on_a_fake_lab` shows what the emulated lab rarely produces (a
failed step, capture gaps, damaged-frame events, an OTA transfer in flight and one
refused INVALID_IMAGE) from a fake LabService.

Each saves a screenshot to ``$HANLAB_TEST_ARTIFACTS`` (else ``tmp_path``) and prints its
path.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import free_port
from tests.integration.dashboard_backends import FakeLab, LabDaemon, ServerThread, fake_api_app

TOKEN = "test-token-7f3a"
RIGS = ("emulated-single-band", "emulated-dual-band")
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu",
                  "--disable-dev-shm-usage", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--window-size=1600,1500", "--force-device-scale-factor=1")


def _missing(why: str) -> None:
    """Skip on a developer machine; fail in CI, where Chromium must be installed."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{why} (CI is set: install chromium chromium-driver and selenium)")
    pytest.skip(why)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """A headless Chromium driven by chromedriver, with a fresh profile."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    chromedriver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not (os.access(chromium, os.X_OK) and os.access(chromedriver, os.X_OK)):
        _missing("chromium or chromedriver not found")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def _http(url: str, *, token: str | None, body: Any = None) -> tuple[int, Any]:
    headers = {"Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers,
                                     method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            status = response.status
            kind = response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    return status, json.loads(raw) if "json" in kind else raw.decode()


def _wait(what: str, check: Callable[[], Any], timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as error:  # stale elements while the page re-renders
            last = error
        else:
            if last:
                return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def _artifact_folder(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("HANLAB_TEST_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Page:
    """The dashboard in the browser, with the checks both tests share."""

    def __init__(self, browser: Any, url: str, token: str) -> None:
        from selenium.webdriver.common.by import By

        self.by = By
        self.browser = browser
        self.url = url
        self.token = token

    def testid(self, testid: str) -> Any:
        return self.browser.find_element(self.by.CSS_SELECTOR, f'[data-testid="{testid}"]')

    def login_open(self) -> bool:
        return bool(self.browser.execute_script(
            "return document.getElementById('login').open"))

    def sign_in_wrong_then_by_fragment(self) -> None:
        """No token: the login box; a wrong one: 401 and the box again; then the token
        in the URL fragment, which the page keeps in sessionStorage and drops from the
        address bar."""
        browser, by = self.browser, self.by
        browser.get(f"{self.url}/dashboard/")
        _wait("the login box", self.login_open)
        browser.find_element(by.ID, "login-token").send_keys("wrong-token")
        browser.find_element(by.CSS_SELECTOR, "#login-form button[type=submit]").click()
        _wait("the 401 message", lambda: self.login_open() and "refused" in
              browser.find_element(by.ID, "login-reason").text)
        browser.get(f"{self.url}/#token={self.token}")
        self.wait_rigs()
        assert self.token not in browser.current_url
        assert browser.current_url.endswith("/dashboard/")
        assert browser.execute_script(
            "return sessionStorage.getItem('hanlab.token')") == self.token
        assert not self.login_open()

    def wait_rigs(self) -> None:
        _wait(f"rig cards {RIGS}",
              lambda: all(self.testid(f"rig-{rig}").is_displayed() for rig in RIGS))
        dual = self.testid("rig-emulated-dual-band")
        _wait("both sniffers of the dual-band rig with frames/s", lambda: "emu-subghz"
              in dual.text and "frames/s" in dual.text.lower())
        rates = dual.find_elements(self.by.CSS_SELECTOR, '[data-testid="frames-per-s"]')
        assert len(rates) == 2

    def select_rig(self, rig: str) -> None:
        self.testid(f"rig-{rig}").click()
        _wait(f"rig {rig} selected", lambda: self.testid("selected-rig").text == rig)

    def wait_job_finished(self, job_id: str, timeout_s: float) -> list[int]:
        """Wait until the job panel shows ``job_id`` ended; the steps-done counts seen."""
        progress = self.testid("job-progress")
        seen: list[int] = []

        def finished() -> bool:
            if progress.get_attribute("data-job-id") != job_id:
                return False
            done = int(progress.get_attribute("data-steps-done") or 0)
            if not seen or seen[-1] != done:
                seen.append(done)
            total = int(progress.get_attribute("data-steps-total") or 0)
            # the ended state and the last steps may arrive in consecutive polls
            return (progress.get_attribute("data-state") in ("passed", "failed")
                    and done == total)

        try:
            _wait(f"job {job_id} to finish on the page", finished, timeout_s=timeout_s)
        except AssertionError as error:
            raise AssertionError(f"{error}; steps done seen {seen}; the panel shows "
                                 f"{progress.get_attribute('data-job-id')} "
                                 f"{progress.get_attribute('data-state')}: "
                                 f"{progress.text[:600]}") from None
        total = int(progress.get_attribute("data-steps-total") or 0)
        assert total > 0 and seen[-1] == total, (seen, total)
        strip = progress.find_elements(self.by.CSS_SELECTOR, ".step-strip .step")
        assert len(strip) == total
        return seen

    def wait_plot_points(self, band: str) -> int:
        def points() -> int:
            el = self.testid(f"timing-plot-{band}")
            return int(el.get_attribute("data-points") or 0)

        count = int(_wait(f"timing plot {band} with points", points))
        plot = self.testid(f"timing-plot-{band}")
        assert plot.find_elements(self.by.CSS_SELECTOR, "canvas")
        assert "ms" in plot.text
        return count

    def wait_segment_bars(self, at_least: int) -> None:
        exchanges = self.testid("exchanges")
        _wait("exchange rows with segment bars", lambda: len(exchanges.find_elements(
            self.by.CSS_SELECTOR, "tbody .segbar .seg")) >= at_least)

    def ota_rows(self) -> dict[str, tuple[float | None, str, str]]:
        """The OTA panel's rows: device short address -> (progress %, status, text)."""
        rows = {}
        for row in self.testid("ota").find_elements(self.by.CSS_SELECTOR,
                                                    'tbody tr[data-testid^="ota-"]'):
            progress = row.get_attribute("data-progress")
            rows[str(row.get_attribute("data-testid"))[4:]] = (
                float(progress) if progress else None, str(row.get_attribute("data-status")),
                str(row.text))
        return rows

    def wait_ota(self, what: str, check: Callable[[tuple[float | None, str, str]], bool],
                 timeout_s: float = 20.0) -> tuple[float | None, str, str]:
        """Wait until an OTA panel row passes ``check``; that row."""
        found = _wait(f"an OTA row {what}", lambda: next(
            (row for row in self.ota_rows().values() if check(row)), None), timeout_s)
        return tuple(found)  # type: ignore[return-value]

    def screenshot(self, folder: Path, name: str) -> Path:
        browser = self.browser
        browser.execute_script("window.scrollTo(0, 0)")
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(1600, min(int(height) + 200, 4000))
        time.sleep(0.5)
        shot = folder / name
        assert browser.save_screenshot(str(shot))
        print(f"dashboard screenshot: {shot}")
        return shot

    def assert_no_console_errors(self) -> None:
        errors = [entry["message"] for entry in self.browser.get_log("browser")
                  if entry["level"] == "SEVERE" and "401" not in entry["message"]]
        assert not errors, errors


def test_dashboard_on_the_lab_daemon(browser: Any, tmp_path: Path) -> None:
    with LabDaemon(tmp_path / "lab", free_port(), time_scale=4.0) as daemon:
        url, token = daemon.url, daemon.token("operator")
        # The static files need no token; the API does.
        status, text = _http(f"{url}/dashboard/app.js", token=None)
        assert status == 200 and "Bearer" in text
        assert _http(f"{url}/api/v1/rigs", token=None)[0] == 401

        page = Page(browser, url, token)
        page.sign_in_wrong_then_by_fragment()

        # Jobs submitted through the API, one after the other (the panel shows the running
        # job): 2.4 GHz (ESME, 2 SRs x 2), then the sub-GHz GSME (2 SRs).
        page.select_rig("emulated-dual-band")
        for spec in ({"variants": ["electricity-instantaneous"], "repeat": 2},
                     {"variants": ["gas-instantaneous"],
                      "devices": {"GSME": "00-DB-12-00-00-00-D2-02"}}):
            status, job = _http(f"{url}/api/v1/jobs", token=token, body={
                "rig": "emulated-dual-band", "scenario": "meter-reading", **spec})
            assert status in (200, 201, 202), job
            seen = page.wait_job_finished(job["id"], timeout_s=25)
            assert len(seen) >= 2, f"steps never seen advancing: {seen}"
        assert page.wait_plot_points("2.4GHz") >= 4
        assert page.wait_plot_points("subGHz") >= 2
        page.wait_segment_bars(at_least=6 * 5)
        exchanges = page.testid("exchanges").text
        assert "2.4 GHz" in exchanges and "sub-GHz" in exchanges
        assert "emu-subghz" in page.testid("events").text
        assert "end-to-end" in page.testid("timing-table").text.lower()

        # A firmware update: the OTA panel follows the ESME's transfer to 100 % SUCCESS.
        assert page.ota_rows() == {}
        status, job = _http(f"{url}/api/v1/jobs", token=token, body={
            "rig": "emulated-dual-band", "scenario": "firmware-management",
            "variants": ["update-electricity"]})
        assert status in (200, 201, 202), job
        page.wait_job_finished(job["id"], timeout_s=40)
        _progress, _status, text = page.wait_ota("at 100 % SUCCESS", lambda row: row[:2] == (
            100.0, "SUCCESS"))
        assert "ESME" in text and "00-DB-12-00-00-00-D1-01" in text and "2.4 GHz" in text
        assert "0x1DB1" in text and "✓ SUCCESS" in text
        page.screenshot(_artifact_folder(tmp_path), "dashboard-lab-daemon.png")
        assert page.testid("lab-name").text == "default", daemon.log()
        page.assert_no_console_errors()


def test_dashboard_on_a_fake_lab(browser: Any, tmp_path: Path) -> None:
    token = "fake-token-7f3a"
    with ServerThread(lambda: fake_api_app(FakeLab(), {token}), free_port()) as server:
        assert _http(f"{server.url}/dashboard/../service.py", token=None)[0] == 404
        page = Page(browser, server.url, token)
        browser.get(f"{server.url}/#token={token}")
        page.wait_rigs()
        status, job = _http(f"{server.url}/api/v1/jobs", token=token, body={
            "rig": "emulated-dual-band", "scenario": "meter-reading",
            "variants": ["electricity-instantaneous", "gas-instantaneous"]})
        assert status in (200, 201, 202), job
        page.select_rig("emulated-dual-band")
        seen = page.wait_job_finished(job["id"], timeout_s=20)
        assert len(seen) >= 2, f"steps never seen advancing: {seen}"
        progress = page.testid("job-progress")
        assert progress.get_attribute("data-state") == "failed"  # the fake fails step 3
        assert progress.find_elements(page.by.CSS_SELECTOR, ".step-failed")
        assert progress.find_elements(page.by.CSS_SELECTOR, ".step-passed")
        for band in ("2.4GHz", "subGHz"):
            assert page.wait_plot_points(band) > 0
        page.wait_segment_bars(at_least=6)
        assert "damaged" in page.testid("events").text
        assert "USB reset" in page.testid("gaps").text
        in_flight = page.wait_ota("in flight", lambda row: row[1] == "in-flight")
        assert in_flight[0] is not None and 0 < in_flight[0] < 100
        assert "sub-GHz" in in_flight[2] and "GSME" in in_flight[2]
        refused = page.wait_ota("refused", lambda row: row[1] == "INVALID_IMAGE")
        assert "✗ INVALID_IMAGE" in refused[2]
        assert page.testid("ota").find_elements(page.by.CSS_SELECTOR, "tr.row-failed")
        page.screenshot(_artifact_folder(tmp_path), "dashboard-fake-lab.png")
        page.assert_no_console_errors()
