"""Train a model on a dataset folder, test it on held-out patients, save it with its metadata."""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from .data import patient_split, read_cases
from .evaluation import pooled_summary
from .modelfile import save_model, save_model_unique
from .progress import STAGE, ProgressCallback, report
from .train import TrainConfig
from .workflows import train_and_test


def run_training(data_dir, cfg: TrainConfig, out_path, *, trained_on: str = "", parent: str | None = None,
                 split_seed: int = 0, fractions=(0.7, 0.15, 0.15), progress: ProgressCallback | None = None, cancel=None,
                 max_test_cases: int | None = None, overwrite: bool = False):
    """Patient-level split, train, evaluate on the test patients, save. Returns the metadata.

    The model is saved as ``out_path``, replacing a file there only with ``overwrite``. Without
    it, a name another run took during training gets this model the next free name
    (``<name>-2``...): nothing is replaced and nothing trained is lost; a ``stage`` event says where
    it went. ``progress`` gets those messages and the training loop's events (:mod:`.progress`).
    """
    if int(os.environ.get("RANK", "0")) != 0:
        progress = None   # one voice under torchrun

    def log(message):
        report(progress, STAGE, message=message)

    cases = read_cases(data_dir)
    tr_ids, va_ids, te_ids = patient_split([c.patient_id for c in cases], fractions, split_seed)
    pick = lambda ids: [c for c in cases if c.patient_id in set(ids)]  # noqa: E731
    tr, va, te = pick(tr_ids), pick(va_ids), pick(te_ids)
    if max_test_cases:
        te = te[:max_test_cases]
    log(f"{len(cases)} cases: {len(tr)} train / {len(va)} validation / {len(te)} test (split by patient)")
    rank0 = int(os.environ.get("RANK", "0")) == 0   # under torchrun only rank 0 tests and saves

    def metadata(history, best):
        return {
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

    model, history, best, meta, tested = train_and_test(tr, va, te, cfg, metadata=metadata, progress=progress,
                                                        cancel=cancel, test=rank0)
    if not rank0:
        return None
    results = [t.result for t in tested]
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


def run_synthetic_training(cfg: TrainConfig, out_path, *, n_anatomies: int = 48, cache_dir="data/anatomy",
                           pool_size: int = 16, refresh_every: int = 6, validation_anatomies: int = 2,
                           trained_on: str = "", progress: ProgressCallback | None = None, cancel=None, init_state=None,
                           overwrite: bool = False, parent: str | None = None, family: str | None = None):
    """Train on randomised synthetic volumes (:mod:`.synthetic`) and save the model with its metadata.

    ``family``: render training volumes of this style family only (``"mrn"`` or ``"random"``, see
    ``sample_data.render.STYLE_RANGES``; default both, equally often); validation keeps both.

    Anatomies come from the training seed range and are cached in ``cache_dir``; validation uses
    anatomies of the validation seed range, never trained on. While it runs, the best weights so
    far are kept in ``<out>.checkpoint.pt`` (a complete model file; removed at the end), so a long
    run that is stopped leaves its best model behind. ``progress`` gets ``stage`` messages and the
    training loop's events (:mod:`.progress`). Returns the metadata.
    """
    from ..sample_data.synth import SEED_BASE, cached_anatomy
    from .pipeline import pipeline_from_dict
    from .synthetic import SyntheticSampler, VolumePool, validation_volumes, volume_validator
    from .train import build_model, fit

    def log(message):
        report(progress, STAGE, message=message)

    pipe = pipeline_from_dict(cfg.pipeline)
    sp = tuple(pipe.spacing_mm)
    t0 = time.perf_counter()
    train_seeds = [SEED_BASE["train"] + i for i in range(n_anatomies)]
    val_seeds = [SEED_BASE["validation"] + i for i in range(validation_anatomies)]
    anatomies = [cached_anatomy(s, cache_dir, sp) for s in train_seeds]
    val_anat = [cached_anatomy(s, cache_dir, sp) for s in val_seeds]
    log(f"{len(anatomies)} training and {len(val_anat)} validation anatomies ready in {time.perf_counter() - t0:.0f} s")
    val = validation_volumes(val_anat, pipe)
    del val_anat
    pool = VolumePool(anatomies, pipe, size=pool_size, refresh_every=refresh_every, seed=cfg.seed, family=family)
    pool.fill(cancel=cancel)
    log(f"pool of {pool_size} rendered volumes ready ({time.perf_counter() - t0:.0f} s)")
    sampler = SyntheticSampler(pool, pipe, cfg.batch_size, cfg.steps_per_epoch, cfg.patch, cfg.positive_fraction)
    from .nets import count_parameters

    checkpoint = Path(out_path).with_name(Path(out_path).stem + ".checkpoint.pt")

    def metadata(model, history, best):
        return {
            "network": cfg.network,
            "network_config": {k: v for k, v in build_model(cfg).config.items()},
            "preprocessing": pipe.to_dict(),
            "output": "nerve probability (either side); sides by the head's midline",
            "training": {**cfg.to_dict(), "data": "synthetic", "anatomy_seeds": [train_seeds[0], train_seeds[-1]],
                         "validation_seeds": val_seeds, "volumes_rendered": pool.rendered,
                         "style_family": family or "all", "families_rendered": dict(pool.families),
                         "render_failures": len(pool.failures), "epochs_run": len(history),
                         "best": best, "history": history, "machine": platform.machine(), "torch": torch.__version__,
                         "parameters": count_parameters(model)},
            "trained_on": trained_on,
            "parent": parent,
            "metrics": {"validation_dsc": best.get("val_dsc"),
                        "note": "mean coronal-slice DSC (working grid) on randomised renders of held-out phantom anatomies"},
        }

    def keep_best(model, history, best):
        save_model(checkpoint, model, metadata(model, history, {**best, "checkpoint": True}), overwrite=True)

    try:
        model, history, best = fit(build_model(cfg, init_state), sampler, volume_validator(pipe, val), cfg,
                                   progress=progress, cancel=cancel, on_best=keep_best)
    finally:
        pool.stop()
    meta = metadata(model, history, best)
    saved = save_model(out_path, model, meta, overwrite=True) if overwrite else save_model_unique(out_path, model, meta)
    checkpoint.unlink(missing_ok=True)
    log(f"saved {saved} ({time.perf_counter() - t0:.0f} s)")
    return meta
