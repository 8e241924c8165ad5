"""Take the README's screenshot of the web explorer: ``engram ui --demo`` in a child
process, Debian's headless Chromium driven by Playwright (the dev extra), a recall and
Maya selected as of the seq before she moved to Lisbon.

    .venv/bin/python scripts/explorer-screenshot.py docs/explorer.png
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
from playwright.sync_api import sync_playwright

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


def main(out: str) -> None:
    argv = [sys.executable, "-m", "engramdb.adapters.cli", "ui", "--demo"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().split(" at ", 1)[1].strip()
            base = url.split("/ui/", 1)[0]
            for _ in range(600):
                try:
                    httpx.get(f"{base}/healthz", timeout=2)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            shoot(url, out)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"wrote {out}")  # noqa: T201 - a script says what it made


def shoot(url: str, out: str) -> None:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=os.environ.get(
            "CHROMIUM", "/usr/bin/chromium"), args=ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        page.set_default_timeout(30_000)
        page.goto(url)
        page.wait_for_function("() => window.explorer && window.explorer.cy"
                               " && window.explorer.cy.nodes().length > 0")
        page.select_option("#graph-domain", "people")
        page.wait_for_function(
            "() => window.explorer.cy.nodes().some(n => n.data('label') === 'Maya')")
        page.fill("#query", "Where does Maya live?")
        page.press("#query", "Enter")
        page.wait_for_selector("#hits li .signal")
        x, y = page.evaluate("""() => {
            const n = window.explorer.cy.nodes().filter(n => n.data('label') === 'Maya')[0];
            const p = n.renderedPosition(); return [p.x, p.y]; }""")
        box = page.locator("#graph").bounding_box()
        page.mouse.click(box["x"] + x, box["y"] + y)
        page.wait_for_selector("#versions li >> nth=1")
        page.wait_for_timeout(500)
        page.screenshot(path=out)
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/explorer.png")
