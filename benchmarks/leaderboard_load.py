"""How long the Leaderboard takes in a real browser: the first visit to a fresh server (a Space waking up) and a warm
rerun, on the shipped catalog and the bundled demo set.

    python benchmarks/leaderboard_load.py [--servers 3] [--chromium /usr/bin/chromium]

Each round starts `streamlit run` anew and times, in headless Chromium, from the request until the page is done
(Streamlit's script state back to "notRunning" with the table drawn): **cold**. It then clicks a toggle (the page
runs again with every cache warm): **warm**. The artifact-check verdicts in $LGG_CACHE_DIR are kept between rounds, as
the Space image keeps them (Dockerfile); the first round also pays the operating system's file cache. Prints a
markdown table of each round and the medians.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
DONE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str) -> None:
    for _ in range(600):
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(url)


def until_done(page: Page) -> None:
    page.get_by_test_id("stDataFrame").first.wait_for(timeout=300_000)
    page.wait_for_selector(DONE, timeout=300_000)


def one_round(chromium: str) -> tuple[float, float]:
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("LGG_DATA_DIR", None)
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "streamlit_app.py", f"--server.port={port}"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            start = time.perf_counter()
            page.goto(url)
            until_done(page)
            cold = time.perf_counter() - start
            toggle = page.get_by_text("Post-processing variants", exact=True)
            start = time.perf_counter()
            toggle.click()
            page.wait_for_timeout(100)  # the script state turns "running" only after the click reaches the server
            until_done(page)
            warm = time.perf_counter() - start - 0.1
            browser.close()
        return cold, warm
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=3, help="fresh servers to time (default 3)")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    rounds = [one_round(args.chromium) for _ in range(args.servers)]
    print("| round | first visit to a fresh server (s) | warm rerun (s) |\n|---:|---:|---:|")
    for i, (cold, warm) in enumerate(rounds, start=1):
        print(f"| {i} | {cold:.1f} | {warm:.2f} |")
    print(f"| median | {statistics.median(c for c, _ in rounds):.1f} | {statistics.median(w for _, w in rounds):.2f} |")


if __name__ == "__main__":
    main()
