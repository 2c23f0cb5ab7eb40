"""The user-facing flows, written once: the CLI and the napari panels are thin adapters over these.

Progress and cancel follow the package's one convention (:mod:`.progress`): a ``progress``
callable given :class:`~.progress.Progress` events, and a ``cancel`` callable polled between
batches that stops the work with :class:`~.progress.Cancelled`.

* :func:`predict_case`: load a model, predict both nerves, fall back to the CPU when the GPU runs
  out of memory (and say so);
* :func:`finetune_case`: store a case's corrections, gather earlier cases if asked, fine-tune,
  save the new model exclusively under a free name;
* :func:`train_and_test`: train, then predict and score every test case.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np

from .progress import STAGE, ProgressCallback, check_cancel, report


@dataclasses.dataclass
class PredictResult:
    prediction: object        # predict.Prediction
    metadata: dict
    model_path: Path
    note: str | None = None   # e.g. the CPU fallback


def _out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, (RuntimeError, MemoryError)) and "out of memory" in str(exc).lower()


def predict_case(image: np.ndarray, spacing, model: str | Path | None = None, device: str = "auto", roi=None,
                 progress: ProgressCallback | None = None, cancel: Callable[[], bool] | None = None,
                 postprocess=True, fast: bool | None = None, backend: str = "auto") -> PredictResult:
    """Predict both IANs in a canonical volume with a registry model (name or path): the one
    predict flow behind ``ian predict``, the Predict panel and the Interactive panel
    (:func:`predict_loaded` with the model read from its file)."""
    from .modelfile import load_model
    from .registry import resolve_model

    path = resolve_model(model)
    net, meta = load_model(path)
    pred, note = predict_loaded(image, spacing, net, meta, device=device, roi=roi, progress=progress, cancel=cancel,
                                postprocess=postprocess, fast=fast, backend=backend)
    return PredictResult(pred, meta, path, note)


def predict_loaded(image: np.ndarray, spacing, net, meta: dict, device: str = "auto", roi=None,
                   progress: ProgressCallback | None = None, cancel: Callable[[], bool] | None = None,
                   postprocess=True, fast: bool | None = None, backend: str = "auto"):
    """:func:`~napari_ian.trainer.predict.predict_volume` as the user's commands run it;
    ``(prediction, note)``.

    ``fast``: a 3D patch model predicts in large tiles (``pipeline.FAST_TILE``); ``False``: in its
    training-size patches; ``None``: as the model does by default
    (:func:`~napari_ian.trainer.model_metadata.large_tiles_by_default`). ``backend``: what runs
    the network on the CPU (``auto`` takes OpenVINO where it is installed and faster).

    When the GPU runs out of memory on large tiles the prediction is repeated there in patches,
    and when it runs out in patches, on the CPU; ``note`` says which (None otherwise).
    ``progress`` gets ``infer`` events; ``cancel`` stops it between batches.
    """
    from .device import pick_device
    from .model_metadata import large_tiles_by_default
    from .pipeline import FAST_TILE
    from .predict import predict_volume

    if fast is None:
        fast = large_tiles_by_default(meta)
    gpu = pick_device(device).type.upper()
    # large tiles, then (a GPU short of memory) patches on the same GPU, then the CPU
    attempts = [(device, FAST_TILE if fast else None, None)]
    if fast:
        attempts.append((device, None, f"{gpu} ran out of memory on large tiles; predicted in patches instead"))
    attempts.append(("cpu", attempts[0][1], f"{gpu} ran out of memory; predicted on the CPU instead"))
    for i, (dev, tile, note) in enumerate(attempts):
        if i:
            _free_gpu_memory()
        try:
            return predict_volume(image, net, meta, spacing, device=dev, roi=roi, progress=progress, cancel=cancel,
                                  postprocess=postprocess, tile=tile, backend=backend), note
        except (RuntimeError, MemoryError) as exc:
            if not _out_of_memory(exc) or pick_device(dev).type == "cpu":
                raise


def _free_gpu_memory() -> None:
    try:
        import torch

        torch.cuda.empty_cache()
    except Exception:
        pass


@dataclasses.dataclass
class FinetuneOutcome:
    result: object            # finetune.FinetuneResult
    path: Path                # the new model file
    name: str
    data: object              # finetune.FinetuneData
    cases: int
    # the new model's prediction of this case, as ``ian predict`` makes it by default (3D models;
    # None otherwise): made for the after-score, so showing it costs no second run
    prediction: object = None


def finetune_case(case_key: str, image: np.ndarray, labels: np.ndarray, trusted: np.ndarray, spacing, *,
                  base: str | None, name: str, cfg, earlier: bool = False, store: bool = True,
                  replace_store: bool = False, progress: ProgressCallback | None = None,
                  cancel: Callable[[], bool] | None = None) -> FinetuneOutcome:
    """Fine-tune ``base`` on one case's trusted slices (and, with ``earlier``, the store's other
    cases) and save it as ``name``; the one flow behind ``ian finetune`` and the Fine-tune panel.

    Parameters
    ----------
    case_key : str
        The image's case key (stores the corrections under its hash).
    image, labels : canonical arrays on one grid
    trusted : (2, AP) bool
        Right and left coronal slices a person corrected or accepted.
    spacing : 3 floats, mm
    base : model name or path (default ``ian-default``)
    name : the new model's registry name (saved exclusively; an existing name is refused)
    cfg : :class:`napari_ian.trainer.finetune.FinetuneConfig`
    earlier : also train on the other cases of the corrections store
    store : add this case to the corrections store first (the flow trains on what the store holds)
    replace_store : replace a stored entry made on another image of the same case key
    progress, cancel : callable, optional
        A ``stage`` event at each phase, then the training loop's ``step`` and ``epoch`` events;
        ``cancel`` stops it before anything is saved (:mod:`napari_ian.trainer.progress`).
    """
    from .corrections import case_hash, list_corrections, load_corrections, save_corrections
    from .finetune import build_finetune_data, finetune, new_model_path, save_finetuned
    from .modelfile import load_model
    from .registry import resolve_model

    def say(message):
        report(progress, STAGE, message=message)

    new_model_path(name)   # a taken, bundled or malformed name is refused before any work
    if store:
        say("Saving the corrections to the store...")
        entry = save_corrections(case_key, image, labels, trusted, spacing, replace=replace_store)
        im, lab, tr, sp = load_corrections(entry)
        cases = [(entry.case, im, lab, tr, sp)]
    else:
        entry = None
        cases = [(case_hash(case_key) if case_key else "case", image, labels, trusted, tuple(spacing))]
    if earlier:
        for other in list_corrections():
            if other.case != cases[0][0]:     # this case's stored copy (even with store=False) is not another case
                cases.append((other.case, *load_corrections(other)))
    say("Loading the model and preparing slices...")
    base_path = resolve_model(base)
    model, meta = load_model(base_path)
    data = build_finetune_data(cases, meta, cfg, base_model=model)
    check_cancel(cancel)
    say(f"Training on {data.n_train} slice sides ({data.n_held_out} held out)...")
    result = finetune(model, meta, data, cfg, parent=base_path.stem, progress=progress, cancel=cancel,
                      keep_case=cases[0][0])
    check_cancel(cancel)
    path = save_finetuned(result, name)
    return FinetuneOutcome(result, path, name, data, len(cases), result.after_prediction)


@dataclasses.dataclass
class TestedCase:
    case: object              # data.Case
    result: dict              # evaluation.evaluate_volume's rows and per-side summaries
    seconds: float            # prediction time
    slices: int               # coronal slices x sides predicted


def train_and_test(train_cases, val_cases, test_cases, cfg, *, metadata=None, test_data=None,
                   postprocess: bool = True, min_component_mm3: float = 2.0, progress: ProgressCallback | None = None,
                   cancel: Callable[[], bool] | None = None, test: bool = True):
    """Train on ``train_cases`` (validating on ``val_cases``), then predict and score every test
    case: the one train-then-test flow behind ``ian train --data`` and ``ian cv``.

    Parameters
    ----------
    train_cases, val_cases, test_cases : lists of :class:`~napari_ian.trainer.data.Case`
    cfg : TrainConfig
    metadata : callable ``(history, best) -> dict``, optional
        The model's metadata (what prediction reads from it); by default the half-slice
        preprocessing of ``cfg``.
    test_data : list of ``(case, image, labels)``, optional
        Test cases already loaded (``ian cv`` loads each split's once for all its models).
    test : bool
        False skips testing (e.g. on the non-zero ranks under torchrun).
    progress, cancel : callable, optional
        A ``stage`` event saying how many slices were prepared (and how long that took), then the
        training loop's events (:mod:`napari_ian.trainer.progress`).

    Returns
    -------
    model, history, best, meta, tested : the trained network, its epoch history, the best
        epoch's record, the metadata and a :class:`TestedCase` per test case.
    """
    import time

    from .data import build_slices, load_case
    from .evaluation import evaluate_volume
    from .predict import predict_volume
    from .train import train_model

    t0 = time.perf_counter()
    tr_sets = build_slices(train_cases, cfg.size, cfg.context)
    va_sets = build_slices(val_cases, cfg.size, cfg.context)
    report(progress, STAGE, message=f"preprocessed {sum(len(s.x) for s in tr_sets)} training and "
           f"{sum(len(s.x) for s in va_sets)} validation side-slices in {time.perf_counter() - t0:.1f} s")
    model, history, best = train_model(tr_sets, va_sets, cfg, progress=progress, cancel=cancel)
    meta = (metadata(history, best) if metadata is not None
            else {"preprocessing": {"size": list(cfg.size), "context": cfg.context}})
    tested = []
    if test:
        for case, image, labels in (test_data if test_data is not None
                                    else ((c, *load_case(c)) for c in test_cases)):
            t0 = time.perf_counter()
            pred = predict_volume(image.data, model, meta, spacing=image.spacing, device=cfg.device,
                                  postprocess=postprocess, min_component_mm3=min_component_mm3)
            seconds = time.perf_counter() - t0
            tested.append(TestedCase(case, evaluate_volume(labels, pred.labels, image.spacing), seconds,
                                     2 * image.data.shape[0]))
    return model, history, best, meta, tested

