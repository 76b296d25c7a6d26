"""Draw docs/img/recipe-curve.png: the recipe search's validation Dice after every epoch against CPU-minutes (the
numbers `lgg recipes artifacts/recipes --curve` prints), rendered in headless Chromium.

Usage: python scripts/recipe_curve.py [--runs artifacts/recipes] [--chromium /usr/bin/chromium]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from lgg_core.app.charts import recipe_curve_figure
from lgg_core.evaluation.recipes import find_runs, recipe_curve

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "img" / "recipe-curve.png"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
SIZE = {"width": 1200, "height": 640}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default=str(ROOT / "artifacts" / "recipes"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    figure = recipe_curve_figure(recipe_curve(find_runs([args.runs])))
    figure.update_layout(width=SIZE["width"], height=SIZE["height"], template="plotly_white")
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        page_file = Path(tmp) / "curve.html"
        page_file.write_text(figure.to_html(include_plotlyjs=True, full_html=True, config={"staticPlot": True}))
        browser = p.chromium.launch(executable_path=args.chromium, args=ARGS)
        page = browser.new_page(viewport=SIZE)
        page.goto(page_file.as_uri())
        page.wait_for_selector(".main-svg")
        page.screenshot(path=str(OUT))
        browser.close()
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
