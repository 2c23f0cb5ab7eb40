#!/usr/bin/env bash
# The 3D patch U-Net of the comparison (bench/train_compare.sh, WHICH=3d: 8 epochs from scratch),
# trained on from its weights on the same randomised synthetic data. INIT, OUT, EPOCHS and LR override
# the defaults, KEEP (best|last) the weights kept, SEED the stream of renders and ANATOMIES the number
# of training anatomies (seeds from 100000; uncached ones are rasterised first, ~7 s each). A
# checkpoint of the best weights so far sits beside OUT while it runs. FAMILY (mrn|random) renders
# training volumes of that style family only; LOSS names the loss (default dice_ce) and SKELETON the skeleton
# recall term's weight with LOSS=dice_ce_skeleton.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${ANATOMIES:-48}
.venv/bin/ian train --synthetic $N --network unet3d --network-config '{"base": 12, "depth": 3}' --patch 32x96x96 \
  --batch-size 4 --epochs ${EPOCHS:-16} --lr ${LR:-6e-4} --steps-per-epoch ${STEPS:-150} --patience 100 --overwrite \
  --keep ${KEEP:-best} --seed ${SEED:-0} ${FAMILY:+--style-family $FAMILY} ${LOSS:+--loss $LOSS} ${SKELETON:+--skeleton-weight $SKELETON} \
  --init ${INIT:-bench/out/models/unet3d.pt} --out ${OUT:-bench/out/models/ian-default-3d.pt} \
  --trained-on "synthetic only: randomised renders${FAMILY:+ ($FAMILY looks)} of $N napari-ian phantom anatomies (seeds 100000-$((100000 + N - 1))); not patient data" \
  --quiet
