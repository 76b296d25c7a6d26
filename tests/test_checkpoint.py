"""Checkpoints round-trip optimizer state (int keys, nested lists) through safetensors + JSON."""
from __future__ import annotations

from pathlib import Path

import torch

from lgg_core.training.checkpoint import load_checkpoint, save_checkpoint


def test_optimizer_state_round_trips(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    save_checkpoint(tmp_path / "ckpt", {"optimizer": opt.state_dict(), "log": [{"epoch": 0, "loss": 0.5}], "best": None})
    state = load_checkpoint(tmp_path / "ckpt")
    fresh = torch.optim.AdamW(model.parameters())
    fresh.load_state_dict(state["optimizer"])
    for a, b in zip(opt.state_dict()["state"].values(), fresh.state_dict()["state"].values()):
        for key in a:
            torch.testing.assert_close(a[key], b[key])
    assert state["log"] == [{"epoch": 0, "loss": 0.5}] and state["best"] is None
    assert not list(tmp_path.glob("*.pt")) and not (tmp_path / "ckpt.tmp").exists()


def test_missing_checkpoint_is_none_and_overwrite_keeps_latest(tmp_path: Path) -> None:
    assert load_checkpoint(tmp_path / "nothing") is None
    save_checkpoint(tmp_path / "c", {"epoch": 0, "w": torch.zeros(2)})
    save_checkpoint(tmp_path / "c", {"epoch": 1, "w": torch.ones(2)})
    state = load_checkpoint(tmp_path / "c")
    assert state["epoch"] == 1 and torch.equal(state["w"], torch.ones(2))
