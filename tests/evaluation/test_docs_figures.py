"""The tables the README and the docs quote are what `lgg leaderboard` prints from the shipped evaluation records
today, so that a new artifact or catalog entry cannot leave a stale figure behind (every figure names its command)."""
from __future__ import annotations

from pathlib import Path

import pytest

from lgg_core.evaluation import crossval
from lgg_core.evaluation.leaderboard import against_best, champion, headline_markdown, markdown_tables
from lgg_core.evaluation.stats import pairs_table_markdown, patient_dice
from lgg_core.serving.catalog import load_crossval
from lgg_core.serving.records import EvalTables, ModelRecord, read_eval, resolve_models

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "models.toml"


@pytest.fixture(scope="module")
def evaluated() -> list[tuple[ModelRecord, EvalTables]]:
    records, problem = resolve_models(CATALOG)
    assert problem is None
    return [(record, tables) for record in records if (tables := read_eval(record)[0]) is not None]


def test_readme_headline_is_what_lgg_leaderboard_top_prints(evaluated) -> None:
    assert headline_markdown(evaluated, 6) in (ROOT / "README.md").read_text()


def test_zoo_page_tables_are_what_lgg_leaderboard_prints(evaluated) -> None:
    assert markdown_tables(evaluated) in (ROOT / "docs" / "zoo.md").read_text()


def test_readme_no_pair_of_the_top_six_differs(evaluated) -> None:
    """The README: "No two of the six differ significantly after Holm correction over all pairs"."""
    from lgg_core.evaluation.stats import pairwise

    segmenters = {r.name: t for r, t in evaluated if r.task == "segment"}
    top = [line.split("`")[1] for line in headline_markdown(evaluated, 6).splitlines()[2:]]
    pairs = pairwise(patient_dice(segmenters))
    among = pairs[pairs["a"].isin(top) & pairs["b"].isin(top)]
    assert len(among) == 15 and set(among["verdict"]) == {"no significant difference"}
    assert "No two of the six differ significantly after Holm correction over all pairs" in (
        ROOT / "README.md").read_text()


def test_zoo_page_fpn_against_the_champion(evaluated) -> None:
    """docs/zoo.md: fpn is separable from the champion in its k − 1 tests (Holm p 0.005), not among all pairs."""
    best = champion([(r, t, None) for r, t in evaluated])
    segmenters = {r.name: t for r, t in evaluated if r.task == "segment"}
    row = against_best(patient_dice(segmenters), best).set_index("model").loc["fpn"]
    assert (best, f"{row['p_holm']:.3f}", row["verdict"]) == ("unet-resnet50-transfer", "0.005",
                                                              "unet-resnet50-transfer better")
    assert f"Holm over its {len(segmenters) - 1} tests: p 0.005" in (ROOT / "docs" / "zoo.md").read_text()


def test_training_page_runs_against_each_other_is_what_lgg_leaderboard_pairs_prints() -> None:
    reports = [crossval.pool_run(entry.name, entry.path) for entry in load_crossval(CATALOG)]
    assert all(report.problem is None for report in reports)
    table = "\n".join(pairs_table_markdown(crossval.compare_runs(reports)))
    text = (ROOT / "docs" / "training.md").read_text()
    assert table in text and f"Holm over the {len(crossval.compare_runs(reports))} pairs" in text
