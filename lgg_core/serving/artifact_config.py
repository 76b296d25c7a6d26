"""An artifact's ``config.json`` as typed records, parsed once where the artifact checks accept it (a catalog entry's
:class:`~lgg_core.serving.records.ModelRecord`), so that pages and tables read fields instead of string keys.

Free of PyTorch, like the records: the Leaderboard reads them without importing it. Only the fields that pages and
tables use are typed; the card and the training code keep the file's every key.

Example::

    spec = ArtifactConfig.parse(json.loads(Path("artifacts/unet/config.json").read_text()))
    spec.training.protocol, spec.training.fold, spec.params  # ("lgg-zoo-v1", 0, 7763041)
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class TrainingRecord:
    """How a model was trained (``config.json`` ``training``); None where the record does not say.

    ``parts`` names the artifacts an assembled model (``lgg assemble``) is made of; it has no training of its own.
    ``val_patients`` is the size of its validation set (``patients.val``).
    """

    fold: int | None = None
    k: int | None = None
    split_seed: int | None = None
    epochs: int | None = None
    protocol: str | None = None
    inputs: str = "sequences"
    input_size: int | None = None
    crop: int | None = None
    pos_weight: float | None = None
    encoder_init: str | None = None
    init_from: str | None = None
    epochs_run: int | None = None
    best_epoch: int | None = None
    best_val_score: float | None = None
    val_patients: int | None = None
    dataset_hash: str | None = None
    cpu_time_s: float | None = None
    wall_time_s: float | None = None
    parts: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, training: Mapping[str, Any]) -> TrainingRecord:
        """The record of a ``training`` object (fields it lacks stay None)."""
        plain = {f.name for f in fields(cls)} - {"inputs", "val_patients", "parts"}
        patients, parts = training.get("patients"), training.get("parts")
        return cls(**{name: training.get(name) for name in plain}, inputs=training.get("inputs") or "sequences",
                   val_patients=patients.get("val") if isinstance(patients, Mapping) else None,
                   parts=tuple(parts) if isinstance(parts, list) else None)


@dataclass(frozen=True)
class ArtifactConfig:
    """What an artifact is: its registry architecture and task, size, input standardisation and training record."""

    arch: str
    task: str
    params: int | None = None
    standardize: bool = False
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
        training = config.get("training")
        return cls(arch=config["arch"], task=config["task"], params=config.get("params"),
                   standardize=bool((config.get("arch_kwargs") or {}).get("standardize")),
                   training=TrainingRecord.parse(training if isinstance(training, Mapping) else {}))
