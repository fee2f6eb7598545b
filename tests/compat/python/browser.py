"""Headless Chromium for page tests: Debian's `chromium` driven through its own
`chromedriver` (packages chromium and chromium-driver, installed by install.sh)
with Selenium's WebDriver client. Both come from one Debian source, so their
versions always match, and nothing is downloaded: Selenium is given both paths.

    with Browser() as b:
        b.open("http://127.0.0.1:8080/")
        b.wait_until("document.querySelectorAll('tbody tr').length === 3", "three rows")
        print(b.texts("tbody tr"))

`wait_until` polls a JavaScript expression until it is truthy (or a Python
`check` of its value holds) and returns the value; past the deadline it fails with the last value or exception, the page's
text and the browser console. `eval` evaluates an expression, `run` a function
body (with `return`); in both `arguments[0]`… are the extra arguments.
Deadlines are failure guards only: nothing asserts on how long a page took.

Chromium runs as the machine's probe found it must here: headless, no
sandbox (tests run as root), no GPU, and no background networking (the
machine's closed network would refuse it, many times a second), with a fresh
profile in a temp dir. `STROM_CHROMIUM` and `STROM_CHROMEDRIVER` override the
paths.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

GUARD_S = 60.0
PAGE_TEXT_BYTES = 4000

CHROMIUM = os.environ.get("STROM_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("STROM_CHROMEDRIVER", "/usr/bin/chromedriver")

FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--window-size=1280,900",
]


class Browser:
    """One headless Chromium window; a context manager that quits it."""

    def __init__(self):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        for path in (CHROMIUM, CHROMEDRIVER):
            assert os.access(path, os.X_OK), f"{path} is missing: run tests/compat/install.sh (Debian chromium, chromium-driver)"
        self.profile = Path(tempfile.mkdtemp(prefix="strom-chromium-"))
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self.profile}")
        # The console (errors of the page's scripts) goes into failure messages.
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        self.driver.set_page_load_timeout(GUARD_S)
        self.console_lines: list[str] = []

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    def open(self, url: str) -> None:
        """Loads `url` and waits for its document (not for anything it fetches later)."""
        self.driver.get(url)
        self.wait_until("document.readyState === 'complete'", f"{url} loaded")

    def eval(self, expression: str, *args):
        """The value of a JavaScript expression; `arguments[0]`… are `args`."""
        return self.run(f"return ({expression});", *args)

    def run(self, body: str, *args):
        """Runs a JavaScript function body and returns what it returns."""
        return self.driver.execute_script(body, *args)

    def wait_until(self, expression: str, what: str, *args, check=bool, timeout: float = GUARD_S, interval: float = 0.1):
        """Polls `expression` (see `eval`) until `check(value)` holds (by default:
        until the value is truthy), and returns the value."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                last = self.eval(expression, *args)
            except Exception as e:  # the page may not have what is asked yet
                last = e
            else:
                if check(last):
                    return last
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}\n"
                    f"----- page {self.driver.current_url} -----\n{self.page_text()}\n"
                    f"----- console -----\n" + "\n".join(self.console())
                )
            time.sleep(interval)

    def text(self, css: str = "body") -> str:
        """The rendered text of the first element matching `css` ('' if none)."""
        return self.run("const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", css)

    def texts(self, css: str) -> list[str]:
        """The rendered text of every element matching `css`, in document order."""
        return self.eval("Array.from(document.querySelectorAll(arguments[0]), e => e.innerText)", css)

    def page_text(self) -> str:
        try:
            text = self.text("body")
        except Exception as e:
            return f"(cannot read the page: {e})"
        return text if len(text) <= PAGE_TEXT_BYTES else text[:PAGE_TEXT_BYTES] + "\n[... cut ...]"

    def console(self) -> list[str]:
        """Every console line of the page so far (Chromium hands each one out once)."""
        try:
            entries = self.driver.get_log("browser")
        except Exception as e:
            entries = [{"level": "?", "message": f"(cannot read the console: {e})"}]
        self.console_lines += [f"{e['level']}: {e['message']}" for e in entries]
        return list(self.console_lines)

    def screenshot(self, path: Path) -> None:
        """A PNG of the window (to look at a page while writing a test)."""
        self.driver.save_screenshot(str(path))
