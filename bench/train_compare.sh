#!/usr/bin/env bash
# Issue 7 network/context comparison: three models trained on the same randomised synthetic data
# for the same number of epochs, then scored by bench/eval_styles.py on held-out anatomies and styles.
set -euo pipefail
cd "$(dirname "$0")/.."
IAN=.venv/bin/ian
OUT=bench/out/models
mkdir -p "$OUT"
common=(--synthetic 48 --epochs ${EPOCHS:-8} --steps-per-epoch ${STEPS:-150} --patience 100 --overwrite --quiet)
for which in ${WHICH:-k3 k7 3d}; do
  case $which in
    k3) $IAN train "${common[@]}" --network unet --context 3 --patch 128x128 --batch-size 24 \
          --out $OUT/unet25d_k3.pt --trained-on "synthetic (48 randomised phantom anatomies)" ;;
    k5) $IAN train "${common[@]}" --network unet --context 5 --patch 128x128 --batch-size 24 \
          --out $OUT/unet25d_k5.pt --trained-on "synthetic (48 randomised phantom anatomies)" ;;
    k7) $IAN train "${common[@]}" --network unet --context 7 --patch 128x128 --batch-size 24 \
          --out $OUT/unet25d_k7.pt --trained-on "synthetic (48 randomised phantom anatomies)" ;;
    3d) $IAN train "${common[@]}" --network unet3d --network-config '{"base": 12, "depth": 3}' --patch 32x96x96 \
          --batch-size 4 --out $OUT/unet3d.pt --trained-on "synthetic (48 randomised phantom anatomies)" ;;
  esac
done
