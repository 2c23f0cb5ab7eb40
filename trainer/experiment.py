"""Train a model on a dataset folder, test it on held-out patients, save it with its metadata."""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from .data import build_slices, load_case, patient_split, read_cases
from .evaluation import evaluate_volume, pooled_summary
from .modelfile import save_model, save_model_unique
from .predict import predict_volume
from .train import TrainConfig, train_model


def run_training(data_dir, cfg: TrainConfig, out_path, *, trained_on: str = "", parent: str | None = None,
                 split_seed: int = 0, fractions=(0.7, 0.15, 0.15), callbacks=None, cancel=None, log=print,
                 max_test_cases: int | None = None, overwrite: bool = False):
    """Patient-level split, train, evaluate on the test patients, save. Returns the metadata.

    The model is saved as ``out_path``, replacing a file there only with ``overwrite``. Without
    it, a name another run took during training gets this model the next free name
    (``<name>-2``...): nothing is replaced and nothing trained is lost; ``log`` says where it went.
    """
    if int(os.environ.get("RANK", "0")) != 0:
        log = lambda *a, **k: None  # noqa: E731  one voice under torchrun
    cases = read_cases(data_dir)
    tr_ids, va_ids, te_ids = patient_split([c.patient_id for c in cases], fractions, split_seed)
    pick = lambda ids: [c for c in cases if c.patient_id in set(ids)]  # noqa: E731
    tr, va, te = pick(tr_ids), pick(va_ids), pick(te_ids)
    if max_test_cases:
        te = te[:max_test_cases]
    log(f"{len(cases)} cases: {len(tr)} train / {len(va)} validation / {len(te)} test (split by patient)")
    t0 = time.perf_counter()
    tr_sets = build_slices(tr, cfg.size, cfg.context)
    va_sets = build_slices(va, cfg.size, cfg.context)
    log(f"preprocessed {sum(len(s.x) for s in tr_sets)} training and {sum(len(s.x) for s in va_sets)} "
        f"validation side-slices in {time.perf_counter() - t0:.1f} s")
    model, history, best = train_model(tr_sets, va_sets, cfg, callbacks=callbacks, cancel=cancel)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 tests and saves
        return None
    meta = {
        "network": cfg.network,
        "network_config": {**cfg.network_config, "in_channels": cfg.context},
        "preprocessing": {"size": list(cfg.size), "context": cfg.context, "sides": "midline split, left mirrored",
                          "intensity": "per-slice min-max to [0, 1]", "resize": "aspect-preserving Lanczos, zero pad",
                          "orientation": "canonical PIL, coronal slices"},
        "training": {**cfg.to_dict(), "train_cases": [c.case_id for c in tr], "val_cases": [c.case_id for c in va],
                     "test_cases": [c.case_id for c in te], "epochs_run": len(history), "best": best,
                     "history": history, "machine": platform.machine(), "torch": torch.__version__},
        "trained_on": trained_on,
        "parent": parent,
    }
    results = []
    for c in te:
        image, labels = load_case(c)
        pred = predict_volume(image.data, model, meta, spacing=image.spacing)
        results.append(evaluate_volume(labels, pred.labels, image.spacing))
    if results:
        pooled = pooled_summary(results)
        meta["metrics"] = {"test_dsc_mean": pooled["dsc"]["mean"], "test_dsc_sd": pooled["dsc"]["sd"],
                           "test_dsc_median": pooled["dsc"]["median"], "test_slices": pooled["n_slices"],
                           "test_failure_rates": pooled["failure_rates"],
                           "test_hd95_mm_mean": float(np.nanmean([s["hd95_mm"] for r in results for s in r["sides"].values()])),
                           "note": "coronal-slice metrics over the held-out test patients"}
        log(f"test: DSC {pooled['dsc']['mean']:.3f} ± {pooled['dsc']['sd']:.3f} ({pooled['dsc']['median']:.3f}) over "
            f"{pooled['n_slices']} slices; complete failures {pooled['failure_rates']['complete']:.1%}")
    saved = save_model(out_path, model, meta, overwrite=True) if overwrite else save_model_unique(out_path, model, meta)
    if saved.name != Path(out_path).name:
        log(f"{out_path}: another run saved a model under this name during training; this one is saved as "
            f"{saved.stem} instead")
    log(f"saved {saved}")
    return meta
