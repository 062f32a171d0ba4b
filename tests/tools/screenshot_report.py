"""Render a report's HTML page in headless Chromium: a screenshot, or the DOM after its scripts ran.

    python tests/tools/screenshot_report.py results/report/report.html shot.png [--size 1366x768]

The page is opened from disk (file://) with networking turned off, as a reader
would open it, so a page that needed a server or a CDN would show it. Debian:
``apt-get install chromium``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# Everything that is not a file:// URL resolves nowhere.
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND"


def find_chromium() -> str | None:
    """The first headless-capable Chromium on PATH, or None."""
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def _command(browser: str, size: str) -> list[str]:
    command = [browser, "--headless", "--disable-gpu", "--hide-scrollbars", OFFLINE, f"--window-size={size.replace('x', ',')}"]
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
    command = [*_command(browser, size), f"--screenshot={png.resolve()}", page.resolve().as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 or not png.exists():
        raise OSError(f"{browser} could not render {page}: {done.stderr.strip()[-500:]}")
    return png


def dump_dom(page: Path, timeout: float = 60) -> str:
    """The page's DOM after its scripts ran, as HTML text."""
    browser = find_chromium()
    if browser is None:
        raise OSError(f"no Chromium on PATH (looked for {', '.join(BROWSERS)})")
    command = [*_command(browser, "1366x768"), "--dump-dom", page.resolve().as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise OSError(f"{browser} could not load {page}: {done.stderr.strip()[-500:]}")
    return done.stdout


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
