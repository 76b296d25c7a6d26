#!/usr/bin/env bash
# Train and evaluate every model of the comparison under one protocol (train/configs/protocol/*.toml; docs/training.md,
# "Training protocol"), one model at a time, in this order. Safe to stop and start again: a model whose artifact
# was already evaluated under the protocol is skipped, and a model in progress resumes from its last epoch.
# Usage: LGG_DATA_DIR=/path/to/kaggle_3m train/zoo.sh [name ...]   (a name is a file in train/configs/)
# Classifiers go first: unet-resnet50-frozen and -transfer start from resnet50's encoder, the ensemble needs three.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"  # other work on the host must not stall the run (issue 9)
protocol=$(sed -n 's/^protocol = "\(.*\)"/\1/p' train/configs/protocol/segment.toml)
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(
  resnet50 resnet18 inception-v3 inception-resnet-v2
  cnn-encdec unet-mini resnet-encdec segformer unet-mobilenetv2 segnet unet attention-unet fpn unet-resnet34
  unet-resnet50-frozen unet-resnet50-transfer unet-resnet50 unetplusplus unet-vgg16 deeplabv3plus
)
done_under_protocol() {
  [ -f "artifacts/$1/eval/summary.json" ] && python - "$1" "$protocol" <<'PY'
import json, sys
from lgg_core.serving.artifact_config import ArtifactConfig
spec = ArtifactConfig.parse(json.load(open(f"artifacts/{sys.argv[1]}/config.json")))
sys.exit(spec.training.protocol != sys.argv[2])
PY
}
for name in "${names[@]}"; do
  if done_under_protocol "$name"; then echo "== $name: done under $protocol"; continue; fi
  echo "== $name: training ($(date -u +%H:%M:%S))"
  python -m train "$name" --out "artifacts/$name" --run-dir "runs/zoo/$name" --no-progress --overwrite
  python -m lgg_core.cli evaluate "artifacts/$name"
done
