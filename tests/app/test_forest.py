"""The forest plot of paired differences: which side is whose, its colours, and the two renderings."""
from __future__ import annotations

import pandas as pd
import pytest

from lgg_core.app.external import BETTER, NEITHER, WORSE, forest_chart, forest_figure, forest_rows

# mean_diff = reference − model, as lgg_core.evaluation.external.compare writes it.
COMPARISON = pd.DataFrame({
    "model": ["weak", "strong", "alike"], "mean_diff": [0.10, -0.05, 0.01], "ci_low": [0.06, -0.08, -0.02],
    "ci_high": [0.14, -0.02, 0.04], "verdict": ["champ better", "strong better", "n.s."], "n": [22, 22, 22],
    "p_holm": [0.001, 0.02, None]})


@pytest.mark.parametrize("flip, diffs, colours", [
    (False, [0.10, -0.05, 0.01], [BETTER, WORSE, NEITHER]),  # right of 0: the reference higher, blue where it wins
    (True, [-0.10, 0.05, -0.01], [WORSE, BETTER, NEITHER]),  # right of 0: the model higher, blue where it wins
])
def test_rows_put_each_side_and_colour_where_the_verdict_says(flip: bool, diffs: list[float],
                                                              colours: list[str]) -> None:
    rows = forest_rows(COMPARISON, reference="champ", flip=flip)
    assert rows["model"].tolist() == ["weak", "strong", "alike"]  # the first row stays on top
    assert rows["diff"].tolist() == pytest.approx(diffs)
    assert (rows["low"] <= rows["diff"]).all() and (rows["diff"] <= rows["high"]).all()
    assert rows["colour"].tolist() == colours
    assert rows["p_holm"].tolist() == [0.001, 0.02, 1.0]


def test_chart_and_figure_draw_the_same_rows() -> None:
    rows = forest_rows(COMPARISON, reference="champ", flip=True)
    spec = forest_chart(rows, "title", "axis")
    assert pd.DataFrame(spec["data"]["values"]).equals(rows)
    assert spec["encoding"]["y"]["sort"] is None  # the rows' order, not alphabetical
    assert spec["layer"][0]["encoding"]["x"]["title"] == "axis"
    figure = forest_figure(rows, "title", "axis")
    assert list(figure.data[0].y) == ["alike", "strong", "weak"]  # Plotly draws its first category at the bottom
    assert list(figure.data[0].marker.color) == rows["colour"].tolist()[::-1]
