"""An artifact's ``config.json`` as typed records, parsed once where the artifact checks accept it (a catalog entry's
:class:`~lgg_core.serving.records.ModelRecord`), so that pages and tables read fields instead of string keys.

Free of PyTorch, like the records: the Leaderboard reads them without importing it. What may be loaded is decided
before parsing, by :func:`lgg_core.models.check_config` (it rejects); this module only types what was accepted. The
training code and the card template keep the file's every key (a card prints any field training recorded).

Example::

    spec = ArtifactConfig.parse(json.loads(Path("artifacts/unet/config.json").read_text()))
    spec.training.protocol, spec.training.fold, spec.params  # ("lgg-zoo-v1", 0, 7763041)
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class TrainingRecord:
    """How a model was trained (``config.json`` ``training``); None where the record does not say.

    ``parts`` names the artifacts an assembled model (``lgg assemble``) is made of; it has no training of its own.
    ``train_patients``, ``val_patients`` and ``test_patients`` are the sizes of its split (``patients``).
    ``val_patient_dice`` is each validation patient's Dice at the chosen epoch (recipe-search runs).
    """

    fold: int | None = None
    k: int | None = None
    split_seed: int | None = None
    epochs: int | None = None
    protocol: str | None = None
    inputs: str = "sequences"
    modality_dropout: float = 0.0
    lr: float | None = None
    batch_size: int | None = None
    loss: str | None = None
    input_size: int | None = None
    crop: int | None = None
    pos_weight: float | None = None
    encoder_init: str | None = None
    init_from: str | None = None
    epochs_run: int | None = None
    best_epoch: int | None = None
    best_val_score: float | None = None
    train_patients: int | None = None
    val_patients: int | None = None
    test_patients: int | None = None
    val_patient_dice: Mapping[str, float] | None = None
    dataset_hash: str | None = None
    cpu_time_s: float | None = None
    wall_time_s: float | None = None
    parts: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, training: Mapping[str, Any]) -> TrainingRecord:
        """The record of a ``training`` object (fields it lacks stay None)."""
        plain = {f.name for f in fields(cls)} - set(_SPECIAL)
        patients = training.get("patients") if isinstance(training.get("patients"), Mapping) else {}
        parts, dice = training.get("parts"), training.get("val_patient_dice")
        return cls(**{name: training.get(name) for name in plain}, inputs=training.get("inputs") or "sequences",
                   modality_dropout=training.get("modality_dropout") or 0.0,
                   **{f"{role}_patients": patients.get(role) for role in ("train", "val", "test")},
                   val_patient_dice=dice if isinstance(dice, Mapping) else None,
                   parts=tuple(parts) if isinstance(parts, list) else None)


_SPECIAL = ("inputs", "modality_dropout", "train_patients", "val_patients", "test_patients", "val_patient_dice",
            "parts")
"""Fields of :class:`TrainingRecord` not read under their own name, or given a default when absent or blank."""


@dataclass(frozen=True)
class ArtifactConfig:
    """What an artifact is: its registry architecture, arguments and task, size, input standardisation, the sibling
    artifacts it is assembled from (``parts``, as ``"../<name>"``; None for a model with weights of its own) and
    its training record."""

    arch: str
    task: str
    arch_kwargs: Mapping[str, Any] = field(default_factory=dict)
    params: int | None = None
    standardize: bool = False
    parts: tuple[str, ...] | None = None
    training: TrainingRecord = TrainingRecord()

    @property
    def gated(self) -> bool:
        """True for a classifier-gated pipeline written by ``lgg assemble gated``."""
        return self.arch == "gated"

    @classmethod
    def parse(cls, config: Mapping[str, Any]) -> ArtifactConfig:
        """The typed view of a ``config.json`` object (the artifact checks accept none without ``arch`` and ``task``).

        Raises:
            ValueError: ``arch`` or ``task`` is missing or not text.
        """
        if not (isinstance(config.get("arch"), str) and isinstance(config.get("task"), str)):
            raise ValueError("config.json names no arch or task")
        training, parts = config.get("training"), config.get("parts")
        arch_kwargs = config.get("arch_kwargs") if isinstance(config.get("arch_kwargs"), Mapping) else {}
        return cls(arch=config["arch"], task=config["task"], arch_kwargs=arch_kwargs, params=config.get("params"),
                   standardize=bool(arch_kwargs.get("standardize")),
                   parts=tuple(parts) if isinstance(parts, list) else None,
                   training=TrainingRecord.parse(training if isinstance(training, Mapping) else {}))
