"""The torchrun (DDP) path of ``python -m train``, exercised on CPU with the gloo backend and two processes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_torchrun_two_processes_write_one_artifact(sample_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "train", "cnn-encdec", "--data-dir", str(sample_root), "--out", str(out), "--device", "cpu",
           "--epochs", "1", "--no-progress", "--set", "k=3", "--set", "batch_size=4", "--set", "limit_train_batches=2",
           "--set", "val_patients=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=Path(__file__).parents[2])
    assert result.returncode == 0, result.stderr[-3000:]
    training = json.loads((out / "config.json").read_text())["training"]
    assert training["world_size"] == 2 and training["epochs_run"] == 1
    assert result.stdout.count("artifact written to") == 1  # only rank 0 writes
