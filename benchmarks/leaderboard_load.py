"""How long the Leaderboard takes in a real browser: the first visit to a fresh server (a Space waking up) and warm
reruns, on the shipped catalog and the bundled demo set.

    python benchmarks/leaderboard_load.py [--servers 3] [--chromium /usr/bin/chromium] [--checkout DIR ...]

Each round starts the checkout's server anew with its Dockerfile's ``CMD`` (as its Space would), times how long it
takes to answer the health check (**start**; a server that warms up before it accepts connections takes longer here)
and then, in headless Chromium, from the request until the page is done (Streamlit's script state back to
"notRunning" with the table drawn): **cold**. It then turns on a toggle (the page
runs again with every cache warm, showing rows it has not shown before): **new view**; and turns it off again (a view
it has shown): **seen view**. Before the rounds, each checkout runs its Dockerfile's warm-up steps (its ``RUN python -c``
lines: artifact-check verdicts, the decoded demo set and, where the checkout has them, the Leaderboard's stored
tables) into $LGG_CACHE_DIR, which the rounds keep, as a Space's image keeps them. With several
``--checkout`` folders (e.g. another worktree at an older commit) the rounds alternate between them, so that their
medians are measured side by side on the same noisy machine; ``--bare`` adds a bare Streamlit page (a title, the
toggle and a two-row table) to the rotation, the floor that Streamlit's frontend sets on the machine. Prints a markdown
table of each round and the medians.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
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


def _timed_click(page: Page, target) -> float:
    start = time.perf_counter()
    target.click()
    page.wait_for_timeout(100)  # the script state turns "running" only after the click reaches the server
    until_done(page)
    return time.perf_counter() - start - 0.1


def dockerfile_lines(checkout: Path) -> list[str]:
    """The checkout's Dockerfile, one instruction per line (continuations joined)."""
    return [line.strip() for line in re.sub(r"\\\n", " ", (checkout / "Dockerfile").read_text()).splitlines()]


def warm_up(checkout: Path) -> None:
    """Run the checkout's Dockerfile ``RUN python -c`` steps, as its image build would."""
    steps = [line[len("RUN python -c "):] for line in dockerfile_lines(checkout) if line.startswith("RUN python -c ")]
    for step in steps:
        subprocess.run([sys.executable, "-c", step.strip().strip('"')], cwd=checkout, check=True,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL)


def server_command(checkout: Path, port: int) -> list[str]:
    """The Dockerfile's ``CMD`` (a ``streamlit run``) on ``port`` of localhost."""
    [cmd] = [json.loads(line[len("CMD "):]) for line in dockerfile_lines(checkout) if line.startswith("CMD ")]
    kept = [arg for arg in cmd[1:] if not arg.startswith(("--server.port", "--server.address"))]
    return [sys.executable, "-m", cmd[0], *kept, f"--server.port={port}", "--server.address=127.0.0.1"]


# The floor under any page on this machine: Streamlit's frontend, one small table and the toggle the rounds click.
BARE_PAGE = """import pandas as pd
import streamlit as st
st.title("Bare")
st.toggle("Post-processing variants")
st.dataframe(pd.DataFrame({"model": ["a", "b"], "dice": [0.8, 0.7]}))
"""


def bare_command(folder: Path, port: int) -> list[str]:
    """``streamlit run`` of :data:`BARE_PAGE`, written into ``folder``."""
    (folder / "bare.py").write_text(BARE_PAGE)
    return [sys.executable, "-m", "streamlit", "run", "bare.py", f"--server.port={port}", "--server.address=127.0.0.1",
            "--server.headless=true"]


def one_round(chromium: str, checkout: Path | None) -> tuple[float, float, float, float]:
    """One fresh server of ``checkout`` (None: the bare page) timed as the module's docstring says."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("LGG_DATA_DIR", None)
    with tempfile.TemporaryDirectory() as bare:
        command = server_command(checkout, port) if checkout else bare_command(Path(bare), port)
        return _timed(chromium, command, checkout or Path(bare), env, port)


def _timed(chromium: str, command: list[str], cwd: Path, env: dict, port: int) -> tuple[float, float, float, float]:
    began = time.perf_counter()
    server = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url)
        start = time.perf_counter() - began
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            asked = time.perf_counter()
            page.goto(url)
            until_done(page)
            cold = time.perf_counter() - asked
            toggle = page.get_by_text("Post-processing variants", exact=True)
            new_view = _timed_click(page, toggle)
            seen_view = _timed_click(page, toggle)
            browser.close()
        return start, cold, new_view, seen_view
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=3, help="fresh servers to time per checkout (default 3)")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--checkout", type=Path, action="append",
                        help="a checkout whose app to time (repeatable; default: this one)")
    parser.add_argument("--bare", action="store_true",
                        help="also time a bare Streamlit page (a title, a toggle, a two-row table): the floor")
    args = parser.parse_args()
    checkouts = [*(args.checkout or [ROOT]), *([None] if args.bare else [])]
    rounds = {c: [] for c in checkouts}
    for checkout in checkouts:
        if checkout is not None:
            warm_up(checkout)
    for _ in range(args.servers):
        for checkout in checkouts:
            rounds[checkout].append(one_round(args.chromium, checkout))
    print("| checkout | round | server start to healthy (s) | first visit to a fresh server (s) | warm rerun, new view (s) "
          "| warm rerun, seen view (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for checkout, times in rounds.items():
        name = checkout.resolve().name if checkout else "bare page"
        for i, (start, cold, new, seen) in enumerate(times, start=1):
            print(f"| {name} | {i} | {start:.1f} | {cold:.1f} | {new:.2f} | {seen:.2f} |")
        medians = [statistics.median(t[k] for t in times) for k in range(4)]
        print(f"| {name} | median | {medians[0]:.1f} | {medians[1]:.1f} | {medians[2]:.2f} | {medians[3]:.2f} |")


if __name__ == "__main__":
    main()
