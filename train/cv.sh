#!/usr/bin/env bash
# Patient-level K-fold cross-validation of one model under the comparison protocol (docs/training.md, "Cross-validation"):
# fold f's test patients are held out once, its validation patients are drawn from the other folds' patients, and
# every patient of the dataset is scored exactly once. Resumable like train/zoo.sh: an evaluated fold is skipped, a
# fold in progress resumes from its last epoch.
# Usage: LGG_DATA_DIR=/path/to/kaggle_3m train/cv.sh NAME [EPOCHS [FROM]]   (NAME: a file in train/configs/)
# Writes artifacts/cv/NAME[-eEPOCHS]/fold-F/ and the pooled per-patient table patients.csv beside them. With FROM (an
# earlier run folder of NAME), fold F instead continues from FROM/fold-F for EPOCHS more epochs (init_from, a fresh
# schedule) into FROM+eEPOCHS/: a longer run that reuses the finished one. Otherwise a model whose
# encoder starts from a classifier (encoder_init) gets that classifier trained on the same fold first
# (CLASSIFIER-fold-F/, at the protocol's epochs): the protocol's own one saw other folds' test patients, and training
# refuses it.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
name=$1
epochs=${2:-}
from=${3:-}
k=5  # the split's default (lgg_core.data.splits); the protocol's fold 0 is the zoo's test set
out="artifacts/cv/$name${epochs:+-e$epochs}"
encoder_init=$(python -c "from train.__main__ import load_config; print(load_config('$name').get('encoder_init') or '')")
if [ -n "$from" ]; then
  [ -n "$epochs" ] || { echo "cv.sh: FROM needs EPOCHS" >&2; exit 2; }
  out="${from%/}+e$epochs"
  encoder_init=""  # every weight comes from FROM's fold, which passed its own leak check
fi
train_fold() {  # DIR FOLD CONFIG [python -m train options...]
  local dir=$1 fold=$2 config=$3
  shift 3
  if [ -f "$dir/eval/summary.json" ]; then echo "== $dir: evaluated"; return; fi
  echo "== $dir: training ($(date -u +%H:%M:%S))"
  python -m train "$config" --fold "$fold" --out "$dir" --run-dir "runs/$dir" --no-progress --overwrite "$@"
  python -m lgg_core.cli evaluate "$dir"
}
for ((fold = 0; fold < k; fold++)); do
  init=()
  if [ -n "$from" ]; then
    init=(--set "init_from=${from%/}/fold-$fold" --set encoder_init=null)
  elif [ -n "$encoder_init" ]; then
    classifier=$(basename "$encoder_init")
    train_fold "$out/$classifier-fold-$fold" "$fold" "$classifier"
    init=(--set "encoder_init=$out/$classifier-fold-$fold")
  fi
  train_fold "$out/fold-$fold" "$fold" "$name" ${epochs:+--epochs "$epochs"} "${init[@]}"
done
python -m lgg_core.cli crossval "$out"/fold-* --out "$out/patients.csv"
