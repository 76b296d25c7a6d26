#!/usr/bin/env bash
# The recipe search (issue 19): one lever at a time on a cheap model, scored on validation patients only, on two
# draws (fold 0's and fold 1's 18 validation patients). Each run is `python -m train` with the protocol's config
# and one change; its record (config.json with each validation patient's Dice, epochs.csv, split.json) lands in
# artifacts/recipes/<name>; its weights stay out of git. `lgg recipes artifacts/recipes` prints the table.
# Safe to stop and start again: a finished run is skipped, a run in progress resumes from its last epoch.
# Usage: LGG_DATA_DIR=/path/to/kaggle_3m train/recipes.sh [name ...]
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
# name | model | fold | changes from the protocol (python -m train options)
runs=(
  "f1-unet-mini|unet-mini|1|"
  "f1-unet-mini-flair25d|unet-mini|1|--set inputs=flair-2.5d"
  "f0-unet-mini-flair25d|unet-mini|0|--set inputs=flair-2.5d"
  "f0-unet-mini|unet-mini|0|"
  "f1-unet-mini-mdrop15|unet-mini|1|--set modality_dropout=0.15"
  "f0-unet-mini-mdrop15|unet-mini|0|--set modality_dropout=0.15"
  "f0-unet-mini-flair25d-e16|unet-mini|0|--set inputs=flair-2.5d --epochs 16"
  "f1-unet-mini-flair25d-e16|unet-mini|1|--set inputs=flair-2.5d --epochs 16"
  "f0-unet-flair25d|unet|0|--set inputs=flair-2.5d"
)
wanted=("$@")
for run in "${runs[@]}"; do
  IFS='|' read -r name model fold changes <<<"$run"
  if [ ${#wanted[@]} -gt 0 ] && [[ ! " ${wanted[*]} " =~ " $name " ]]; then continue; fi
  if [ -f "artifacts/recipes/$name/config.json" ]; then echo "== $name: done"; continue; fi
  echo "== $name: training ($(date -u +%H:%M:%S))"
  # shellcheck disable=SC2086  # changes are separate options
  python -m train "$model" --fold "$fold" $changes --out "artifacts/recipes/$name" --run-dir "runs/recipes/$name" \
    --no-progress
done
