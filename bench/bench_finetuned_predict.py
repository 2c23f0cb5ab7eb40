"""What the Fine-tune panel's "Predict this case with ..." and ``ian finetune --out`` no longer
repeat: a fine-tuned model's prediction of the sample patient, as ``ian predict --model NEW``
makes it (OpenVINO float32 where OpenVINO runs, training-size patches), in this process.

A fine-tuned model is stood in for by the bundled weights with the head's bias moved by 1e-3 (so
no int8 version matches them, as for any fine-tune) and metadata that says it was fine-tuned (so
it predicts in patches). The first round also loads the converted network from OpenVINO's cache
(or converts it, the first time on a machine), which the fine-tune's own after-score has done
by the time a user clicks.

Run: ``.venv/bin/python bench/bench_finetuned_predict.py [--rounds 4]``.
"""
from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

from napari_ian._sample_data import phantom_layers
from napari_ian.trainer.modelfile import load_model
from napari_ian.trainer.registry import resolve_model
from napari_ian.trainer.workflows import predict_loaded


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    (image, kwargs, _), _ = phantom_layers()
    image, spacing = np.asarray(image, np.float32), tuple(kwargs["scale"])
    model, meta = load_model(resolve_model("ian-default"))
    tuned = copy.deepcopy(model)
    with torch.no_grad():
        tuned.head.bias.add_(1e-3)
    meta = {**meta, "finetune": {"parent": "ian-default"}}
    print(f"sample patient {image.shape}, {torch.get_num_threads()} threads")
    for i in range(args.rounds):
        t0 = time.perf_counter()
        pred, _ = predict_loaded(image, spacing, tuned, meta, device="cpu")
        note = " (loading or converting the network too)" if i == 0 else ""
        print(f"round {i}: {time.perf_counter() - t0:.1f} s ({pred.ran_on}){note}", flush=True)


if __name__ == "__main__":
    main()
