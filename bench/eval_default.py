"""Accuracy of a model on phantom patients it never saw (the bundled model: seeds 1000-1029 trained).

Run: ``.venv/bin/python bench/eval_default.py --patients 8 --seed 2 [--model ian-default]``
(dataset seed 2 = phantom seeds 2000-2007). Prints Table 1/2-style numbers pooled over all test
nerves and the wall time of each whole-volume prediction. Phantom figures, not clinical ones.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from napari_ian.sample_data.dataset import patient_seed
from napari_ian.sample_data.phantom import make_phantom
from napari_ian.trainer.evaluation import evaluate_volume, pooled_summary
from napari_ian.trainer.modelfile import load_model
from napari_ian.trainer.predict import predict_volume
from napari_ian.trainer.registry import resolve_model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=8)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--model", default="ian-default")
    a = ap.parse_args()
    model, meta = load_model(resolve_model(a.model))
    results, times = [], []
    for i in range(a.patients):
        image, labels, spacing, _ = make_phantom(patient_seed(a.seed, i))
        t0 = time.perf_counter()
        pred = predict_volume(image, model, meta, spacing=spacing, device="cpu")
        times.append(time.perf_counter() - t0)
        results.append(evaluate_volume(labels, pred.labels, spacing))
    pooled = pooled_summary(results)
    d, fr = pooled["dsc"], pooled["failure_rates"]
    keys = ("iou", "precision", "recall")
    from napari_ian.trainer.nets import count_parameters

    print(f"model {a.model}: {meta['network']} {meta['network_config']}, {count_parameters(model) / 1e6:.2f} M "
          f"parameters, trained on: {meta.get('trained_on')}")
    t = meta.get("training", {})
    print(f"training: {t.get('epochs_run')} epochs run, best {t.get('best')}; its own held-out test patients: "
          f"{meta.get('metrics')}")
    print(f"{a.patients} unseen phantom patients (dataset seed {a.seed}), {2 * a.patients} nerves, "
          f"{pooled['n_slices']} reference-positive coronal slices")
    print(f"DSC {d['mean']:.3f} ± {d['sd']:.3f} ({d['median']:.3f})")
    for k in keys:
        v = np.concatenate([[r[k] for r in res['rows'] if r['tp'] + r['fn'] > 0] for res in results])
        v = v[np.isfinite(v)]
        print(f"{k} {v.mean():.3f} ± {v.std(ddof=1):.3f} ({np.median(v):.3f})")
    print(f"failure rates (cumulative): complete {fr['complete']:.1%}, tracking {fr['tracking']:.1%}, "
          f"boundary {fr['boundary']:.1%}")
    s3 = [s for r in results for s in r["sides"].values()]
    print(f"per nerve: 3D DSC {np.nanmean([s['dsc_3d'] for s in s3]):.3f}, HD95 {np.nanmean([s['hd95_mm'] for s in s3]):.2f} mm, "
          f"VS {np.nanmean([s['volumetric_similarity'] for s in s3]):.3f}, "
          f"slice-detection F1 {np.nanmean([s['slice_detection_f1'] for s in s3]):.3f}, "
          f"false-positive slices {sum(s['false_positive_slices'] for s in s3)}")
    print(f"predict wall time per volume: {np.mean(times):.2f} s (min {np.min(times):.2f}, max {np.max(times):.2f})")


if __name__ == "__main__":
    main()
