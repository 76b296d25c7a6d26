"""Screenshots of the dashboard for the README and the docs (docs/img/*.png), taken in headless Chromium at
1600x1000 on the shipped models and the bundled demo set, as a visitor sees them.

Usage: python scripts/docs_screenshots.py [--chromium /usr/bin/chromium]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "img"
PORT = 8597
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
SHOTS = {  # file: (path and query, text that says the page is done)
    "leaderboard.png": ("/", "Compared with the best"),
    "compare.png": ("/compare?patient=TCGA_HT_7855&slice=12&models=unet-resnet50-transfer,unet,segnet",
                    "Ground truth"),
    "explain.png": ("/explain?patient=TCGA_HT_7855&slice=12", "Faithfulness (ROAD)"),
}


def wait_healthy(url: str) -> None:
    for _ in range(240):
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(url)


def shoot(page: Page, url: str, name: str, marker: str) -> None:
    page.goto(url)
    page.get_by_text(marker).first.wait_for(timeout=300_000)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=300_000)
    time.sleep(2)  # figures finish drawing after the script
    page.screenshot(path=str(OUT / name))
    print(f"wrote {(OUT / name).relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("LGG_DATA_DIR", None)
    env.pop("LGG_CATALOG", None)
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "streamlit_app.py", f"--server.port={PORT}"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{PORT}"
        wait_healthy(url)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            for name, (path, marker) in SHOTS.items():
                shoot(page, url + path, name, marker)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
