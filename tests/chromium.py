"""Debian's Chromium as the browser tests and bench/frontend.py start it (Playwright's own browser download is
not possible here: `apt-get install chromium`, which `.ci/run` does)."""

from __future__ import annotations

import os

CHROMIUM = os.environ.get("DISPATCH_CHROMIUM", "/usr/bin/chromium")
#: as the machine's probe starts it: no sandbox as root, no background calls to the closed internet
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
