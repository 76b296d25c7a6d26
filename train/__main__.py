"""``python -m train``: train one registry entry on one patient-level fold and write a Hub-format artifact.

Examples:
    python -m train unet-mini --data-dir ../kaggle_3m --fold 0            # train/configs/unet-mini.toml
    python -m train train/configs/unet.toml --epochs 5 --out artifacts/unet-test
    torchrun --nproc_per_node 4 -m train unet-resnet34 --data-dir /data/kaggle_3m   # multi-GPU (DDP)

A killed run resumes from its last finished epoch when started again with the same command. An artifact that has
been evaluated (``lgg evaluate`` wrote its eval/) is never replaced without ``--overwrite``.
"""
from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

CONFIG_DIR = Path(__file__).parent / "configs"


def read_toml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A config file; ``extends = "other.toml"`` (relative to it) starts from that file's values, so the models of
    one protocol share its recipe and state only what differs. A list of files applies each in turn over the last
    (``["../unet.toml", "../protocol/segment-v2.toml"]``: a model's config, then a protocol's changes).
    ``arch_kwargs`` tables merge key by key."""
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} not found")
    if path.resolve() in seen:
        raise ValueError(f"config file {path} extends itself (via {' -> '.join(map(str, seen))})")
    values = tomllib.loads(path.read_text())
    bases = values.pop("extends", [])
    merged: dict[str, Any] = {}
    for base in [bases] if isinstance(bases, str) else bases:
        merged = _merge(merged, read_toml(path.parent / base, (*seen, path.resolve())))
    return _merge(merged, values)


def _merge(base: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    kwargs = {**base.get("arch_kwargs", {}), **values.get("arch_kwargs", {})}
    return {**base, **values, **({"arch_kwargs": kwargs} if kwargs else {})}


def load_config(spec: str) -> dict[str, Any]:
    """A TOML path, or a model name whose default config is ``train/configs/<name>.toml`` (else bare defaults)."""
    path = Path(spec)
    if path.suffix == ".toml":
        return read_toml(path)
    default = CONFIG_DIR / f"{spec}.toml"
    return read_toml(default) if default.is_file() else {"arch": spec}


def parse_value(text: str) -> Any:
    """Values of ``--set key=value``: JSON when it parses (numbers, true, null, objects), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train", description=__doc__.split("\n")[0])
    p.add_argument("model", help="registry name (see `lgg models`) or a config .toml")
    p.add_argument("--data-dir", help="kaggle_3m folder (default: $LGG_DATA_DIR)")
    p.add_argument("--cache-dir", help="where the decoded dataset is cached (default: $LGG_CACHE_DIR or ~/.cache/lgg_core)")
    p.add_argument("--out", help="artifact folder (default: artifacts/<arch>)")
    p.add_argument("--run-dir", help="checkpoint folder for resuming (default: <out>.run)")
    p.add_argument("--fold", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--loss", choices=["bce", "dice", "bce+dice"])
    p.add_argument("--max-minutes", type=float, help="stop after the epoch that reaches this wall time")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:1, mps")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any other config field")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the artifact at --out even if it was evaluated (its eval/ results are deleted)")
    p.add_argument("--no-progress", action="store_true")
    return p


def make_config(args: argparse.Namespace) -> dict[str, Any]:
    values = load_config(args.model)
    for key in ("fold", "epochs", "batch_size", "lr", "loss", "max_minutes", "device"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    for item in args.set:
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        values[key] = parse_value(text)
    return values


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Heavy imports after argument parsing so --help is instant.
    from lgg_core.data.cache import load_dataset
    from lgg_core.data.reader import DatasetError
    from lgg_core.models import list_models
    from lgg_core.training.trainer import TrainConfig, train

    try:
        cfg = TrainConfig.from_dict(make_config(args))
        if cfg.arch not in list_models():
            raise KeyError(f"unknown model {cfg.arch!r}; valid names: {', '.join(list_models())}")
        data = load_dataset(args.data_dir, args.cache_dir)
        out = Path(args.out or f"artifacts/{cfg.arch}")
        path = train(cfg, data, out, args.run_dir, resume=not args.no_resume, progress=not args.no_progress,
                     overwrite=args.overwrite)
    # OSError: a missing config file, an evaluated artifact in the way, a full disk; the messages name the file.
    except (DatasetError, ValueError, KeyError, OSError, tomllib.TOMLDecodeError) as exc:
        print(f"error: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return 2
    if path is not None:
        print(f"artifact written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
