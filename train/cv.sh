#!/usr/bin/env bash
# Patient-level K-fold cross-validation of one model under the comparison protocol (README, "Cross-validation"):
# fold f's test patients are held out once, its validation patients are drawn from the other folds' patients, and
# every patient of the dataset is scored exactly once. Resumable like train/zoo.sh: an evaluated fold is skipped, a
# fold in progress resumes from its last epoch.
# Usage: LGG_DATA_DIR=/path/to/kaggle_3m train/cv.sh NAME [EPOCHS]   (NAME: a file in train/configs/)
# Writes artifacts/cv/NAME[-eEPOCHS]/fold-F/ and the pooled per-patient table patients.csv beside them.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
name=$1
epochs=${2:-}
k=5  # the split's default (lgg_core.data.splits); the protocol's fold 0 is the zoo's test set
out="artifacts/cv/$name${epochs:+-e$epochs}"
for ((fold = 0; fold < k; fold++)); do
  dir="$out/fold-$fold"
  if [ -f "$dir/eval/summary.json" ]; then echo "== $dir: evaluated"; continue; fi
  echo "== $dir: training ($(date -u +%H:%M:%S))"
  python -m train "$name" --fold "$fold" ${epochs:+--epochs "$epochs"} --out "$dir" --run-dir "runs/$dir" \
    --no-progress --overwrite
  python -m lgg_core.cli evaluate "$dir"
done
python -m lgg_core.cli crossval "$out"/fold-* --out "$out/patients.csv"
