#!/usr/bin/env bash
# Train and evaluate the shipped zoo on fold 0 of the full dataset (the held-out test patients are fold 0).
# Usage: LGG_DATA_DIR=/path/to/kaggle_3m train/zoo.sh [name ...]   (a name is a file in train/configs/)
# The shipped models were trained one per CPU core (OMP_NUM_THREADS=1) on a 2-core machine within each config's
# max_minutes; on faster hardware the same command runs more epochs in that budget (or all of `epochs`).
set -euo pipefail
cd "$(dirname "$0")/.."
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(resnet18 unet-mini unet-mini-std unet-mini-full128 unet-mobilenetv2 attention-unet segnet unet)
for name in "${names[@]}"; do
  python -m train "$name" --fold 0 --out "artifacts/$name" --no-progress --overwrite  # retrains on purpose
  lgg evaluate "artifacts/$name"
done
