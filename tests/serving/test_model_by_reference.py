"""A segmenter given by reference as an ONNX file: `lgg evaluate model.onnx` scores it like predictions, and a
stranger's graph with custom operators, external data or the wrong signature is refused before anything runs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from lgg_core.cli import main as lgg_main
from lgg_core.data.cache import load_dataset
from lgg_core.evaluation import external
from lgg_core.evaluation.reference import load_reference
from lgg_core.serving.artifacts import load_artifact
from lgg_core.serving.inference import predict
from lgg_core.serving.onnx_backend import ForeignOnnxSegmenter, OnnxBackendError, export_model
from lgg_core.serving.records import DEMO_DIR


@pytest.fixture(scope="module")
def graph(zoo_catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny zoo's unet-mini exported on its own, as a researcher would hand over a model."""
    model, config = load_artifact(zoo_catalog.parent / "unet-mini")
    return export_model(model, tmp_path_factory.mktemp("onnx") / "mine.onnx", config["training"].get("input_size") or 256)


def test_an_onnx_segmenter_scores_as_its_pytorch_masks_would(graph: Path, zoo_catalog: Path) -> None:
    data = load_dataset(DEMO_DIR, progress=False)
    patients = external.split_patients("cv", data, load_reference())
    from_onnx = external.score(external.predict_split(ForeignOnnxSegmenter(graph), data, patients), data, patients)
    model, config = load_artifact(zoo_catalog.parent / "unet-mini")
    size = config["training"].get("input_size")
    masks = {p: {int(n): m > 0.5 for n, m in zip(data.index["slice"].to_numpy()[data.rows([p])],
                                                  predict(model, data.images[data.rows([p])], "segment",
                                                          input_size=size))} for p in patients}
    from_torch = external.score(external.Predictions(masks), data, patients)
    assert from_onnx.dice()["dice"].to_numpy() == pytest.approx(from_torch.dice()["dice"].to_numpy(), abs=0.01)


def test_lgg_evaluate_takes_an_onnx_file(graph: Path, capsys) -> None:
    assert lgg_main(["evaluate", str(graph), "--split", "cv", "--data-dir", str(DEMO_DIR)]) == 0
    out = capsys.readouterr().out
    assert "mine on 3 patients (cv)" in out and "Holm over 6 tests" in out


def _model(nodes, inputs, outputs, initializers=(), domain_imports=()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    opsets = [helper.make_opsetid("", 18), *(helper.make_opsetid(d, 1) for d in domain_imports)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=10)  # an IR version ONNX Runtime reads


IMAGE = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 64, 64])
LOGITS = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1, 64, 64])


def _external_weights() -> onnx.ModelProto:
    weight = helper.make_tensor("w", TensorProto.FLOAT, [1], [1.0])
    weight.data_location = TensorProto.EXTERNAL
    weight.external_data.add(key="location", value="../../etc/passwd")
    weight.ClearField("float_data")
    return _model([helper.make_node("Mul", ["image", "w"], ["logits"])], [IMAGE], [LOGITS], [weight])


BAD_GRAPHS = {
    "custom operator": (lambda: _model([helper.make_node("Evil", ["image"], ["logits"], domain="com.example")],
                                       [IMAGE], [LOGITS], domain_imports=["com.example"]), "custom operators"),
    "external data": (_external_weights, "external data"),
    "two inputs": (lambda: _model([helper.make_node("Add", ["image", "other"], ["logits"])],
                                  [IMAGE, helper.make_tensor_value_info("other", TensorProto.FLOAT, ["N", 3, 64, 64])],
                                  [LOGITS]), "2 inputs"),
    "one channel": (lambda: _model([helper.make_node("Identity", ["image"], ["logits"])],
                                   [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 64, 64])],
                                   [LOGITS]), "N x 3 x H x W"),
}


@pytest.mark.parametrize("case", list(BAD_GRAPHS))
def test_a_strangers_graph_is_refused_before_it_runs(case: str, tmp_path: Path, capsys) -> None:
    make, message = BAD_GRAPHS[case]
    path = tmp_path / "bad.onnx"
    onnx.save(make(), str(path))
    with pytest.raises(OnnxBackendError, match=message):
        ForeignOnnxSegmenter(path)
    assert lgg_main(["evaluate", str(path), "--data-dir", str(DEMO_DIR)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: bad.onnx cannot be run") and "Traceback" not in err


def test_garbage_and_wrong_outputs_are_one_clear_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a protobuf at all" * 10)
    with pytest.raises(OnnxBackendError, match="not a readable ONNX model"):
        ForeignOnnxSegmenter(garbage)
    flat = tmp_path / "flat.onnx"  # a valid graph whose output is not a mask
    onnx.save(_model([helper.make_node("Flatten", ["image"], ["logits"], axis=1)], [IMAGE],
                     [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3 * 64 * 64])]), str(flat))
    with pytest.raises(OnnxBackendError, match="returned shape"):
        ForeignOnnxSegmenter(flat).predict(np.zeros((2, 256, 256, 3), np.uint8))
