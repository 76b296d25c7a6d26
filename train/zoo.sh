#!/usr/bin/env bash
# Train and evaluate the shipped zoo on fold 0 (held-out test patients) of the full dataset.
# Usage: LGG_DATA_DIR=/path/to/kaggle_3m train/zoo.sh [model ...]
set -euo pipefail
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(resnet18 unet-mini unet-resnet34 attention-unet segnet unet)
for m in "${models[@]}"; do
  python -m train "$m" --fold 0 --out "artifacts/$m" --no-progress
  lgg evaluate "artifacts/$m"
done
