"""Render a report's HTML page in headless Chromium: a screenshot, the DOM after its scripts ran,
or a page driven through the DevTools protocol (:class:`Browser`).

    python tests/tools/screenshot_report.py results/report/report.html shot.png [--size 1366x768]

The page is opened from disk (file://) with networking turned off, as a reader
would open it, so a page that needed a server or a CDN would show it. Debian:
``apt-get install chromium``.

:class:`Browser` speaks the DevTools protocol over a pipe (``--remote-debugging-pipe``:
Chromium reads commands on its file descriptor 3 and answers on 4, one JSON message per
NUL-terminated record): no port, no websocket package, nothing another process could connect
to. Each browser gets a fresh profile folder, and the browser's own background traffic
(updates, sync, field trials) is off::

    with Browser() as browser:
        page = browser.open(Path("results/report/report.html"))
        page.click("#leaderboard + p + div th:nth-child(5)")   # a mouse click, as a reader's
        page.evaluate("document.title")
        page.requests   # every URL the page asked for, file:// and data: included
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# Everything that is not a file:// URL resolves nowhere.
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND"


def find_chromium() -> str | None:
    """The first headless-capable Chromium on PATH, or None."""
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


FLAGS = (
    "--headless",
    "--disable-gpu",
    "--hide-scrollbars",
    OFFLINE,
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--mute-audio",
)


def _command(browser: str, size: str, profile: str) -> list[str]:
    """Chromium's command line, with a fresh profile folder ``profile``."""
    command = [browser, *FLAGS, f"--window-size={size.replace('x', ',')}", f"--user-data-dir={profile}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Chromium refuses to start as root with its sandbox (containers, CI).
        command.append("--no-sandbox")
    return command


def screenshot(page: Path, png: Path, size: str = "1366x768", timeout: float = 60) -> Path:
    """A PNG of ``page`` at a ``WIDTHxHEIGHT`` window size."""
    browser = find_chromium()
    if browser is None:
        raise OSError(f"no Chromium on PATH (looked for {', '.join(BROWSERS)})")
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="memtasks-chromium-") as profile:
        command = [*_command(browser, size, profile), f"--screenshot={png.resolve()}", page.resolve().as_uri()]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 or not png.exists():
        raise OSError(f"{browser} could not render {page}: {done.stderr.strip()[-500:]}")
    return png


def dump_dom(page: Path, timeout: float = 60) -> str:
    """The page's DOM after its scripts ran, as HTML text."""
    browser = find_chromium()
    if browser is None:
        raise OSError(f"no Chromium on PATH (looked for {', '.join(BROWSERS)})")
    with tempfile.TemporaryDirectory(prefix="memtasks-chromium-") as profile:
        command = [*_command(browser, "1366x768", profile), "--dump-dom", page.resolve().as_uri()]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise OSError(f"{browser} could not load {page}: {done.stderr.strip()[-500:]}")
    return done.stdout


class BrowserError(RuntimeError):
    """Chromium did not start, exited, answered with an error, or did not answer in time."""


class Browser:
    """One headless Chromium process and its DevTools pipe."""

    def __init__(self, size: str = "1366x768", timeout: float = 60):
        executable = find_chromium()
        if executable is None:
            raise BrowserError(f"no Chromium on PATH (looked for {', '.join(BROWSERS)}; Debian: apt-get install chromium)")
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="memtasks-chromium-")
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()
        # Numbered above 4, so that putting one at 3 cannot overwrite the other before it is copied to 4.
        child_in, child_out = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_browser_r, from_browser_w))
        for fd in (to_browser_r, from_browser_w):
            os.close(fd)

        def pipe_at_3_and_4() -> None:  # in the child before exec: inheritable copies (Python's own fds are not)
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        command = [*_command(executable, size, self.profile), "--remote-debugging-pipe", "about:blank"]
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            command, close_fds=False, preexec_fn=pipe_at_3_and_4,
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
        )
        os.close(child_in)
        os.close(child_out)
        self._write, self._read = to_browser_w, from_browser_r
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        try:
            self.version = self.send("Browser.getVersion")["product"]
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.send("Browser.close", timeout=10)
            except BrowserError:
                pass
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for fd in (self._write, self._read):
            try:
                os.close(fd)
            except OSError:
                pass
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def _stderr(self) -> str:
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")[-2000:]

    def _receive(self, deadline: float) -> dict[str, Any]:
        """The next message from the browser."""
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"no answer from Chromium within {self.timeout:g} s")
            ready, _, _ = select.select([self._read], [], [], left)
            if ready:
                chunk = os.read(self._read, 1 << 20)
                if not chunk:
                    raise BrowserError(f"Chromium exited ({self.process.poll()}): {self._stderr()}")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float | None = None) -> dict:
        """Send one command and wait for its answer; events that arrive meanwhile go to :attr:`events`."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        data = json.dumps(message).encode("utf-8") + b"\0"
        while data:
            data = data[os.write(self._write, data) :]
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            answer = self._receive(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise BrowserError(f"{method}: {answer['error'].get('message')} {answer['error'].get('data', '')}".strip())
                return answer.get("result", {})
            self.events.append(answer)

    def wait_for(self, method: str, session: str | None = None, timeout: float | None = None) -> dict:
        """The params of the first event ``method`` (of ``session``) not yet waited for."""
        deadline = time.monotonic() + (timeout or self.timeout)
        seen = 0
        while True:
            for event in self.events[seen:]:
                if event.get("method") == method and (session is None or event.get("sessionId") == session) and not event.get("_taken"):
                    event["_taken"] = True
                    return event.get("params", {})
            seen = len(self.events)
            self.events.append(self._receive(deadline))

    def open(self, page: Path | str) -> Page:
        """A new tab with the page loaded (its load event fired), recording its requests and script errors."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=session)
        url = page.resolve().as_uri() if isinstance(page, Path) else page
        answer = self.send("Page.navigate", {"url": url}, session=session)
        if answer.get("errorText"):
            raise BrowserError(f"{url}: {answer['errorText']}")
        self.wait_for("Page.loadEventFired", session)
        return Page(self, session, url)


class Page:
    """One loaded tab."""

    def __init__(self, browser: Browser, session: str, url: str):
        self.browser, self.session, self.url = browser, session, url

    def _events(self, method: str) -> list[dict]:
        return [e.get("params", {}) for e in self.browser.events if e.get("method") == method and e.get("sessionId") == self.session]

    @property
    def requests(self) -> list[str]:
        """The URL of every request the page made, in order (the page itself first)."""
        return [e["request"]["url"] for e in self._events("Network.requestWillBeSent")]

    @property
    def errors(self) -> list[str]:
        """Uncaught script exceptions and console errors."""
        thrown = [e["exceptionDetails"].get("exception", {}).get("description") or e["exceptionDetails"]["text"] for e in self._events("Runtime.exceptionThrown")]
        logged = [e["entry"]["text"] for e in self._events("Log.entryAdded") if e["entry"]["level"] == "error"]
        return thrown + logged

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-serialisable values; promises awaited)."""
        answer = self.browser.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}, session=self.session
        )
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            raise BrowserError(f"{expression}: {details.get('exception', {}).get('description') or details['text']}")
        return answer["result"].get("value")

    def click(self, selector: str) -> None:
        """A left click with the mouse in the middle of the element, as a reader's (scrolled into view first)."""
        box = self.evaluate(
            f"""(() => {{
                const element = document.querySelector({json.dumps(selector)});
                if (!element) return null;
                element.scrollIntoView({{block: "center"}});
                const r = element.getBoundingClientRect();
                return {{x: r.left + r.width / 2, y: r.top + r.height / 2, width: r.width, height: r.height}};
            }})()"""
        )
        if box is None or not box["width"] or not box["height"]:
            raise BrowserError(f"nothing visible to click at {selector}")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            event = {"type": kind, "x": box["x"], "y": box["y"], "button": "left" if kind != "mouseMoved" else "none"}
            if kind != "mouseMoved":
                event["clickCount"] = 1
            self.browser.send("Input.dispatchMouseEvent", event, session=self.session)

    def screenshot(self, full_page: bool = True) -> bytes:
        """A PNG of the page: the whole page, or the window."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            size = self.evaluate("({w: document.documentElement.scrollWidth, h: document.documentElement.scrollHeight})")
            params["clip"] = {"x": 0, "y": 0, "width": size["w"], "height": size["h"], "scale": 1}
        return base64.b64decode(self.browser.send("Page.captureScreenshot", params, session=self.session)["data"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--size", default="1366x768", help="window WIDTHxHEIGHT (default: a laptop screen, 1366x768)")
    args = parser.parse_args(argv)
    print(screenshot(args.page, args.png, args.size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
