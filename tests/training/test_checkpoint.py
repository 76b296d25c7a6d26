"""Checkpoints round-trip optimizer state (int keys, nested lists) through safetensors + JSON; damage is reported."""
from __future__ import annotations

import errno
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import lgg_core.training.checkpoint as checkpoint
from lgg_core.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


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


def _truncate_tensors(path: Path) -> None:
    tensors = path / "tensors.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:20])


def _garble_state(path: Path) -> None:
    (path / "state.json").write_text('{"__dict__": [["epoch", 1]')


def _drop_tensor(path: Path) -> None:
    (path / "state.json").write_text('{"__dict__": [["w", {"__tensor__": "no-such-tensor"}]]}')


@pytest.mark.parametrize("damage", [_truncate_tensors, _garble_state, _drop_tensor])
def test_damaged_checkpoint_names_the_folder_and_the_way_out(tmp_path: Path, damage: Callable[[Path], None]) -> None:
    save_checkpoint(tmp_path / "c", {"epoch": 0, "w": torch.zeros(8)})
    damage(tmp_path / "c")
    with pytest.raises(CheckpointError, match=f"checkpoint {re.escape(str(tmp_path / 'c'))} .*--no-resume"):
        load_checkpoint(tmp_path / "c")


def test_failed_save_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save_checkpoint(tmp_path / "c", {"epoch": 0, "w": torch.zeros(2)})

    def full(tensors, path):
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(checkpoint, "save_file", full)
    with pytest.raises(OSError) as raised:
        save_checkpoint(tmp_path / "c", {"epoch": 1, "w": torch.ones(2)})
    assert raised.value.errno == errno.ENOSPC
    assert load_checkpoint(tmp_path / "c")["epoch"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]  # the partial copy is gone, freeing its space
