#!/usr/bin/env bash
# The bundled model: the 2.5D U-Net of the comparison (bench/train_compare.sh, k3), trained on for
# longer from its weights on the same randomised synthetic data. Writes bench/out/models/ian-default-v2.pt
# (a checkpoint of the best weights so far beside it while it runs). INIT and OUT override the
# start and the output: the bundled model is k3 (8 epochs) -> 9 epochs -> 16 epochs, each run
# starting from the last one's weights; v4 continues v3 for 24 epochs at LR=4e-4. CONTEXT=7 widens
# the slice context (the start's input convolution goes to the middle channels, see train.widen_context).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ian train --synthetic 48 --network unet --context ${CONTEXT:-3} --patch 128x128 --batch-size 24 \
  --epochs ${EPOCHS:-40} --lr ${LR:-1e-3} --steps-per-epoch ${STEPS:-150} --patience 100 --overwrite \
  --init ${INIT:-bench/out/models/unet25d_k3.pt} --out ${OUT:-bench/out/models/ian-default-v2.pt} \
  --trained-on "synthetic only: randomised renders of 48 napari-ian phantom anatomies (seeds 100000-100047); not patient data" \
  --quiet
