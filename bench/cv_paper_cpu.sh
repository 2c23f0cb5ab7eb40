#!/usr/bin/env bash
# Issue 13: the source study's seven-network comparison (ian cv --paper) end to end on the CPU,
# reduced to fit a shared 2-core machine: few phantom patients, one split, few epochs, the
# bundled model's 64 x 160 half-slice input instead of 256 x 256. Runs at the lowest priority so
# other jobs keep their share.
#   WIDTHS=published (default): every network at its published width.
#   WIDTHS=reduced: narrower networks (same designs), so that the same time buys more training.
# Environment: PATIENTS (3), EPOCHS (2), BATCH (16), REPEATS (1), SIZE (64x160), OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
IAN=.venv/bin/ian
PATIENTS=${PATIENTS:-3}
DATA=data/phantom$PATIENTS
WIDTHS=${WIDTHS:-published}
OUT=${OUT:-bench/out/cv_paper_cpu_$WIDTHS}
models=()
if [ "$WIDTHS" = reduced ]; then
  models=(--model 'IANNet=iannet:{"stem": 32}'
          --model 'CaraNet=caranet:{"backbone": "res2net50", "stem": 32}'
          --model 'DS-TransUNet=ds-transunet:{"primary": "swin-mini", "secondary": "swin-mini"}'
          --model 'DUCK-Net=duck-net:{"filters": 8}'
          --model 'DeepLabV3+=deeplabv3plus:{"base": 32}'
          --model 'HarDNet-MSEG=hardnet-mseg'
          --model 'MEGANet=meganet:{"stem": 32}')
fi
[ -f "$DATA/cases.csv" ] || nice -n 19 $IAN phantom --out "$DATA" --patients "$PATIENTS" --seed 13 --no-dicom --quiet
rm -rf "$OUT"
/usr/bin/time -v nice -n 19 $IAN cv --data "$DATA" --out "$OUT" --paper --device cpu "${models[@]}" \
  --epochs "${EPOCHS:-2}" --patience "${EPOCHS:-2}" --repeats "${REPEATS:-1}" --size "${SIZE:-64x160}" \
  --batch-size "${BATCH:-16}" 2>&1 | tee "$OUT.log"
