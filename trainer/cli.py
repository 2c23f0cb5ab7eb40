"""The ``ian`` command line: phantom, info, train, finetune, predict, evaluate, cv, networks, models, convert.

Every failure the user can cause prints one line, ``ian: <path>: <problem>``, and exits with
status 2; no traceback. Before any work, each command checks that none of its outputs is one
of its inputs or another output, and that each can be written (:mod:`.output_paths`); nothing
is created until the work is done. What the user should know about an input but that does not
stop the work (non-finite voxels, not an MR image, a slightly sheared grid) is said once, on one
line of stderr: ``ian: warning: <path>: <fact>``.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import warnings
from pathlib import Path

import numpy as np

from .progress_console import ConsoleProgress

LOSS_CHOICES = ("focal_tversky", "dice", "bce", "dice_ce", "dice_ce_skeleton")
"""``--loss`` names (:data:`napari_ian.trainer.losses.LOSSES`; kept here so that parsing needs no torch)."""

MAX_MESSAGE = 400   # characters of an error line; the rest is cut (a listing must not flood the terminal)


def _cmd_phantom(args) -> int:
    from ..sample_data.dataset import write_dataset
    from .output_paths import check_writable

    check_writable(args.out, "--out", folder=True)

    with ConsoleProgress(bars=not args.quiet, desc="phantom", unit="patient") as progress:
        table = write_dataset(args.out, args.patients, seed=args.seed, dicom=not args.no_dicom,
                              overwrite=args.overwrite, progress=progress)
    print(f"wrote {args.patients} phantom patient(s) to {args.out} (cases table: {table})")
    return 0


def _format_info(info: dict) -> str:
    width = max(len(k) for k in info)
    return "\n".join(f"{k:<{width}}  {v if not isinstance(v, tuple) else ' x '.join(str(x) for x in v)}"
                     for k, v in info.items())


def _cmd_info(args) -> int:
    from .errors import GeometryMissingError
    from .io import read_volume

    try:
        vol = read_volume(args.path, series_uid=args.series)
    except GeometryMissingError as exc:
        # an image that records too little geometry: describe what it does record
        print(_format_info({"source": exc.path, **exc.facts}))
        print(f"not openable as a volume: {exc.problem}")
        return 0
    print(_format_info(vol.info()))
    return 0


def _cmd_train(args) -> int:
    import json

    from .data import read_cases
    from .experiment import run_synthetic_training, run_training
    from .output_paths import check_outputs
    from .registry import user_model_path
    from .train import TrainConfig

    if (args.data is None) == (args.synthetic is None):
        raise ValueError("ian train: give --data DIR (labelled cases) or --synthetic N (randomised phantom anatomies)")
    net_cfg = json.loads(args.network_config) if args.network_config else (
        {"base": 16, "depth": 4} if args.network == "unet" else {})
    if args.validation_anatomies < 1:
        raise ValueError(f"ian train: --validation-anatomies must be at least 1 (got {args.validation_anatomies})")
    pipeline = None
    if args.synthetic is not None:
        from .pipeline import Patches3D, Slices25D

        patch = tuple(int(v) for v in args.patch.split("x"))
        pipe = Patches3D(patch=patch) if len(patch) == 3 else Slices25D(context=args.context)
        pipe.flip_tta = args.flip_tta
        pipeline = pipe.to_dict()
    loss = args.loss or ("dice_ce" if args.synthetic is not None else "focal_tversky")
    loss_params = None
    if args.skeleton_weight is not None:
        if loss != "dice_ce_skeleton":
            raise ValueError(f"ian train: --skeleton-weight goes with --loss dice_ce_skeleton (the loss is {loss})")
        if not args.skeleton_weight > 0:
            raise ValueError(f"ian train: --skeleton-weight must be above 0 (got {args.skeleton_weight})")
        loss_params = {"skeleton_weight": args.skeleton_weight}
    cfg = TrainConfig(network=args.network, network_config=net_cfg, context=args.context,
                      size=tuple(int(v) for v in args.size.split("x")), loss=loss, loss_params=loss_params,
                      lr=args.lr, weight_decay=args.weight_decay, epochs=args.epochs, batch_size=args.batch_size,
                      patience=args.patience, seed=args.seed, device=args.device, augment=not args.no_augment,
                      pipeline=pipeline, patch=tuple(int(v) for v in args.patch.split("x")),
                      steps_per_epoch=args.steps_per_epoch, select=args.keep)
    out = Path(args.out) if args.out else user_model_path(args.name)
    inputs = {}
    if args.data is not None:
        inputs = {"the data folder": args.data, "the cases table": Path(args.data) / "cases.csv"}
        for c in read_cases(args.data):
            inputs.update({f"the image of case {c.case_id}": c.image, f"the labels of case {c.case_id}": c.labels})
    # find a clash or an unwritable destination before training, not after
    check_outputs(inputs, {"--out" if args.out else "the model file": out})
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out}: a model with this name exists; choose another --name or pass --overwrite")
    init = None
    if args.init:
        from .modelfile import load_model
        from .registry import resolve_model

        init = load_model(resolve_model(args.init))[0].state_dict()

    with ConsoleProgress(bars=not args.quiet) as progress:
        if args.synthetic is not None:
            run_synthetic_training(cfg, out, n_anatomies=args.synthetic, cache_dir=args.anatomy_cache,
                                   validation_anatomies=args.validation_anatomies, trained_on=args.trained_on,
                                   progress=progress, init_state=init, family=args.style_family,
                                   overwrite=args.overwrite, parent=Path(args.init).stem if args.init else None)
        else:
            run_training(args.data, cfg, out, trained_on=args.trained_on, split_seed=args.split_seed,
                         progress=progress, overwrite=args.overwrite)
    return 0


def _cmd_finetune(args) -> int:
    import time

    from .data import Case, load_case
    from .cli_args import parse_slices
    from .finetune import FinetuneConfig, new_model_path
    from .io_nifti import is_nifti_path
    from .output_paths import check_outputs, refuse_existing
    from .registry import resolve_model
    from .volume import CORONAL_AXIS
    from .workflows import finetune_case, predict_case

    if not 0 <= args.rehearsal_share < 1:
        raise ValueError(f"ian finetune: --rehearsal-share must be at least 0 and below 1 (got {args.rehearsal_share:g})")
    if args.out is not None and not is_nifti_path(args.out):
        raise ValueError(f"--out {args.out}: must end in .nii or .nii.gz")
    target = new_model_path(args.name)   # refuses bundled, malformed and taken names before any work
    base = resolve_model(args.base)
    check_outputs({"--image": args.image, "--labels": args.labels, "the base model": base},
                  {"the new model": target, "--out": args.out})
    refuse_existing({"--out": args.out}, args.overwrite)
    # the dataset loader's checks: labels on the image's grid, values 0/1/2 only
    vol, labels = load_case(Case("cli", "cli", Path(args.image), Path(args.labels)))
    native = parse_slices(args.slices, vol.data.shape[CORONAL_AXIS])   # as many slices in either numbering
    canon = vol.geometry.canonical_index(CORONAL_AXIS, native)
    trusted = np.zeros((2, vol.data.shape[0]), bool)
    trusted[:, canon] = True
    cfg = FinetuneConfig(epochs=args.epochs, lr=args.lr, holdout=args.holdout, seed=args.seed, device=args.device,
                         pseudo_labels=not args.no_pseudo_labels, rehearsal_share=args.rehearsal_share,
                         freeze_first_block=not args.train_first_block)
    t0 = time.perf_counter()

    with ConsoleProgress(bars=not args.quiet, lines=not args.quiet, score="held-out DSC") as progress:
        out = finetune_case(vol.geometry.case_key or f"file:{Path(args.image).resolve()}", vol.data, labels,
                            trusted, vol.spacing, base=str(base), name=args.name, cfg=cfg, earlier=args.earlier,
                            store=not args.no_store, progress=progress)
    data, result, path = out.data, out.result, out.path
    if path.stem != args.name:
        print(f"ian: {target}: another run saved a model called {args.name!r} meanwhile; this one is saved as "
              f"{path.stem!r} instead", file=sys.stderr)
    n_pseudo = sum(w.n_pseudo for w in data.work)
    print(f"{len(native)} coronal slices -> {data.n_train} slice sides trained on ({data.n_train_nerve} with "
          f"nerve), {data.n_held_out} held out" + (f", {n_pseudo} in between pseudo-labelled" if n_pseudo else ""),
          flush=True)
    b, a = result.before["held_out_dsc"], result.after["held_out_dsc"]
    print(f"held-out DSC before {b:.3f}, after {a:.3f}" if data.n_held_out else
          "no slices held out (--holdout 0, or fewer than 4 slices with nerve per side): no before/after figure")
    if result.worse:
        print("warning: fine-tuning made the held-out slices worse; keep using the base model or correct more slices")
    print(f"saved {path} ({time.perf_counter() - t0:.0f} s); use it with: ian predict --model {path.stem}")
    if args.out is not None:
        # made for the after-figure as `ian predict --model NEW` makes it; a model without one
        # (a 2.5D network's fine-tune scores slices only) predicts the image here
        pred = out.prediction or predict_case(vol.data, vol.spacing, path, device=args.device).prediction
        _write_prediction(args.out, pred, vol.geometry)
        print(f"wrote {args.out}: {path.stem}'s prediction of {args.image} ({pred.ran_on})")
    return 0


def _write_prediction(out: Path, pred, geometry, probability: Path | None = None) -> None:
    """A prediction's labels (and probability map) on the input's own grid and affine."""
    from .io_nifti import write_nifti

    write_nifti(out, pred.labels, geometry, dtype="uint8", description="napari-ian IAN 1=R 2=L")
    if probability:
        write_nifti(probability, pred.probability, geometry, dtype="float32", description="napari-ian IAN probability")


_ROI_PART = re.compile(r"\s*(\d+|\d*\s*:\s*\d*)\s*")


def _check_roi_syntax(text: str) -> None:
    """Refuse a malformed ``--roi`` before any work (its ranges are checked against the image later)."""
    parts = text.split(",")
    bad = [p for p in parts if not _ROI_PART.fullmatch(p)]
    if len(parts) != 3 or bad:
        what = f"{bad[0]!r} is not a range of voxel numbers" if bad else "give three ranges"
        raise ValueError(f"--roi {text!r}: {what}; expected AP,SI,RL ranges such as 20:110,:,:")


def _cmd_predict(args) -> int:
    import time

    from .io import read_volume
    from .io_nifti import is_nifti_path
    from .output_paths import check_outputs, refuse_existing
    from .cli_args import parse_roi
    from .predict import doubt_line
    from .registry import resolve_model
    from .workflows import predict_case

    for flag, target in (("--out", args.out), ("--probability", args.probability)):
        if target is not None and not is_nifti_path(target):
            raise ValueError(f"{flag} {target}: must end in .nii or .nii.gz")
    if args.roi:
        _check_roi_syntax(args.roi)
    model_path = resolve_model(args.model)
    # an output over the input (or over the other output) is refused before the work, not after it
    outputs = {"--out": args.out, "--probability": args.probability}
    check_outputs({"the input image": args.input, "the model file": model_path}, outputs)
    refuse_existing(outputs, args.overwrite)
    t0 = time.perf_counter()
    vol = read_volume(args.input)
    roi = parse_roi(args.roi, vol.data.shape) if args.roi else None
    with ConsoleProgress(bars=not args.quiet, desc="predict") as progress:
        res = predict_case(vol.data, vol.spacing, model_path, device=args.device, roi=roi, progress=progress,
                           postprocess=not args.no_postprocess, fast=_large_tiles(args), backend=args.backend)
    pred = res.prediction
    if res.note:
        print(f"note: {res.note}", file=sys.stderr)
    _write_prediction(args.out, pred, vol.geometry, args.probability)
    n1, n2 = int((pred.labels == 1).sum()), int((pred.labels == 2).sum())
    print(f"wrote {args.out}: right IAN {n1} voxels, left IAN {n2} voxels "
          f"({pred.ran_on}, "
          f"{time.perf_counter() - t0:.1f} s)")
    print(doubt_line(pred))
    return 0


def _cmd_evaluate(args) -> int:
    from .atomic import atomic_write_text
    from .evaluation import evaluate_volume, format_summary, rows_to_csv
    from .io import read_volume
    from .output_paths import check_outputs, refuse_existing

    check_outputs({"the reference": args.reference, "the prediction": args.prediction}, {"--csv": args.csv})
    refuse_existing({"--csv": args.csv}, args.overwrite)
    ref, pred = read_volume(args.reference), read_volume(args.prediction)
    if ref.data.shape != pred.data.shape or not np.allclose(ref.geometry.canonical_affine,
                                                            pred.geometry.canonical_affine, atol=1e-3):
        raise ValueError(f"{args.prediction}: not on the reference's grid (shape {pred.data.shape} vs "
                         f"{ref.data.shape}, or another affine)")
    for v, p in ((ref, args.reference), (pred, args.prediction)):
        bad = [x for x in np.unique(v.data).tolist() if x not in (0, 1, 2)]
        if len(bad) > 5:
            raise ValueError(f"{p}: {len(bad)} values other than 0, 1, 2 (e.g. {', '.join(f'{x:g}' for x in bad[:3])}): "
                             "an image rather than labels?")
        if bad:
            raise ValueError(f"{p}: label values {bad} (expected 0, 1 = right, 2 = left)")
    result = evaluate_volume(ref.data, pred.data, ref.spacing)
    print(format_summary(result))
    if args.csv:
        atomic_write_text(args.csv, rows_to_csv(result["rows"]))
        print(f"per-slice table: {args.csv}")
    return 0


def _cmd_models(args) -> int:
    from .registry import list_models, user_models_dir

    entries = list_models(include_broken=True)   # a damaged file is listed as such, never fatal
    if not entries:
        print("no models")
    for e in entries:
        print(e.line())
    print(f"user models: {user_models_dir()}")
    return 0


_CV_SPLITS = {"repeats": 10, "fractions": (0.7, 0.15, 0.15), "postprocess": True}   # ian cv without --paper
_CV_TRAINING = ("epochs", "patience", "batch_size", "size", "context", "lr", "weight_decay", "loss", "augment")


def _cv_settings(args) -> dict:
    """Each ``ian cv`` setting: the one given, else the paper's (with --paper), else the default."""
    from .cv import PAPER_PROTOCOL
    from .train import TrainConfig

    plain = TrainConfig()
    preset = {**{k: getattr(plain, k) for k in _CV_TRAINING}, **_CV_SPLITS, **(PAPER_PROTOCOL if args.paper else {})}
    given = {"epochs": args.epochs, "patience": args.patience, "batch_size": args.batch_size,
             "size": tuple(int(v) for v in args.size.split("x")) if args.size else None, "context": args.context,
             "lr": args.lr, "weight_decay": args.weight_decay, "loss": args.loss, "augment": args.augment,
             "repeats": args.repeats, "postprocess": args.postprocess,
             "fractions": tuple(float(v) for v in args.fractions.split("/")) if args.fractions else None}
    out = {k: (given[k] if given[k] is not None else v) for k, v in preset.items()}
    total = sum(out["fractions"])
    out["fractions"] = tuple(f / total for f in out["fractions"])
    return out


def _cmd_cv(args) -> int:
    from .cli_args import parse_model_spec
    from .cv import PAPER_MODELS, paper_specs, run_cv
    from .data import read_cases
    from .output_paths import check_outputs
    from .train import TrainConfig

    read_cases(args.data)   # a missing or malformed dataset fails before --out is created
    check_outputs({"the data folder": args.data}, {"--out": args.out}, folders=("--out",))
    st = _cv_settings(args)
    base = TrainConfig(epochs=st["epochs"], patience=st["patience"], batch_size=st["batch_size"], size=st["size"],
                       context=st["context"], lr=st["lr"], weight_decay=st["weight_decay"], loss=st["loss"],
                       augment=st["augment"], device=args.device, seed=args.seed)
    if args.model:
        specs = [parse_model_spec(m, base, PAPER_MODELS if args.paper else None) for m in args.model]
    else:
        specs = paper_specs(base) if args.paper else [parse_model_spec("unet", base)]
    if args.paper:
        print(f"the paper's protocol: {', '.join(s.name for s in specs)}; {st['repeats']} x "
            f"{'/'.join(f'{f:.0%}' for f in st['fractions'])} patient splits, {st['size'][0]}x{st['size'][1]} 2D "
            f"slices (context {st['context']}), AdamW lr {st['lr']:g} wd {st['weight_decay']:g}, cosine, "
            f"{st['epochs']} epochs, batch {st['batch_size']}, patience {st['patience']}, {st['loss']} loss, "
            f"augmentation {'on' if st['augment'] else 'off'}, post-processing {'on' if st['postprocess'] else 'off'}")
    with ConsoleProgress() as progress:
        rep = run_cv(args.data, specs, args.out, repeats=st["repeats"], fractions=st["fractions"], seed=args.seed,
                     progress=progress, reference=args.reference, all_pairs=args.all_pairs,
                     postprocess=st["postprocess"])
    print((Path(args.out) / "table1.md").read_text())
    for c in rep["comparisons"]:
        if c["metric"] == "DSC":
            if c["p"] == "":
                print(f"DSC {c['model_a']} vs {c['model_b']}: {c['note']}")
                continue
            print(f"DSC {c['model_a']} vs {c['model_b']}: median difference {c['median_difference_a_minus_b']:+.3f}, "
                  f"p = {c['p_bonferroni']:.3g} (Bonferroni x{c['bonferroni_factor']})")
    return 0


def _cmd_networks(args) -> int:
    import json

    import torch

    from .cv import PAPER_MODELS
    from .nets import NETWORK_INFO, NETWORKS, build_network, count_macs, count_parameters, is_3d

    def size(name, **config):
        with torch.device("meta"):          # shapes only: nothing is allocated or computed
            net = build_network(name, **config)
        shape = (1, 1, 64, 64, 64) if is_3d(name) else (1, 1, 256, 256)
        return f"{count_parameters(net):>12,} {count_macs(net, shape) / 1e9:>6.1f}"

    with torch.no_grad():   # scoped: main() may run inside a process that trains afterwards
        pad = " " * 36
        print(f"{'network':<14} {'parameters':>12} {'GMAC':>6}  (per 256x256 slice; 3D: per 64x64x64 patch)")
        for name in NETWORKS:
            info = NETWORK_INFO[name]
            print(f"{name:<14} {size(name)}  {info.title}: {info.paper}", flush=True)
            paper_cfg = {k: v for k, v in PAPER_MODELS.get(name, {}).items() if k != "init"}
            if paper_cfg:
                print(f"{'':<14} {size(name, **paper_cfg)}  as in the paper's comparison (ian cv --paper): "
                      f"{json.dumps(paper_cfg)}")
            published = info.published or "not found for the whole network"
            if info.backbone:
                published += (f"; its encoder {info.backbone[0]}: {info.backbone[1] / 1e6:.1f} M with its ImageNet "
                              "classifier (ours with such a classifier: within 0.5 %)")
            print(f"{pad}published: {published}")
        print("parameters and GMAC at default settings; GMAC: multiply-accumulates of convolutions, linear layers "
              "and attention products")
    return 0


def _cmd_convert(args) -> int:
    from .dicom_seg import IDENTIFIERS_NOTE, algorithm_of_model
    from .io import read_volume
    from .label_io import label_format, read_labels, write_labels
    from .cli_args import parse_side_map
    from .output_paths import check_outputs, refuse_existing
    from .segment_sides import UnknownSideError

    label_format(args.input)
    if label_format(args.out) == "dicom-seg":
        if args.reference is None:
            raise ValueError(f"--out {args.out}: a DICOM SEG needs --reference, the DICOM series folder the labels "
                             "belong to")
        print(f"note: {args.out}: {IDENTIFIERS_NOTE}")
    check_outputs({"the input": args.input, "the reference": args.reference}, {"--out": args.out})
    refuse_existing({"--out": args.out}, args.overwrite)
    side_map = parse_side_map(args.map)
    algorithm = algorithm_of_model(args.model) if args.model else None   # a wrong name fails before the work
    reference = read_volume(args.reference) if args.reference else None
    try:
        labels, report = read_labels(args.input, reference, side_map)
    except UnknownSideError as exc:
        example = exc.names[0].replace("'", "")
        raise UnknownSideError(f"{exc} with --map \"{example}=right\" (or =left, =ignore)", exc.names) from None
    for line in report:
        print(line)
    write_labels(args.out, labels.data, labels.geometry, algorithm)
    n1, n2 = int((labels.data == 1).sum()), int((labels.data == 2).sum())
    print(f"wrote {args.out}: right IAN {n1} voxels, left IAN {n2} voxels")
    return 0


def _cmd_interactive(args) -> int:
    import time

    from .interactive import InteractiveSession, read_clicks_csv
    from .io import read_volume
    from .io_nifti import is_nifti_path, write_nifti
    from .output_paths import check_outputs, refuse_existing
    from .workflows import predict_case

    if not is_nifti_path(args.out):
        raise ValueError(f"--out {args.out}: must end in .nii or .nii.gz")
    if args.fast is not None and args.no_model:
        flag = "--fast" if args.fast else "--patches"
        raise ValueError(f"{flag}: says how to compute the model's probability, which --no-model leaves out; "
                         "drop one of them")
    # as for ian predict: never over an input, writable, and nothing created before the work
    check_outputs({"the image": args.image, "the clicks file": args.clicks}, {"--out": args.out})
    refuse_existing({"--out": args.out}, args.overwrite)
    t0 = time.perf_counter()
    vol = read_volume(args.image)
    clicks = read_clicks_csv(args.clicks, vol.geometry.canonical_affine, vol.data.shape)
    prob, tiles = None, ""
    if not args.no_model:
        pred = predict_case(vol.data, vol.spacing, args.model, device=args.device,
                            fast=_large_tiles(args), backend=args.backend).prediction
        prob, tiles = pred.probability, f", {pred.ran_on}"
    session = InteractiveSession(vol.data, vol.spacing, prob)
    session.set_clicks(clicks)
    labels = session.labels()
    write_nifti(args.out, labels, vol.geometry, dtype="uint8", description="napari-ian IAN 1=R 2=L (clicks)")
    n = {lab: sum(1 for _, c in clicks if c == lab) for lab in (0, 1, 2)}
    print(f"wrote {args.out}: right IAN {int((labels == 1).sum())} voxels ({n[1]} clicks), left IAN "
          f"{int((labels == 2).sum())} voxels ({n[2]} clicks), {n[0]} negative clicks "
          f"({time.perf_counter() - t0:.1f} s{tiles})")
    for hint in session.hints():
        print(f"note: {hint}", file=sys.stderr)
    return 0


# openvino_runtime.BACKENDS, spelt out here so that the CLI's help needs no import of torch
BACKEND_CHOICES = ("auto", "torch", "openvino", "openvino-int8")
BACKEND_HELP = ("what runs the network on the CPU: auto (OpenVINO where it is installed, the CPU is x86-64 without "
                "native bf16 and the model is a 3D patch model, in int8 where the bundled model ships an int8 "
                "version: the network 2-3 times as fast; PyTorch otherwise), torch, openvino (float32) or "
                "openvino-int8 (default auto; BENCHMARKS.md)")

# also the tooltip of the panels' "fast" box (napari_ian/_panel_layout.py)
FAST_TILES_HELP = ("3D models: predict in a few large tiles instead of many overlapping training-size patches: "
                   "about a third faster on a CPU, up to 1 GB more memory; the bundled model as accurate on our "
                   "held-out phantoms (mean DSC from 0.004 lower to 0.021 higher), fine-tuned models 0.01-0.05 "
                   "lower. The default, except for fine-tuned models")
PATCHES_HELP = ("3D models: predict in the model's overlapping training-size patches instead: slower, up to "
                "1 GB less memory; the default for fine-tuned models")

# an existing output may be someone's corrected labels: replaced only when asked
OVERWRITE_HELP = "replace the output files if they exist (otherwise an existing file is refused)"


def _large_tiles(args) -> bool | None:
    """``--fast`` / ``--patches`` as asked; ``ian predict --no-postprocess`` in patches (the large
    tiles' raw threshold has more stray blobs, which only the post-processing removes:
    BENCHMARKS.md, twenty-first stop); otherwise None, the model's own default."""
    if args.fast is not None:
        return args.fast
    return False if getattr(args, "no_postprocess", False) else None


def _add_tile_flags(p) -> None:
    """``--fast`` and ``--patches``: how a 3D model covers the volume; neither: the model's own
    default (:func:`~napari_ian.trainer.model_metadata.large_tiles_by_default`)."""
    both = p.add_mutually_exclusive_group()
    both.add_argument("--fast", dest="fast", action="store_const", const=True, default=None,
                      help=FAST_TILES_HELP + " (BENCHMARKS.md)")
    both.add_argument("--patches", dest="fast", action="store_const", const=False, help=PATCHES_HELP)


def build_parser() -> argparse.ArgumentParser:
    from .finetune import FinetuneConfig

    ap = argparse.ArgumentParser(prog="ian", description="napari-ian: the inferior alveolar nerve on MR neurography.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("phantom", help="write a synthetic MRN jaw dataset (NIfTI + DICOM + cases.csv)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--patients", type=int, default=10, help="number of patients (default 10)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument("--no-dicom", action="store_true", help="write NIfTI only")
    p.add_argument("--overwrite", action="store_true", help="replace a dataset already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_phantom)

    p = sub.add_parser("info", help="geometry of a NIfTI file or DICOM series folder")
    p.add_argument("path", type=Path, help=".nii/.nii.gz file, DICOM folder or multi-frame DICOM file")
    p.add_argument("--series", default=None, help="SeriesInstanceUID when a folder holds several")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("train", help="train a model on a dataset folder or on randomised synthetic volumes")
    p.add_argument("--data", type=Path, default=None, help="dataset folder (cases.csv or imagesTr/labelsTr)")
    p.add_argument("--synthetic", type=int, default=None, metavar="N",
                   help="train on randomised renders of N phantom anatomies instead (domain randomisation)")
    p.add_argument("--anatomy-cache", type=Path, default=Path("data/anatomy"),
                   help="where --synthetic keeps its rasterised anatomies (default data/anatomy)")
    p.add_argument("--patch", default="128x128",
                   help="--synthetic training crop in working-grid voxels: HxW (2.5D) or DxHxW (3D patches)")
    p.add_argument("--steps-per-epoch", type=int, default=200, help="--synthetic: batches per epoch")
    p.add_argument("--validation-anatomies", type=int, default=2, metavar="N",
                   help="--synthetic: held-out anatomies rendered once each for validation after every epoch "
                        "(default 2; more rank epochs more reliably and cost a prediction each per epoch)")
    p.add_argument("--flip-tta", action="store_true", help="--synthetic: the model averages with a mirrored pass")
    p.add_argument("--style-family", choices=["mrn", "random"], default=None,
                   help="--synthetic: render training volumes of this look only (mrn: nerve-selective contrasts "
                        "jittered; random: any intensity per tissue); default both, equally often")
    p.add_argument("--init", default=None, help="start from this model's weights (same architecture)")
    p.add_argument("--name", default="my-model", help="registry name (saved in the user model folder)")
    p.add_argument("--out", default=None, help="write the model file here instead")
    p.add_argument("--network", default="unet", help="a name `ian networks` lists (default unet)")
    p.add_argument("--network-config", default=None, help='JSON, e.g. \'{"base": 16}\' or \'{"split_attention": true}\'')
    p.add_argument("--context", type=int, default=3, help="2.5D: coronal slices as channels (1 = 2D, the paper)")
    p.add_argument("--size", default="64x160", help="network input HxW (the paper: 256x256)")
    p.add_argument("--loss", default=None, choices=LOSS_CHOICES,
                   help="default: focal_tversky (the paper's) for --data, dice_ce for --synthetic; "
                        "dice_ce_skeleton adds skeleton recall (each length of nerve weighs the same)")
    p.add_argument("--skeleton-weight", type=float, default=None,
                   help="with --loss dice_ce_skeleton: the skeleton recall term's weight (default 1)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--patience", type=int, default=25)
    p.add_argument("--keep", choices=["best", "last"], default="best",
                   help="weights saved: the best validation epoch's (default) or the last epoch's (when the "
                        "validation set is too small to rank epochs, e.g. a continuation at a low learning rate)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--trained-on", default="", help="a description of the data, stored in the model file")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("finetune", help="fine-tune a model on corrected coronal slices of one case")
    p.add_argument("--image", required=True, type=Path, help="the MR image (NIfTI file or DICOM folder)")
    p.add_argument("--labels", required=True, type=Path, help="corrected labels on the image's grid (1 = right, 2 = left)")
    p.add_argument("--slices", required=True,
                   help="coronal slices whose labels may be trained on, numbered along the file's own AP voxel "
                        "axis: 30:40,55 = 30..39 and 55 (ranges are half-open, as in --roi)")
    p.add_argument("--base", default=None, help="model to start from (default: ian-default)")
    p.add_argument("--name", required=True, help="name of the new model in the user registry")
    ft = FinetuneConfig()    # the one set of fine-tuning defaults (the panel shows the same)
    p.add_argument("--epochs", type=int, default=ft.epochs)
    p.add_argument("--lr", type=float, default=ft.lr)
    p.add_argument("--holdout", type=float, default=ft.holdout,
                   help="share of the slices held out to score before/after (a contiguous block per side)")
    p.add_argument("--seed", type=int, default=ft.seed)
    p.add_argument("--device", default=ft.device, help="auto (CUDA with AMP, MPS, CPU), cpu, cuda")
    p.add_argument("--no-pseudo-labels", action="store_true",
                   help="train on the corrected slices only, not also on the slices between them labelled along "
                        "the nerve they pin (3D models): more gain on a case the model misses, more forgetting of "
                        "others (BENCHMARKS.md)")
    p.add_argument("--rehearsal-share", type=float, default=ft.rehearsal_share,
                   help="share of training crops from renders of a phantom the base model learnt from (3D models "
                        "trained on synthetic renders): less forgetting of other scans; 0 = the case alone")
    p.add_argument("--train-first-block", action="store_true",
                   help="also train the 3D U-Net's first (full-resolution) encoder block, which fine-tuning "
                        "otherwise keeps as it was: about a tenth more time with the earlier, larger crops "
                        "(BENCHMARKS.md)")
    p.add_argument("--earlier", action="store_true", help="also train on the corrections store's other cases")
    p.add_argument("--no-store", action="store_true",
                   help="do not add this case to the corrections store (the panel and the CLI share it)")
    p.add_argument("--out", type=Path, default=None,
                   help="also write the new model's prediction of --image here (.nii.gz, on its grid), as "
                        "'ian predict --model NAME' makes it: the fine-tune makes it for its after-figure")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_finetune)

    p = sub.add_parser("predict", help="segment both IANs in a NIfTI file or DICOM folder")
    p.add_argument("input", type=Path)
    p.add_argument("--out", required=True, type=Path, help="labels .nii.gz on the input's grid (1 = right, 2 = left)")
    p.add_argument("--model", default=None, help="registry name or .pt path (default: ian-default)")
    p.add_argument("--device", default="auto", help="auto (CUDA, MPS, CPU), cpu, cuda")
    p.add_argument("--roi", default=None, help="canonical voxel box AP,SI,RL e.g. 20:110,:,:")
    p.add_argument("--probability", type=Path, default=None, help="also write the probability map here")
    p.add_argument("--no-postprocess", action="store_true",
                   help="threshold the probability only (no one-continuous-nerve-per-side clean-up); in "
                        "patches unless --fast is given")
    _add_tile_flags(p)
    p.add_argument("--backend", default="auto", choices=BACKEND_CHOICES, help=BACKEND_HELP)
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("evaluate", help="the metrics of docs/definitions.md for a prediction against a reference")
    p.add_argument("--reference", required=True, type=Path)
    p.add_argument("--prediction", required=True, type=Path)
    p.add_argument("--csv", type=Path, default=None, help="write the per-slice table here")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("cv", help="patient-level Monte Carlo cross-validation of several models")
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="folder for tables, comparisons and box plots")
    p.add_argument("--paper", action="store_true",
                   help="the source study's protocol: IANNet (2D, 256x256) and its six comparators, AdamW 1e-3/1e-4, "
                        "cosine, 50 epochs, batch 32, patience 25, 10 x 70/15/15 splits, no augmentation, no "
                        "post-processing; every option below overrides its part")
    p.add_argument("--model", action="append", help='NAME=network[:json], repeatable; e.g. '
                   'unet25d=unet:{"base":16} iannet=iannet:{"context":1} (with --paper, a paper network '
                   'keeps its paper settings unless the JSON sets them)')
    p.add_argument("--reference", default=None,
                   help="the model compared with each other one (default: the first); Bonferroni over "
                        "those comparisons")
    p.add_argument("--all-pairs", action="store_true", help="compare every pair instead (Bonferroni over all pairs)")
    p.add_argument("--repeats", type=int, default=None, help="splits (default 10)")
    p.add_argument("--fractions", default=None, help="train/validation/test shares (default 70/15/15)")
    p.add_argument("--epochs", type=int, default=None, help="default 50")
    p.add_argument("--patience", type=int, default=None, help="default 25")
    p.add_argument("--batch-size", type=int, default=None, help="default 32")
    p.add_argument("--size", default=None, help="network input HxW (default 64x160; --paper: 256x256)")
    p.add_argument("--context", type=int, default=None, help="coronal slices as channels (default 3; --paper: 1)")
    p.add_argument("--lr", type=float, default=None, help="default 1e-3")
    p.add_argument("--weight-decay", type=float, default=None, help="default 1e-4")
    p.add_argument("--loss", default=None, choices=LOSS_CHOICES,
                   help="default focal_tversky")
    p.add_argument("--augment", default=None, action=argparse.BooleanOptionalAction,
                   help="augment training batches (default on; --paper: off)")
    p.add_argument("--postprocess", default=None, action=argparse.BooleanOptionalAction,
                   help="one continuous nerve per side before scoring (default on; --paper: off)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_cv)

    p = sub.add_parser("networks", help="every network: parameters, GMAC per 256x256 slice, the paper that defines it")
    p.set_defaults(func=_cmd_networks)

    p = sub.add_parser("models", help="list bundled and user models")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("interactive", help="segment the nerves from a few clicks on them (CSV of world points)")
    p.add_argument("image", type=Path, help="NIfTI file or DICOM folder")
    p.add_argument("--clicks", required=True, type=Path,
                   help="CSV with header x,y,z,label: mm in NIfTI RAS+ (for DICOM: its LPS with x and y negated); "
                        "label 1 right nerve, 2 left nerve, 0 not nerve")
    p.add_argument("--out", required=True, type=Path, help="labels .nii.gz on the input's grid (1 = right, 2 = left)")
    p.add_argument("--model", default=None, help="model whose probability guides the paths (default: ian-default)")
    p.add_argument("--no-model", action="store_true", help="follow the image's brightness only")
    p.add_argument("--device", default="auto")
    _add_tile_flags(p)
    p.add_argument("--backend", default="auto", choices=BACKEND_CHOICES, help=BACKEND_HELP)
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=_cmd_interactive)

    p = sub.add_parser("convert", help="IAN labels between NIfTI, 3D Slicer (.seg.nrrd) and DICOM SEG")
    p.add_argument("input", type=Path, help="labels: .nii/.nii.gz, .seg.nrrd/.nrrd, or a DICOM SEG (.dcm)")
    p.add_argument("--out", required=True, type=Path,
                   help="format by extension: .nii.gz/.nii, .seg.nrrd/.nrrd, .dcm (DICOM SEG: carries the "
                        "patient identifiers of the reference series)")
    p.add_argument("--reference", type=Path, default=None,
                   help="the image (NIfTI file or DICOM folder) whose grid the output takes; required for DICOM SEG")
    p.add_argument("--map", action="append", default=[], metavar="SEGMENT=SIDE",
                   help="the side of a segment whose name does not say it (repeatable): 'Segment_1=right', "
                        "'3=left' (a label value), 'mandible=ignore'")
    p.add_argument("--model", default=None,
                   help="DICOM SEG: the model that made the labels (registry name), recorded as the algorithm; "
                        "default: manual labels")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=_cmd_convert)
    return ap


def _one_line(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 1] + "…"


@contextlib.contextmanager
def _warnings_as_lines():
    """Print each distinct warning once, as one line on stderr.

    napari-ian's own (:class:`VolumeWarning`: something the user should know about an input)
    as ``ian: warning: <path>: <fact>``; a library's as ``ian: note: <category>: <message>``,
    never as the source-line dump Python prints by default.
    """
    from .errors import VolumeWarning

    said = set()

    def show(message, category, filename, lineno, file=None, line=None):
        ours = issubclass(category, VolumeWarning)
        text = f"ian: warning: {_one_line(message)}" if ours else f"ian: note: {category.__name__}: {_one_line(message)}"
        if text not in said:
            said.add(text)
            print(text, file=sys.stderr, flush=True)

    with warnings.catch_warnings():
        warnings.simplefilter("always", VolumeWarning)
        warnings.showwarning = show
        yield


def main(argv=None) -> int:
    """Entry point of the ``ian`` console script."""
    args = build_parser().parse_args(argv)
    try:
        with _warnings_as_lines():
            return int(args.func(args) or 0)
    except (FileExistsError, ValueError, OSError) as exc:   # VolumeReadError, VolumeWriteError among them
        print(f"ian: {_one_line(exc)}", file=sys.stderr)
        return 2
    except MemoryError:
        print("ian: not enough memory for this command (ian predict and ian interactive: --patches needs up to "
              "1 GB less; ian predict: a smaller --roi; or a machine with more memory)",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ian: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: still one line; IAN_DEBUG=1 shows where
        if os.environ.get("IAN_DEBUG"):
            raise
        print(f"ian: unexpected error ({type(exc).__name__}: {_one_line(exc)}); this is a napari-ian bug, please "
              "report it with the command (IAN_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
