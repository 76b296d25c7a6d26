"""Training any registry entry on one patient-level fold, with resume, early stopping and a Hub-format artifact."""
from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import random
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import segmentation_models_pytorch as smp
import torch
import torch.distributed as dist
from safetensors import SafetensorError
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from lgg_core.serving.artifacts import check_overwrite, write_artifact
from lgg_core.data.cache import LGGData
from lgg_core.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from lgg_core.serving.device import autocast, pick_device
from lgg_core.serving.inference import predict
from lgg_core.evaluation.metrics import classification_metrics, volume_dice
from lgg_core.models import ArtifactError, LGGModel, init_encoder_from_classifier, init_from_artifact
from lgg_core.data.reader import DatasetError
from lgg_core.data.splits import fold_roles, load_split, make_folds
from lgg_core.data.dataset import BalancedSampler, SliceDataset
from lgg_core.data.inputs import check_inputs, stack_inputs
from lgg_core.data.transforms import Augment, training_batch

LOSSES = ("bce", "dice", "bce+dice")
RUN_CONTROL = frozenset({"max_minutes", "device", "num_workers"})
"""Config fields a resumed run may change (e.g. extend its time budget); every other field must match."""


@dataclass
class TrainConfig:
    """Hyper-parameters of one run; every field is recorded in the artifact's config.json.

    ``pos_weight``: a number, None, or ``"auto"`` (classifiers: negative/positive slice ratio; segmenters: square
    root of the background/tumor pixel ratio of the training slices, capped at 10).
    ``crop``: random crop size for segmenters (tumor-biased with ``tumor_crop_prob``); evaluation always uses full
    slices. ``input_size``: resize inputs to this size (e.g. 128 for fast CPU classifiers).
    ``max_minutes``: stop after the epoch during which this wall time is reached (CPU budgets); the learning-rate
    schedule then decays by elapsed time as well as by steps (see :func:`lr_lambda`).
    ``val_patients``: that many validation patients, drawn institution by institution in proportion (overrides
    ``val_fraction``). ``balanced``: each epoch sees every tumor slice and as many tumor-free ones (see
    :class:`~lgg_core.data.dataset.BalancedSampler`). ``encoder_init``: a classifier artifact whose backbone starts
    the segmenter's encoder (see :func:`~lgg_core.models.init_encoder_from_classifier`). ``init_from``: an artifact of
    the same model whose weights start the run (a longer run, or a fine-tune at a larger ``input_size``, continues
    from it). Both sources must not have learned from the run's held-out patients (:func:`check_weights_source`).
    ``protocol``: the name of
    the shared recipe a run follows, so runs of one comparison can be told from others. ``inputs``: what the model
    sees of a slice (:data:`~lgg_core.data.inputs.INPUTS`). ``modality_dropout``: the probability of replacing each
    contrast channel by FLAIR in training (:func:`~lgg_core.data.transforms.drop_modalities`).
    """

    arch: str
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    fold: int = 0
    k: int = 5
    split_seed: int = 0
    val_fraction: float = 0.1
    val_patients: int | None = None
    seed: int = 0
    epochs: int = 30
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: int = 1
    loss: str = "bce+dice"
    pos_weight: float | str | None = None
    crop: int | None = None
    tumor_crop_prob: float = 0.7
    balanced: bool = False
    encoder_init: str | None = None
    init_from: str | None = None
    input_size: int | None = None
    patience: int = 8
    max_minutes: float | None = None
    limit_train_batches: int | None = None
    num_workers: int = 0
    mixed_precision: bool = True
    weights_dtype: str = "float32"
    device: str = "auto"
    protocol: str | None = None
    inputs: str = "sequences"
    modality_dropout: float = 0.0

    def __post_init__(self) -> None:
        check_inputs(self.inputs)
        if not 0.0 <= self.modality_dropout <= 1.0:
            raise ValueError(f"modality_dropout must be a probability in [0, 1], got {self.modality_dropout!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; valid: {', '.join(LOSSES)}")
        if self.weights_dtype not in ("float32", "float16"):
            raise ValueError("weights_dtype must be 'float32' or 'float16'")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a dict (e.g. a TOML table), rejecting unknown keys with the list of valid ones."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}; valid: {', '.join(sorted(names))}")
        return cls(**values)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def code_revision() -> str:
    """``git describe`` of the code that trained the model (``-dirty`` if ``lgg_core/`` or ``train/`` has uncommitted
    changes; artifacts written into the checkout do not count), or ``"unknown"`` outside a checkout."""
    root = Path(__file__).parents[2]

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True).stdout

    try:
        described = git("describe", "--always").strip()
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", "lgg_core", "train").strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{described}-dirty" if dirty else described


def resolve_pos_weight(cfg: TrainConfig, task: str, data: LGGData, rows: np.ndarray) -> float | None:
    """``cfg.pos_weight`` as a number; ``"auto"`` is computed over the slices an epoch sees (see :class:`TrainConfig`)."""
    if cfg.pos_weight != "auto":
        return None if cfg.pos_weight is None else float(cfg.pos_weight)
    pos = int(data.index["has_tumor"].to_numpy()[rows].sum())
    # A balanced epoch sees as many tumor-free slices as tumor slices (or all of them, if fewer).
    seen = pos + min(pos, len(rows) - pos) if cfg.balanced else len(rows)
    if task == "classify":
        return (seen - pos) / max(pos, 1)
    fg = int(data.index["tumor_pixels"].to_numpy()[rows].sum())
    bg = seen * data.masks.shape[1] * data.masks.shape[2] - fg
    return float(min(math.sqrt(bg / max(fg, 1)), 10.0))


class Criterion(torch.nn.Module):
    """BCE (with optional pos_weight), Dice, or their sum; classifiers only use BCE."""

    def __init__(self, loss: str, task: str, pos_weight: float | None) -> None:
        super().__init__()
        pw = None if pos_weight is None else torch.tensor([pos_weight])
        self.bce = torch.nn.BCEWithLogitsLoss(pos_weight=pw)
        self.dice = smp.losses.DiceLoss("binary", from_logits=True)
        self.use_bce = task == "classify" or "bce" in loss
        self.use_dice = task == "segment" and "dice" in loss

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        loss = self.bce(logits, target) if self.use_bce else logits.new_zeros(())
        return loss + self.dice(logits, target) if self.use_dice else loss


def hard_dice(logits: torch.Tensor, target: torch.Tensor) -> float:
    """Dice of the thresholded batch, for the progress bar."""
    pred = logits.detach() > 0
    inter = (pred & (target > 0.5)).sum().item()
    total = pred.sum().item() + (target > 0.5).sum().item()
    return 1.0 if total == 0 else 2 * inter / total


def validate(
    model: LGGModel, data: LGGData, patients: list[str], cfg: TrainConfig, images: np.ndarray | None = None
) -> tuple[dict[str, float], dict[str, float]]:
    """Segmenters: mean per-patient volume Dice; classifiers: AUROC and accuracy. Full slices, no augmentation.

    ``images``: the model's inputs for every row of ``data`` (default: ``data.images``). Returns the epoch-log
    scores and each validation patient's Dice (empty for classifiers).
    """
    model.eval()
    rows = data.rows(patients)
    inputs = data.images if images is None else images
    probs = predict(model, inputs[rows], model.task, cfg.batch_size, cfg.input_size, mixed_precision=True)
    model.train()
    if model.task == "classify":
        m = classification_metrics(data.index["has_tumor"].to_numpy()[rows], probs)
        return {"val_score": m["auroc"], "val_auroc": m["auroc"], "val_accuracy": m["accuracy"]}, {}
    pred, true = probs > 0.5, data.masks[rows]
    patient_of_row = data.index["patient"].to_numpy()[rows]
    dices = {p: volume_dice(pred[patient_of_row == p], true[patient_of_row == p]) for p in patients}
    mean = float(np.mean(list(dices.values())))
    return {"val_score": mean, "val_patient_dice": mean}, dices


class Budget:
    """Wall-clock budget of a run (``max_minutes``); ``start`` moves back on resume by the time already spent."""

    def __init__(self, max_minutes: float | None) -> None:
        self.max_seconds = None if max_minutes is None else max_minutes * 60
        self.start = time.time()

    def elapsed(self) -> float:
        return time.time() - self.start

    def fraction(self) -> float:
        return 0.0 if self.max_seconds is None else self.elapsed() / self.max_seconds

    def spent(self) -> bool:
        return self.max_seconds is not None and self.elapsed() >= self.max_seconds


def lr_lambda(cfg: TrainConfig, steps_per_epoch: int, budget: Budget):
    """Linear warm-up for ``warmup_epochs``, then cosine decay to 1% of ``lr``.

    The decay follows whichever is further along, steps or the time budget, so a run cut short by ``max_minutes``
    on a slow machine still ends at a low learning rate instead of mid-schedule.
    """
    warm = max(cfg.warmup_epochs * steps_per_epoch, 1)
    total = max(cfg.epochs * steps_per_epoch, warm + 1)

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = min(1.0, max((step - warm) / (total - warm), budget.fraction()))
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress))

    return f


@contextmanager
def _disk_space(what: str, option: str) -> Iterator[None]:
    """Turn a full disk while writing ``what`` into one OSError that says so and what to do (the CLI prints it).

    Python's writes raise OSError(ENOSPC); safetensors raises SafetensorError ending in "(os error 28)".
    """
    try:
        yield
    except (OSError, SafetensorError) as err:
        full = err.errno == errno.ENOSPC if isinstance(err, OSError) else f"(os error {errno.ENOSPC})" in str(err)
        if not full:
            raise
        raise OSError(
            errno.ENOSPC, f"No space left on device for {what}: free some space and run the same command again to "
            f"resume from the last saved epoch, or point {option} to another disk"
        ) from err


def _distributed() -> tuple[int, int]:
    """(rank, world size); initializes torch.distributed when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank() if world > 1 else 0), world


def check_weights_source(source_dir: str | Path, roles: dict[str, list[str]]) -> None:
    """Refuse a model whose patients would leak into a run with these split ``roles`` through the weights it gives.

    The source (an ``encoder_init`` classifier or an ``init_from`` artifact) must not have trained or validated on
    the run's test patients, nor trained on its validation patients (which pick the run's checkpoint). A
    cross-validation fold therefore needs a classifier trained on the same fold (``train/cv.sh`` trains one).

    Raises:
        ArtifactError: the classifier has no readable split.json.
        ValueError: the patients overlap.
    """
    try:
        source = load_split(Path(source_dir) / "split.json")["roles"]
    except (DatasetError, KeyError) as err:
        raise ArtifactError(f"{source_dir} has no split.json with roles, so its patients are unknown ({err})")
    trained = set(source.get("train", []))
    for role, run_patients, classifier_patients in (("test", roles["test"], trained | set(source.get("val", []))),
                                                    ("validation", roles["val"], trained)):
        if leaked := sorted(classifier_patients & set(run_patients)):
            raise ValueError(f"{source_dir} learned from {len(leaked)} of this run's {role} patients "
                             f"({', '.join(leaked[:3])}…): train it on the same fold")


def train(
    cfg: TrainConfig,
    data: LGGData,
    out_dir: str | Path,
    run_dir: str | Path | None = None,
    resume: bool = True,
    progress: bool = True,
    overwrite: bool = False,
) -> Path | None:
    """Train ``cfg.arch`` on fold ``cfg.fold`` and write a Hub-format artifact to ``out_dir``.

    ``run_dir`` holds the per-epoch checkpoint; a killed run started again with the same ``run_dir`` resumes from the
    last finished epoch. Under torchrun each process trains on its shard; rank 0 validates and writes. Returns the
    artifact folder (None on other ranks).

    Raises:
        FileExistsError: ``out_dir`` holds an evaluated artifact and ``overwrite`` is False; checked before training.
        CheckpointError: the checkpoint in ``run_dir`` cannot be resumed from.
        OSError: among others, a full disk (ENOSPC), with a message naming the checkpoint or artifact.
    """
    out_dir = Path(out_dir)
    check_overwrite(out_dir, overwrite)  # before any training time is spent, on every rank alike
    revision = code_revision()  # now: code edited while a long run trains is not the code that trained it
    rank, world = _distributed()
    run_dir = Path(run_dir) if run_dir else out_dir.with_name(out_dir.name + ".run")
    checkpoint = run_dir / "checkpoint"
    device = pick_device(cfg.device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    seed_everything(cfg.seed)

    folds = make_folds(data.index, cfg.k, cfg.split_seed)
    institutions = data.index.groupby("patient")["institution"].first().to_dict() if cfg.val_patients else None
    roles = fold_roles(folds, cfg.fold, cfg.val_fraction, cfg.split_seed, cfg.val_patients, institutions)
    train_rows = data.rows(roles["train"])
    model = LGGModel(cfg.arch, cfg.arch_kwargs)
    if cfg.encoder_init:
        check_weights_source(cfg.encoder_init, roles)
        init_encoder_from_classifier(model, cfg.encoder_init)
    if cfg.init_from:
        check_weights_source(cfg.init_from, roles)
        init_from_artifact(model, cfg.init_from)
    model = model.to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    task = model.task
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model

    # Built once for every row: 2.5D stacks take neighbours across the whole volume (0.8 GB for all 110 patients).
    images = stack_inputs(data.images, data.index, cfg.inputs)
    dataset = SliceDataset(images, data.masks, train_rows)
    augment_rng = torch.Generator().manual_seed(cfg.seed + rank)
    augment, crop = Augment(), cfg.crop if task == "segment" else None
    if cfg.balanced:
        has_tumor = data.index["has_tumor"].to_numpy()[train_rows]
        sampler = BalancedSampler(has_tumor, cfg.seed, rank, world)
    else:
        sampler = DistributedSampler(dataset, world, rank, seed=cfg.seed) if world > 1 else None
    shuffle_rng = torch.Generator()
    loader = DataLoader(
        dataset, cfg.batch_size, shuffle=sampler is None, sampler=sampler, drop_last=True,
        num_workers=cfg.num_workers, generator=shuffle_rng,
    )
    steps = min(len(loader), cfg.limit_train_batches or len(loader))
    pos_weight = resolve_pos_weight(cfg, task, data, train_rows)
    criterion = Criterion(cfg.loss, task, pos_weight).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    budget = Budget(cfg.max_minutes)
    cpu_start, cpu_before = time.process_time(), 0.0
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, steps, budget))
    scaler = torch.amp.GradScaler(
        "cuda", enabled=device.type == "cuda" and cfg.mixed_precision and not torch.cuda.is_bf16_supported()
    )

    log: list[dict[str, Any]] = []
    start_epoch, best_score, best_epoch, best_state, best_dices = 0, -math.inf, -1, None, {}
    state = load_checkpoint(checkpoint) if resume else None
    if state is not None:
        # Fields added since a checkpoint was written take their defaults, which is what that run used.
        defaults = {f.name: f.default for f in dataclasses.fields(cfg) if f.default is not dataclasses.MISSING}
        old, new = {**defaults, **(state.get("config") or {})}, dataclasses.asdict(cfg)
        if {k: v for k, v in old.items() if k not in RUN_CONTROL} != {k: v for k, v in new.items() if k not in RUN_CONTROL}:
            raise ValueError(f"{run_dir} holds a checkpoint of a different config; use another run dir or --no-resume")
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"])
            augment_rng.set_state(state["augment_rng"])
            start_epoch, best_score, best_epoch = state["epoch"] + 1, state["best_score"], state["best_epoch"]
            best_state, log, best_dices = state["best_model"], state["log"], state.get("best_dices", {})
            budget.start = time.time() - state["elapsed"]
            cpu_before = state.get("cpu_elapsed", 0.0)
        # Readable files whose content does not fit this run (edited, or written by other code): missing keys,
        # tensors of other shapes or types.
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise CheckpointError(checkpoint, f"{type(err).__name__}: {err}") from err
        if rank == 0:
            print(f"resumed from {run_dir} at epoch {start_epoch}")

    model.train()
    for epoch in range(start_epoch, cfg.epochs):
        # Each epoch's order depends on (seed, epoch) only, so a resumed run replays the same batches.
        shuffle_rng.manual_seed(cfg.seed * 100_003 + epoch)
        if sampler is not None:
            sampler.set_epoch(epoch)
        t0, losses, dices = time.time(), [], []
        bar = tqdm(loader, total=steps, desc=f"epoch {epoch}", disable=not progress or rank != 0, leave=False)
        for i, (x, y) in enumerate(bar):
            if i >= steps:
                break
            x, y = training_batch(
                x.to(device), y.to(device), task, augment_rng, augment, crop, cfg.tumor_crop_prob, cfg.input_size,
                cfg.modality_dropout,
            )
            if device.type == "cpu":
                x = x.to(memory_format=torch.channels_last)
            with autocast(device, cfg.mixed_precision):
                logits = net(x)
            loss = criterion(logits, y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            losses.append(loss.item())
            dices.append(hard_dice(logits, y) if task == "segment" else float(((logits > 0) == (y > 0.5)).float().mean()))
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", dice=f"{np.mean(dices[-20:]):.3f}")
        row: dict[str, Any] = {
            "epoch": epoch, "train_loss": float(np.mean(losses)),
            ("train_dice" if task == "segment" else "train_accuracy"): float(np.mean(dices)),
            "lr": optimizer.param_groups[0]["lr"], "train_seconds": time.time() - t0,
        }
        stop = False
        if rank == 0:
            scores, dices = validate(model, data, roles["val"], cfg, images)
            row.update(scores)
            row["seconds"] = time.time() - t0
            if row["val_score"] > best_score:
                best_score, best_epoch, best_dices = row["val_score"], epoch, dices
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            log.append(row)
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
            with _disk_space(f"the checkpoint {checkpoint}", "--run-dir"):
                save_checkpoint(checkpoint, {
                    "config": dataclasses.asdict(cfg), "epoch": epoch, "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "rng": torch.get_rng_state(), "augment_rng": augment_rng.get_state(),
                    "best_score": best_score, "best_epoch": best_epoch, "best_model": best_state,
                    "best_dices": best_dices,
                    "log": log, "elapsed": budget.elapsed(), "cpu_elapsed": cpu_before + time.process_time() - cpu_start,
                })
            stop = epoch - best_epoch >= cfg.patience or budget.spent()
        if world > 1:
            flag = torch.tensor([int(stop)], device=device)
            dist.broadcast(flag, 0)
            stop = bool(flag.item())
        if stop:
            break

    if rank != 0:
        return None
    model.load_state_dict(best_state)
    training = {
        **dataclasses.asdict(cfg), "task": task, "pos_weight_value": pos_weight,
        "split_file": "split.json", "dataset_hash": data.dataset_hash,
        "patients": {r: len(v) for r, v in roles.items()},
        "epochs_run": len(log), "best_epoch": best_epoch, "best_val_score": best_score,
        "val_patient_dice": best_dices,
        "wall_time_s": round(budget.elapsed(), 1), "code_revision": revision,
        "cpu_time_s": round(cpu_before + time.process_time() - cpu_start, 1), "threads": torch.get_num_threads(),
        "device": str(device), "world_size": world, "torch": torch.__version__,
    }
    split = {"folds": folds, "k": cfg.k, "seed": cfg.split_seed, "dataset_hash": data.dataset_hash, "roles": roles}
    with _disk_space(f"the artifact {out_dir}", "--out"):
        return write_artifact(
            out_dir, model, training, split, pd.DataFrame(log),
            weights_dtype=torch.float16 if cfg.weights_dtype == "float16" else None, overwrite=overwrite,
        )
