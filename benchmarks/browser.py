"""Headless Chromium for the browser tests and benchmarks: which executable, with which flags.

Debian's `chromium` package (what scripts/test.sh installs) driven by Playwright from PyPI.
"""
from __future__ import annotations

import shutil

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
# Lets a page start a <video> without a user gesture (the player / timeline tests play it).
AUTOPLAY_FLAG = "--autoplay-policy=no-user-gesture-required"
TIMEOUT_MS = 60_000      # Playwright's wait for a page element or event (the app scores on a busy CPU)
