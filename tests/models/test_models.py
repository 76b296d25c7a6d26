"""Tests for the model registry, every registered architecture, composites and LGGModel save/load."""
from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

from lgg_core.models import (
    EMPTY_LOGIT,
    TASKS,
    LGGModel,
    assemble,
    count_parameters,
    create_model,
    list_models,
    model_info,
    read_config,
)


def _inputs(batch: int, size: int = 128) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))


def _expected_shape(task: str, x: torch.Tensor) -> tuple[int, ...]:
    return (x.shape[0], 1, *x.shape[-2:]) if task == "segment" else (x.shape[0], 1)


def _force_logit(classifier: torch.nn.Module, logit: float) -> None:
    """Make a ResNet classifier output ``logit`` for every input."""
    torch.nn.init.zeros_(classifier.fc.weight)
    torch.nn.init.constant_(classifier.fc.bias, logit)


@pytest.mark.parametrize("name", list_models())
def test_entry_metadata(name: str) -> None:
    info = model_info(name)
    assert info["name"] == name
    assert info["task"] in TASKS
    assert info["description"].strip() and "\n" not in info["description"]
    assert info["params"] > 0


@pytest.mark.parametrize("name", list_models())
@torch.no_grad()
def test_forward_shape_and_param_count(name: str) -> None:
    model = create_model(name).eval()
    x = _inputs(2)
    out = model(x)
    assert out.shape == _expected_shape(model_info(name)["task"], x)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert count_parameters(model) == model_info(name)["params"]


@pytest.mark.parametrize("name", list_models())
@torch.no_grad()
def test_save_load_round_trip(name: str, tmp_path) -> None:
    model = LGGModel(name).eval()
    x = _inputs(1)
    model.save_pretrained(tmp_path, config={"training": {"epochs": 3}})
    loaded = LGGModel.from_pretrained(tmp_path)
    assert not loaded.training and loaded.arch == name and loaded.task == model_info(name)["task"]
    assert torch.equal(loaded(x), model(x))


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(KeyError, match="unknown model 'nope'; valid names: .*unet-mini"):
        create_model("nope")


def test_list_models_filters_by_task() -> None:
    by_task = {task: list_models(task) for task in TASKS}
    assert sorted(by_task["segment"] + by_task["classify"]) == list_models()
    assert all(model_info(n)["task"] == task for task, names in by_task.items() for n in names)


def test_unet_mini_size() -> None:
    assert 1_700_000 <= model_info("unet-mini")["params"] <= 1_950_000


def test_unet_resnet50_frozen_keeps_stem_and_layer1_frozen() -> None:
    model = create_model("unet-resnet50-frozen")
    encoder = model.encoder
    frozen = [encoder.conv1, encoder.bn1, encoder.layer1]
    frozen_params = [p for m in frozen for p in m.parameters()]
    frozen_ids = {id(p) for p in frozen_params}
    assert not any(p.requires_grad for p in frozen_params)
    assert all(p.requires_grad for p in model.parameters() if id(p) not in frozen_ids)
    frozen_count = sum(p.numel() for p in frozen_params)
    assert count_parameters(model, trainable_only=True) == count_parameters(model) - frozen_count
    model.train()
    assert model.training and encoder.layer2.training and model.decoder.training
    assert not any(m.training for f in frozen for m in f.modules())
    model.eval().train()
    assert not encoder.bn1.training and encoder.layer2[0].bn1.training


@torch.no_grad()
@pytest.mark.parametrize(
    ("member_logits", "tumor"),
    [((5, 5, -5), True), ((5, -5, -5), False), ((5, 5, 5), True), ((-5, -5, -5), False), ((5, 5, -5, -5), False)],
)
def test_ensemble_strict_majority(member_logits: tuple[float, ...], tumor: bool) -> None:
    model = create_model("ensemble", members=["resnet18"] * len(member_logits)).eval()
    for member, logit in zip(model.members, member_logits):
        _force_logit(member, logit)
    prob = torch.sigmoid(model(_inputs(2, 64)))
    assert prob.shape == (2, 1)
    # sigmoid(output) is the vote fraction (kept off 0 and 1); a 2-2 tie gives exactly 0.5, i.e. no tumor
    fraction = sum(v > 0 for v in member_logits) / len(member_logits)
    torch.testing.assert_close(prob, torch.full_like(prob, fraction).clamp(1e-4, 1 - 1e-4))
    assert bool((prob > 0.5).all()) == tumor


def test_composites_reject_wrong_tasks() -> None:
    with pytest.raises(ValueError, match="ensemble member"):
        create_model("ensemble", members=["resnet18", "cnn-encdec"])
    with pytest.raises(ValueError, match="classifier"):
        create_model("gated", classifier="cnn-encdec", segmenter="cnn-encdec")
    with pytest.raises(ValueError, match="segmenter"):
        create_model("gated", classifier="resnet18", segmenter="resnet18")


@torch.no_grad()
def test_gated_empties_mask_unless_classifier_says_tumor() -> None:
    model = create_model("gated", segmenter="cnn-encdec").eval()
    x = _inputs(2)
    _force_logit(model.classifier, -10.0)
    seg, cls = model.forward_with_gate(x)
    assert cls.shape == (2, 1) and torch.equal(seg, torch.full_like(seg, EMPTY_LOGIT))
    _force_logit(model.classifier, 10.0)
    assert torch.equal(model(x), model.segmenter(x))


@torch.no_grad()
def test_assemble_gated_copies_trained_weights() -> None:
    classifier, segmenter = LGGModel("resnet18").eval(), LGGModel("cnn-encdec").eval()
    # threshold 0 keeps every mask, so the gated output must equal the trained segmenter's
    model = assemble("gated", [classifier, segmenter], threshold=0.0)
    x = _inputs(2)
    seg, cls = model.net.forward_with_gate(x)
    assert torch.equal(cls, classifier(x)) and torch.equal(seg, segmenter(x))
    assert model.arch_kwargs["classifier"] == "resnet18" and model.arch_kwargs["segmenter"] == "cnn-encdec"
    assert model.arch_kwargs["threshold"] == 0.0 and not model.training


@torch.no_grad()
def test_assemble_ensemble_votes_with_trained_members(tmp_path) -> None:
    parts = [LGGModel("resnet18").eval() for _ in range(3)]
    for part, logit in zip(parts, (3.0, -3.0, 3.0)):
        _force_logit(part.net, logit)
    model = assemble("ensemble", parts)
    x = _inputs(1, 64)
    assert torch.sigmoid(model(x)).item() == pytest.approx(2 / 3)
    model.save_pretrained(tmp_path)
    assert torch.equal(LGGModel.from_pretrained(tmp_path)(x), model(x))
    assert read_config(tmp_path)["arch_kwargs"]["members"] == ["resnet18"] * 3


@torch.no_grad()
def test_config_keeps_extra_keys_and_card(tmp_path) -> None:
    LGGModel("cnn-encdec", {"base_width": 8}).save_pretrained(tmp_path, config={"training": {"epochs": 3}})
    config = read_config(tmp_path)
    assert config == {"arch": "cnn-encdec", "arch_kwargs": {"base_width": 8}, "training": {"epochs": 3}}
    assert (tmp_path / "README.md").exists()
    assert LGGModel.from_pretrained(tmp_path).arch_kwargs == {"base_width": 8}


@torch.no_grad()
def test_fp16_save_halves_file_and_loads_back(tmp_path) -> None:
    model = LGGModel("unet-mini").eval()
    model.save_pretrained(tmp_path / "fp32")
    model.save_pretrained(tmp_path / "fp16", weights_dtype=torch.float16)
    fp32_size = (tmp_path / "fp32" / "model.safetensors").stat().st_size
    fp16_size = (tmp_path / "fp16" / "model.safetensors").stat().st_size
    assert 0.45 < fp16_size / fp32_size < 0.55
    with safe_open(tmp_path / "fp16" / "model.safetensors", "pt") as f:
        dtypes = {key: f.get_slice(key).get_dtype() for key in f.keys()}
    assert {d for k, d in dtypes.items() if k.endswith("num_batches_tracked")} == {"I64"}
    assert {d for k, d in dtypes.items() if not k.endswith("num_batches_tracked")} == {"F16"}
    loaded = LGGModel.from_pretrained(tmp_path / "fp16")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = _inputs(1)
    torch.testing.assert_close(loaded(x), model(x), atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize("name", ["unet-mini", "resnet18", "gated"])
def test_standardize_makes_output_invariant_to_scan_brightness(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, standardize=True).eval()
    plain = create_model(name).eval()
    plain.load_state_dict(model.state_dict())  # same weights, same keys: the hook adds no parameters
    x = torch.randn(2, 3, 128, 128)
    darker = 0.3 * x - 1.2  # the same slice from a darker scan (any positive per-channel affine change)
    with torch.no_grad():
        torch.testing.assert_close(model(darker), model(x), rtol=1e-3, atol=1e-3)
        assert not torch.allclose(plain(darker), plain(x), atol=1e-3)


def test_standardize_survives_save_and_load(tmp_path) -> None:
    model = LGGModel("unet-mini", {"standardize": True}).eval()
    model.save_pretrained(tmp_path / "m")
    loaded = LGGModel.from_pretrained(tmp_path / "m")
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        torch.testing.assert_close(loaded(0.5 * x + 2), model(x), rtol=1e-3, atol=1e-3)
