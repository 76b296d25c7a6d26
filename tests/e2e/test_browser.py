"""End to end: headless Chromium, driven by Playwright, against `streamlit run` on localhost.

The tests use the first browser they find (see :func:`find_chromium`) and are skipped, with the reason and how to get
one, when there is none; ``LGG_REQUIRE_BROWSER=1`` (set by ``.ci/run``) turns that skip into a failure. Screenshots
of every step land in test-artifacts/e2e/.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
import tifffile
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright
from server import streamlit_command
from zoo import build_tiny_zoo

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "test-artifacts" / "e2e"
CHROMIUM_ENV = "LGG_CHROMIUM"
REQUIRE_ENV = "LGG_REQUIRE_BROWSER"
# Where users have a Chromium-family browser: Debian/Ubuntu packages, then PATH, then the macOS applications.
CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_COMMANDS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
MACOS_APPS = ("/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
              "/Applications/Chromium.app/Contents/MacOS/Chromium")
NO_BROWSER = (f"no Chromium found (${CHROMIUM_ENV}, {', '.join(CHROMIUM_PATHS)}, {'/'.join(CHROMIUM_COMMANDS)} on "
              "PATH, the macOS apps, Playwright's own): install one with `apt-get install chromium` (Debian/Ubuntu), "
              "Google Chrome or `brew install --cask chromium` (macOS), or `playwright install chromium`; or set "
              f"{CHROMIUM_ENV}=/path/to/chrome")
pytestmark = pytest.mark.browser
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]
TIMEOUT_MS = 90_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"streamlit did not become healthy at {url}")


@contextmanager
def streamlit_server(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[str]:
    """A fresh ``streamlit run`` on the tiny zoo, logging to ``<basetemp>/<name>.log``; yields its URL.

    Only its health endpoint has been requested when it is yielded: that opens no session, so the server is cold.
    """
    catalog = build_tiny_zoo(tmp_path_factory.getbasetemp() / "tiny-zoo")
    port = free_port()
    env = {**os.environ, "LGG_CATALOG": str(catalog), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    env.pop("LGG_DATA_DIR", None)
    with (tmp_path_factory.getbasetemp() / f"{name}.log").open("w") as log:
        server = subprocess.Popen([sys.executable, "-m", *streamlit_command(port)], cwd=REPO, env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_healthy(f"http://127.0.0.1:{port}", server)
            yield f"http://127.0.0.1:{port}"
        finally:
            server.terminate()
            server.wait(timeout=30)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server shared by the module's tests (warmed by whichever test runs first)."""
    with streamlit_server(tmp_path_factory, "streamlit") as url:
        yield url


@pytest.fixture
def cold_app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server of its own that no session has opened yet, like a Hugging Face Space waking up."""
    with streamlit_server(tmp_path_factory, "streamlit-cold") as url:
        yield url


def find_chromium(playwright: Playwright) -> str | None:
    """The first Chromium-family executable found, ``$LGG_CHROMIUM`` first and Playwright's own browser last."""
    if explicit := os.environ.get(CHROMIUM_ENV):
        return explicit
    found = [*CHROMIUM_PATHS, *filter(None, map(shutil.which, CHROMIUM_COMMANDS)), *MACOS_APPS,
             playwright.chromium.executable_path]
    return next((path for path in found if Path(path).is_file()), None)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        executable = find_chromium(p)
        if executable is None:
            if os.environ.get(REQUIRE_ENV) == "1":
                pytest.fail(f"{REQUIRE_ENV}=1 but {NO_BROWSER}", pytrace=False)
            pytest.skip(NO_BROWSER)
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    yield page
    page.close()


def settle(page: Page, name: str) -> None:
    """Wait until Streamlit has finished running the script, check for tracebacks, keep a screenshot."""
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=TIMEOUT_MS)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)


PAGES = {"": "Leaderboard", "compare": "Compare models", "explain": "Explain a prediction",
         "failures": "Failure cases", "upload": "Upload a slice", "models": "Model cards",
         "patient": "Patient viewer"}


# A shared link, as QA sent it: one patient, slice and model.
SHARED_LINK = "/compare?patient=TCGA_HT_7855&slice=12&models=cnn-encdec"
# The titles streamlit_app.py registers, and the file names Streamlit's legacy pages/ mode lists instead.
NAV_TITLES = ("Leaderboard", "Compare", "Explain", "Failure cases", "Upload", "Models", "Patient viewer")
RAW_PAGE_NAMES = ("streamlit app", "compare", "explain", "failures", "leaderboard", "models", "patient", "upload")


def query(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlparse(page.url).query)


def add_compare_model(page: Page, name: str) -> None:
    page.get_by_text("Models (2–6").locator("xpath=ancestor::div[@data-testid='stMultiSelect']").click()
    page.get_by_role("option", name=name, exact=True).click()
    page.keyboard.press("Escape")


def test_a_shared_link_opens_a_cold_server_like_a_warm_one(page: Page, cold_app_url: str) -> None:
    """The first request a fresh server gets is a shared link (a Space waking up): st.navigation must run it.

    Streamlit runs such a request in its legacy ``pages/`` mode unless the app prevents it: the page alone, without
    streamlit_app.py's sidebar or its reading of the URL, which the page's defaults then overwrite. First in the
    module, so that its server has stopped before the shared one starts.
    """
    page.goto(f"{cold_app_url}{SHARED_LINK}")
    expect(page.get_by_role("heading", name="Compare models").first).to_be_visible(timeout=TIMEOUT_MS)
    # The link's selection, not the page's defaults (the first patient, its largest tumor, 2–4 models).
    expect(page.get_by_role("combobox", name="Patient")).to_have_value("TCGA_HT_7855", timeout=TIMEOUT_MS)
    expect(page.get_by_test_id("stSliderThumbValue").first).to_have_text("12", timeout=TIMEOUT_MS)
    expect(page.get_by_test_id("stMultiSelectTagsContainer")).to_have_text("cnn-encdec", timeout=TIMEOUT_MS)
    expect(page.get_by_text("Pick at least two models to compare.")).to_be_visible()
    settle(page, "compare-cold-shared-link")
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_text("Data folder (kaggle_3m)")).to_be_visible()
    nav = sidebar.get_by_role("navigation", name="App pages")
    # A link's text starts with its icon's name (a ligature), so match the title at its end.
    expect(nav.get_by_role("link")).to_have_text([re.compile(f"{re.escape(title)}$") for title in NAV_TITLES])
    for raw in RAW_PAGE_NAMES:
        expect(nav.get_by_role("link", name=raw, exact=True)).to_have_count(0)
    assert query(page) == {"patient": ["TCGA_HT_7855"], "slice": ["12"], "models": ["cnn-encdec"]}, page.url
    add_compare_model(page, "unet-mini")
    expect(page.get_by_text("cnn-encdec · Dice")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_text("unet-mini · Dice")).to_be_visible()
    expect(page.get_by_text("TCGA_HT_7855, slice 12 ·")).to_be_visible()
    settle(page, "compare-cold-shared-link-two-models")
    assert query(page) == {"patient": ["TCGA_HT_7855"], "slice": ["12"], "models": ["cnn-encdec,unet-mini"]}, page.url


def test_every_page_renders(page: Page, app_url: str) -> None:
    for path, title in PAGES.items():
        page.goto(f"{app_url}/{path}")
        expect(page.get_by_role("heading", name=title).first).to_be_visible(timeout=TIMEOUT_MS)
        settle(page, f"page-{path or 'leaderboard'}")
    expect(page.get_by_text("Data folder (kaggle_3m)")).to_be_visible()
    # Visitors get the viewer's toolbar (.streamlit/config.toml), even on localhost.
    expect(page.get_by_role("button", name="Deploy")).to_have_count(0)


def test_compare_picks_a_slice_and_models(page: Page, app_url: str) -> None:
    page.goto(f"{app_url}{SHARED_LINK}")
    expect(page.get_by_role("heading", name="Compare models").first).to_be_visible(timeout=TIMEOUT_MS)
    settle(page, "compare-one-model")
    add_compare_model(page, "unet-mini")
    expect(page.get_by_text("unet-mini · Dice")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_text("cnn-encdec · Dice")).to_be_visible()
    settle(page, "compare-two-models")
    assert "slice=12" in page.url and "unet-mini" in page.url


def test_upload_a_tif_shows_predictions(page: Page, app_url: str, tmp_path: Path) -> None:
    image = tifffile.imread(next((REPO / "demo/kaggle_3m").glob("TCGA_HT_7855_*/*_12.tif")))
    path = tmp_path / "my_slice.tif"
    tifffile.imwrite(path, np.asarray(image))
    page.goto(f"{app_url}/upload")
    expect(page.get_by_role("heading", name="Upload a slice").first).to_be_visible(timeout=TIMEOUT_MS)
    page.locator('input[type="file"]').first.set_input_files(str(path))  # the second takes a ground-truth mask
    expect(page.get_by_text("tumor pixels").first).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_role("button", name="Mask PNG").first).to_be_visible()
    settle(page, "upload-tif")


def test_clicking_a_bar_of_the_patient_strip_opens_its_slice(page: Page, app_url: str) -> None:
    page.goto(f"{app_url}/patient?patient=TCGA_CS_4944&models=unet-mini")
    expect(page.get_by_text("TCGA_CS_4944, slice 10:")).to_be_visible(timeout=TIMEOUT_MS)  # its largest tumor
    settle(page, "patient-strip")
    # Slice 3 has no tumor; the tiny unet-mini draws tumor everywhere, so its bar is a false alarm below the axis.
    strip = page.locator(".js-plotly-plot").first
    strip.scroll_into_view_if_needed()  # a mouse click lands only inside the viewport
    x, y = strip.evaluate("""plot => {
        const xa = plot._fullLayout.xaxis, ya = plot._fullLayout.yaxis;
        return [xa._offset + xa.l2p(3), ya._offset + ya.l2p(-0.04)];
    }""")
    box = strip.bounding_box()
    page.mouse.click(box["x"] + x, box["y"] + y)
    expect(page.get_by_text("TCGA_CS_4944, slice 3:")).to_be_visible(timeout=TIMEOUT_MS)
    settle(page, "patient-strip-clicked")
    assert "slice=3" in page.url


@pytest.mark.parametrize("width, height", [(1600, 1000), (1366, 768)])
def test_leaderboard_pair_to_slice_to_explain_and_back(browser: Browser, app_url: str, width: int,
                                                       height: int) -> None:
    """The researcher's walk, without a dead end: who is best → is A better than B → the slice where they differ →
    why → back, with the pair kept; at both window sizes."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(TIMEOUT_MS)
    try:
        _walk(page, app_url, f"{width}x{height}")
    finally:
        page.close()


def _walk(page: Page, app_url: str, size: str) -> None:
    page.goto(app_url)
    expect(page.get_by_role("heading", name="Leaderboard").first).to_be_visible(timeout=TIMEOUT_MS)
    settle(page, f"walk-{size}-1-leaderboard")
    best = page.get_by_role("heading", name=re.compile("^Compared with the best: "))
    expect(best).to_be_visible(timeout=TIMEOUT_MS)
    forest = page.get_by_test_id("stVegaLiteChart").filter(has_text="Each model −").first
    expect(forest).to_be_visible(timeout=TIMEOUT_MS)
    forest.scroll_into_view_if_needed()
    settle(page, f"walk-{size}-1b-forest")

    # The pair the page offers first (of the tiny zoo's three): its dropdown, opened on a fresh server while the page
    # still draws its charts, could close again before an option was picked.
    page.get_by_role("tab", name="Two models").click()
    pair = page.get_by_role("combobox", name="Pair")
    expect(pair).to_be_visible(timeout=TIMEOUT_MS)
    a, b = pair.input_value().split(" vs ")
    expect(page.get_by_text(f"mean Dice {a} − {b} =")).to_be_visible(timeout=TIMEOUT_MS)
    settle(page, f"walk-{size}-2-pair")

    button = page.locator("button:enabled").filter(has_text=re.compile(r"^Compare slice \d+$")).first
    number = button.inner_text().split()[-1]
    # The button sits in its patient's row, which starts with the patient's id.
    patient = button.locator("xpath=ancestor::div[@data-testid='stHorizontalBlock'][1]").inner_text().split()[0]
    button.click()
    expect(page.get_by_role("heading", name="Compare models").first).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_text(f"{a} · Dice")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_text(f"{b} · Dice")).to_be_visible()
    expect(page.get_by_text("Ground truth", exact=True)).to_be_visible()
    expect(page.get_by_text(f"{patient}, slice {number} ·")).to_be_visible()
    settle(page, f"walk-{size}-3-compare")
    assert query(page) == {"patient": [patient], "slice": [number], "models": [f"{a},{b}"]}, page.url

    page.get_by_role("button", name="Explain this slice").click()
    expect(page.get_by_role("heading", name="Explain a prediction").first).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_role("combobox", name="Patient")).to_have_value(patient, timeout=TIMEOUT_MS)
    expect(page.get_by_test_id("stSliderThumbValue").first).to_have_text(number)
    expect(page.get_by_role("combobox", name="Model")).to_have_value(a)  # the pair's first model
    # A map with its faithfulness, or the slice and why there is none (a slice without tumor).
    explained = page.get_by_text(re.compile(r"^Faithfulness \(ROAD\)$|^No map for this slice\."))
    expect(explained).to_be_visible(timeout=TIMEOUT_MS)
    explained.scroll_into_view_if_needed()  # so that the screenshot shows the map, not only the pickers
    settle(page, f"walk-{size}-4-explain")
    assert query(page)["patient"] == [patient] and query(page)["slice"] == [number], page.url

    # Back, one press a page: each jump carries its selection in the URL it opens, adding one history entry.
    page.go_back()
    expect(page.get_by_role("heading", name="Compare models").first).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_text(f"{patient}, slice {number} ·")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_text(f"{b} · Dice")).to_be_visible()
    settle(page, f"walk-{size}-5-back-to-compare")
    page.go_back()
    expect(page.get_by_role("heading", name="Leaderboard").first).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_role("combobox", name="Pair")).to_have_value(f"{a} vs {b}", timeout=TIMEOUT_MS)
    settle(page, f"walk-{size}-6-back-to-leaderboard")
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible()

    # The sidebar keeps the selection: Compare opens on the same slice, and the Leaderboard link leads back.
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_role("link", name=re.compile("Compare$")).click()
    expect(page.get_by_text(f"{patient}, slice {number} ·")).to_be_visible(timeout=TIMEOUT_MS)
    settle(page, f"walk-{size}-7-sidebar-compare")
    sidebar.get_by_role("link", name=re.compile("Leaderboard$")).click()
    expect(page.get_by_role("combobox", name="Pair")).to_have_value(f"{a} vs {b}", timeout=TIMEOUT_MS)
    settle(page, f"walk-{size}-8-sidebar-leaderboard")


@pytest.mark.parametrize("width, height", [(1600, 1000), (1366, 768)])
def test_your_predictions_join_the_leaderboard(browser: Browser, app_url: str, width: int, height: int) -> None:
    """A researcher's masks: upload, score, see the forest plot and the row, at both window sizes."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(app_url)
        expect(page.get_by_role("heading", name="Leaderboard").first).to_be_visible(timeout=TIMEOUT_MS)
        settle(page, f"yours-{width}x{height}-0")  # an upload made while the first run still draws can be lost
        page.get_by_text("Add your predictions").click()
        page.locator('input[type="file"]').first.set_input_files(str(REPO / "demo" / "example-predictions.zip"))
        # The demo set lacks most of fold 0's patients, so the page offers every loaded patient (cv) first.
        expect(page.get_by_role("radio", name=re.compile("^every patient"))).to_be_checked()
        # Enabled once the upload has reached the server (a rerun may briefly show the old, disabled one too).
        page.get_by_role("button", name="Score", disabled=False).first.click()
        # The entry's line: its name in bold, then what it was scored on.
        expect(page.get_by_text(re.compile(r"on 3 patients \(every patient"))).to_be_visible(timeout=TIMEOUT_MS)
        forest = page.get_by_test_id("stVegaLiteChart").filter(has_text="mean per-patient Dice (95% CI)").first
        expect(forest).to_be_visible(timeout=TIMEOUT_MS)
        forest.scroll_into_view_if_needed()
        settle(page, f"yours-{width}x{height}")
        expect(page.get_by_role("button", name="HTML report")).to_be_visible()
    finally:
        page.close()


@pytest.mark.parametrize("width, height", [(1600, 1000), (1366, 768)])
def test_your_model_runs_and_joins_the_leaderboard(browser: Browser, app_url: str, width: int, height: int,
                                                    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A researcher's model, zipped as an artifact folder: upload, evaluate in the background, see its row."""
    archive = tmp_path / "my-unet.zip"
    zoo = build_tiny_zoo(tmp_path_factory.getbasetemp() / "tiny-zoo").parent  # built already: the server's own
    with zipfile.ZipFile(archive, "w") as z:
        for name in ("config.json", "model.safetensors"):
            z.write(zoo / "unet-mini" / name, f"my-unet/{name}")
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(app_url)
        expect(page.get_by_role("heading", name="Leaderboard").first).to_be_visible(timeout=TIMEOUT_MS)
        settle(page, f"model-{width}x{height}-0")
        page.get_by_text("Add your predictions").click()
        kind = page.get_by_role("radio", name=re.compile("^A model"))
        expect(kind).to_be_visible(timeout=TIMEOUT_MS)
        kind.check(force=True)  # Streamlit hides the input itself under its styled circle
        expect(page.get_by_role("button", name="Evaluate")).to_be_visible(timeout=TIMEOUT_MS)
        page.locator('input[type="file"]').first.set_input_files(str(archive))
        page.get_by_role("button", name="Evaluate", disabled=False).first.click()
        expect(page.get_by_text(re.compile(r"my-unet\*?\*? on 3 patients \(every patient"))).to_be_visible(
            timeout=TIMEOUT_MS)
        settle(page, f"model-{width}x{height}")
        expect(page.get_by_text("predicted on this server with PyTorch", exact=False)).to_be_visible()
    finally:
        page.close()


def test_your_predictions_lead_from_the_leaderboard_to_compare(page: Page, app_url: str) -> None:
    """Upload → score → the pair of yours and a zoo model → the slice where they differ, your masks on Compare."""
    page.goto(app_url)
    expect(page.get_by_role("heading", name="Leaderboard").first).to_be_visible(timeout=TIMEOUT_MS)
    settle(page, "yours-0-leaderboard")  # an upload made while the first run still draws can be lost
    page.get_by_text("Add your predictions").click()
    page.locator('input[type="file"]').first.set_input_files(str(REPO / "demo" / "example-predictions.zip"))
    # Enabled once the upload has reached the server (a rerun may briefly show the old, disabled one too).
    page.get_by_role("button", name="Score", disabled=False).first.click()
    expect(page.get_by_text(re.compile(r"on 3 patients \(every patient"))).to_be_visible(timeout=TIMEOUT_MS)
    settle(page, "yours-1-scored")
    page.get_by_role("tab", name="Two models").click()
    pair = page.get_by_role("combobox", name="Pair")
    pair.click()
    page.keyboard.type("yours: example")  # the list is long; typing filters it
    page.keyboard.press("Enter")
    expect(pair).to_have_value(re.compile("yours: example-predictions"), timeout=TIMEOUT_MS)
    # Leave the box, as a user moving on does: the click below otherwise also ends the typing in it, and under load
    # that blur's rerun swallowed the click (CI, twice).
    pair.blur()
    # The box changes at once; the pair's rows (and their buttons) only after the rerun it starts.
    expect(page.get_by_text(re.compile(r"yours: example-predictions \d\.\d{3} ·")).first).to_be_visible(
        timeout=TIMEOUT_MS)
    settle(page, "yours-2-pair")
    page.locator("button:enabled").filter(has_text=re.compile(r"^Compare slice \d+$")).first.click()
    expect(page.get_by_role("heading", name="Compare models").first).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_text(re.compile(r"^yours: example-predictions · Dice"))).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_text("shown to you only", exact=False)).to_be_visible()
    settle(page, "yours-3-compare")


def test_arrow_keys_step_the_slice_one_by_one(page: Page, app_url: str) -> None:
    """Each key press on the slice slider moves exactly one slice, and the URL follows."""
    page.goto(f"{app_url}/patient?patient=TCGA_HT_7855&slice=10")
    thumb = page.get_by_role("slider").first
    expect(page.get_by_test_id("stSliderThumbValue").first).to_have_text("10", timeout=TIMEOUT_MS)
    settle(page, "keys-0")
    for key, expected in (("ArrowRight", 11), ("ArrowRight", 12), ("ArrowRight", 13), ("ArrowLeft", 12)):
        thumb.focus()
        thumb.press(key)
        expect(page.get_by_test_id("stSliderThumbValue").first).to_have_text(str(expected), timeout=TIMEOUT_MS)
        page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=TIMEOUT_MS)
        expect(page).to_have_url(re.compile(f"slice={expected}(&|$)"), timeout=TIMEOUT_MS)
    settle(page, "keys-1")


@pytest.mark.parametrize("width, height", [(1600, 1000), (1366, 768)])
@pytest.mark.parametrize("where, images", [("patient", 1), ("compare", 4)])
def test_the_slice_stays_in_view_while_stepping(browser: Browser, app_url: str, where: str, images: int, width: int,
                                                height: int) -> None:
    """The slice slider and the slice's image (Compare: its first row of panels) sit inside the window, unscrolled,
    while the arrow keys step through the volume."""
    page = browser.new_page(viewport={"width": width, "height": height})
    try:
        page.goto(f"{app_url}/{where}?patient=TCGA_HT_7855&slice=10")
        thumb = page.get_by_role("slider").first
        expect(page.get_by_test_id("stSliderThumbValue").first).to_have_text("10", timeout=TIMEOUT_MS)
        settle(page, f"in-view-{where}-{width}x{height}-0")
        thumb.focus()
        thumb.press("ArrowRight")
        expect(page.get_by_text(re.compile(r"TCGA_HT_7855, slice 11\b")).first).to_be_visible(timeout=TIMEOUT_MS)
        page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=TIMEOUT_MS)
        page.screenshot(path=str(SHOTS / f"in-view-{where}-{width}x{height}.png"))  # the window, as the user sees it
        shown = [thumb, *(page.get_by_test_id("stImage").nth(i).locator("img") for i in range(images))]
        for locator in shown:
            box = locator.bounding_box()
            assert box is not None and 0 <= box["y"] and box["y"] + box["height"] <= height, (locator, box)
    finally:
        page.close()
