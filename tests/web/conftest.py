"""Fixtures for the web view's browser tests: one headless Chromium per module, and a CLI run serving a view.

The browser is Debian's ``chromium`` driven through its ``chromedriver`` by Selenium, both named by path so
Selenium Manager never looks for (or downloads) anything. Without them the tests fail under CI and skip
elsewhere (``require_binary``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, TypeVar

import pytest

from tests.conftest import REPO, free_port, require_binary

CHROME_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1000,1100", "--no-first-run", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update", "--disable-sync")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium, chromedriver = require_binary("chromium"), require_binary("chromedriver")
    os.environ["SE_AVOID_STATS"] = "true"   # no usage statistics; with both paths given, no downloads either
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


_SCREENSHOT_FOLDERS: list[Path] = []


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of this module's screenshots (test artefacts); their paths are listed in the summary."""
    folder = tmp_path_factory.mktemp("web-screenshots")
    _SCREENSHOT_FOLDERS.append(folder)
    return folder


def pytest_terminal_summary(terminalreporter: Any) -> None:
    saved = sorted(p for folder in _SCREENSHOT_FOLDERS for p in folder.glob("*.png"))
    if saved:
        terminalreporter.section("web view screenshots")
        for path in saved:
            terminalreporter.write_line(str(path))


class ServingRun:
    """``trackstream run ARGS --http 127.0.0.1:PORT`` as a user would start it (a separate process)."""

    def __init__(self, args: list[str], log: Path, token: Optional[str] = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = log
        extra = ["--http-token", token] if token else []
        env = {**os.environ, "PYTHONPATH": str(REPO), "YOLO_OFFLINE": "true", "YOLO_AUTOINSTALL": "false"}
        self._log = open(log, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", *args, "--quiet",
                                      "--http", f"127.0.0.1:{self.port}", *extra],
                                     stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=str(REPO))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 90.0) -> "ServingRun":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the run ended before serving (exit {self.proc.returncode}):\n{self.output()}")
            try:
                with urllib.request.urlopen(self.url + "healthz", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        pytest.fail(f"no web view at {self.url} after {timeout} s:\n{self.output()}")

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self, timeout: float = 30.0) -> int:
        """SIGINT (as Ctrl-C), then the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._log.close()
        return code


T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], Optional[T]], timeout: float = 20.0, every: float = 0.1) -> T:
    """Poll ``probe`` until it returns something truthy (returned); fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)
