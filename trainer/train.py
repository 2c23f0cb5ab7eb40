"""Training: AdamW + cosine annealing + early stopping on validation DSC, the paper's protocol.

Runs on one CPU/GPU, or unchanged under ``torchrun --nproc_per_node N`` (DDP: gloo on CPU,
NCCL on GPU; each process takes its share of every epoch's batches, all keep identical
weights, rank 0 reports). Progress goes to one ``progress`` callable and a cancel flag is polled between
steps (:mod:`.progress`), so the CLI (tqdm) and the plugin (progress bar, Cancel) drive the same
loop.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import os
import time
from typing import Callable

import numpy as np
import torch

from .augment import augment_batch
from .device import autocast_context, cpu_bf16_supported, memory_format, pick_device, use_bf16  # noqa: F401 (re-exported)
from .progress import EPOCH, STEP, ProgressCallback, check_cancel, report
from .losses import DEFAULT_LOSS_PARAMS, get_loss
from .metrics import metrics_from_counts, slice_counts
from .nets import build_network, supervised_loss


@dataclasses.dataclass
class TrainConfig:
    """Settings of one training run (all recorded in the model file)."""

    network: str = "unet"
    network_config: dict = dataclasses.field(default_factory=lambda: {"base": 16, "depth": 4})
    context: int = 3                 # 2.5D: neighbouring coronal slices as channels (1 = 2D)
    size: tuple = (64, 160)          # network input (H, W); the paper: (256, 256)
    loss: str = "focal_tversky"
    loss_params: dict | None = None  # None: the loss's defaults (DEFAULT_LOSS_PARAMS)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    epochs: int = 50
    batch_size: int = 32
    patience: int = 25
    empty_fraction: float = 0.25     # share of nerve-free slices sampled per epoch
    augment: bool = True
    seed: int = 0
    device: str = "auto"
    bf16: str = "auto"               # CPU bf16 autocast: auto = on where supported (CUDA uses fp16 AMP)
    channels_last: str = "auto"
    select: str = "best"             # weights kept: "best" validation epoch, or "last" (fine-tuning)
    validate_every: int = 1          # validate after every n-th epoch and the last (the others report NaN)
    pipeline: dict | None = None     # working-grid pipeline (trainer.pipeline); None: the paper's half-slice fit
    patch: tuple = (128, 128)        # training crop of the working-grid pipelines (voxels)
    steps_per_epoch: int = 200       # batches per epoch when samples are drawn, not listed
    positive_fraction: float = 0.7   # share of drawn crops centred near the nerve

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["size"] = list(self.size)
        d["patch"] = list(self.patch)
        return d


def _dist():
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return world, rank


def _stack(sets, attr):
    return np.concatenate([getattr(s, attr) for s in sets]) if sets else None


@torch.no_grad()
def predict_probabilities(model, x: np.ndarray, device, bf16=False, channels_last=False, batch=64,
                          cancel: Callable[[], bool] | None = None) -> np.ndarray:
    """Sigmoid probabilities (N, H, W) for network inputs (N, k, H, W)."""
    model.eval()
    out = np.empty((x.shape[0],) + x.shape[2:], dtype=np.float32)
    for i in range(0, x.shape[0], batch):
        check_cancel(cancel)
        xb = torch.from_numpy(np.ascontiguousarray(x[i:i + batch], dtype=np.float32)).to(device)
        if channels_last:
            xb = xb.contiguous(memory_format=memory_format(xb.ndim))
        with autocast_context(device, bf16):
            logits = model(xb)
        out[i:i + batch] = torch.sigmoid(logits.float())[:, 0].cpu().numpy()
    return out


def slice_dsc(prob: np.ndarray, y: np.ndarray) -> float:
    """Mean per-slice DSC over reference-positive slices (docs/definitions.md), in network space."""
    sm = metrics_from_counts(*slice_counts(np.asarray(y) > 0, np.asarray(prob) > 0.5, True, axis=0))
    d = sm.dsc[sm.reference_positive]
    return float(d.mean()) if d.size else float("nan")


class ArraySampler:
    """Batches from preprocessed slices held in memory (each epoch: every nerve slice once plus
    ``empty_fraction`` as many nerve-free ones, shuffled; the last short batch dropped for
    BatchNorm; under DDP each process takes its share)."""

    def __init__(self, sets, batch_size: int, empty_fraction: float):
        self.x, self.y, pos = _stack(sets, "x"), _stack(sets, "y"), _stack(sets, "positive")
        if self.x is None or not pos.any():
            raise ValueError("the training cases hold no nerve label (1 = right, 2 = left): nothing to learn from")
        self.pos_idx, self.neg_idx = np.flatnonzero(pos), np.flatnonzero(~pos)
        self.batch_size, self.empty_fraction = batch_size, empty_fraction

    def batches(self, rng, rank=0, world=1):
        n_neg = int(round(self.empty_fraction * len(self.pos_idx)))
        idx = np.concatenate([self.pos_idx, rng.choice(self.neg_idx, size=min(n_neg, len(self.neg_idx)), replace=False)])
        idx = rng.permutation(idx)
        batch = min(self.batch_size, len(idx) // world)
        if batch < 2:
            raise ValueError(f"{len(idx)} training slices: too few for a batch of 2 per process")
        per_rank = (len(idx) // (batch * world)) * batch
        mine = idx[rank::world][:per_rank]
        return _Batches(self.x, self.y, [np.sort(mine[b:b + batch]) for b in range(0, per_rank, batch)])


class _Batches:
    """One epoch of index groups, materialised one batch at a time (``len`` is known)."""

    def __init__(self, x, y, groups):
        self.x, self.y, self.groups = x, y, groups

    def __len__(self):
        return len(self.groups)

    def __iter__(self):
        for sel in self.groups:
            yield self.x[sel].astype(np.float32), self.y[sel]


def build_model(cfg: TrainConfig, init_state: dict | None = None) -> torch.nn.Module:
    """The network a config describes (2D networks get ``context`` input channels)."""
    from .nets import is_3d

    extra = {} if is_3d(cfg.network) else {"in_channels": cfg.context}
    model = build_network(cfg.network, **{**cfg.network_config, **extra})
    if init_state is not None:
        model.load_state_dict(widen_context(init_state, model.state_dict()))
    return model


def widen_context(init_state: dict, target_state: dict) -> dict:
    """Weights of a 2.5D network for a wider slice context than they were trained with.

    An input convolution of the narrower network (``k`` input channels: the slice and its
    neighbours) is placed in the middle ``k`` channels of the wider one's, the outer channels
    start at zero: the widened network computes exactly what the narrower one did until training
    teaches it to use the extra slices. Every other weight must match in shape.

    Raises
    ------
    ValueError
        A weight that differs in anything but an odd, narrower input-channel count.
    """
    out = dict(init_state)
    for key, target in target_state.items():
        src = init_state.get(key)
        if src is None or src.shape == target.shape:
            continue
        k, n = (src.shape[1], target.shape[1]) if src.ndim == target.ndim >= 3 else (0, 0)
        if not (src.shape[0] == target.shape[0] and src.shape[2:] == target.shape[2:] and k % 2 == 1
                and n % 2 == 1 and k < n):
            raise ValueError(f"the initial weights do not fit this network: {key} is {tuple(src.shape)}, "
                             f"the network's is {tuple(target.shape)}")
        wide = torch.zeros_like(target)
        lo = (n - k) // 2
        wide[:, lo:lo + k] = src
        out[key] = wide
    return out


def fit(model, sampler, validate, cfg: TrainConfig, progress: ProgressCallback | None = None,
        cancel: Callable[[], bool] | None = None, on_best: Callable | None = None):
    """The training loop: AdamW, cosine annealing, the configured loss, augmentation of 2D batches,
    early stopping on ``validate`` (a DSC; NaN when there is nothing to score).

    Parameters
    ----------
    model : torch.nn.Module
    sampler : object
        ``sampler.batches(rng, rank, world)`` yields one epoch of ``(x, y)`` numpy batches:
        ``x`` (B, C, ...) float32, ``y`` (B, ...) 0/1.
    validate : callable
        ``validate(model, device, bf16, channels_last) -> float``.
    cfg : TrainConfig
    progress : callable, optional
        A ``step`` event per batch (``info``: epoch, epochs, step, loss) and an ``epoch`` event per
        epoch (``info``: epoch, epochs, loss, val_dsc, batches, lr, elapsed_s, eta_s); rank 0 only.
    cancel : callable, optional
        Polled between steps; when it returns True the run stops with :class:`Cancelled`
        (:mod:`napari_ian.trainer.progress`).
    on_best : callable, optional
        ``on_best(model, history, best)`` whenever the validation DSC improves (checkpoints; rank 0).

    Returns
    -------
    model : torch.nn.Module
        The best model (by validation DSC, or the last one with ``select="last"``), CPU, eval.
    history : list of dict
    best : dict
    """
    world, rank = _dist()
    device = pick_device(cfg.device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    torch.manual_seed(cfg.seed)
    np_rng = np.random.default_rng([cfg.seed, rank])
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed + 1000 * rank)
    bf16 = use_bf16(device, cfg.bf16)
    from .nets import is_3d

    channels_last = device.type != "mps" and (cfg.channels_last is True or cfg.channels_last == "auto")
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=memory_format(5 if is_3d(cfg.network) else 4))
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.epochs))
    loss_fn = get_loss(cfg.loss, **(cfg.loss_params if cfg.loss_params is not None
                                    else DEFAULT_LOSS_PARAMS.get(cfg.loss, {})))
    scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" else None
    history, best = [], {"epoch": -1, "val_dsc": -1.0}
    best_state = copy.deepcopy(model.state_dict())
    t0 = time.perf_counter()
    step = 0
    for epoch in range(cfg.epochs):
        batches = sampler.batches(np_rng, rank, world)
        n_batches = len(batches) if hasattr(batches, "__len__") else cfg.steps_per_epoch
        net.train()
        losses = []
        for b, (x, y) in enumerate(batches):
            check_cancel(cancel)
            xb = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
            yb = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))[:, None]
            if cfg.augment and xb.ndim == 4:
                xb, yb = augment_batch(xb, yb, gen)
            xb, yb = xb.to(device), yb.to(device)
            if channels_last:
                xb = xb.contiguous(memory_format=memory_format(xb.ndim))
            opt.zero_grad(set_to_none=True)
            with autocast_context(device, bf16):
                out = net(xb)     # deep-supervision networks add auxiliary outputs while training
            loss = supervised_loss(loss_fn, out, yb, getattr(model, "supervision_weights", None))
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            step += 1
            losses.append(float(loss.item()))
            if rank == 0:
                report(progress, STEP, b + 1, n_batches, epoch=epoch + 1, epochs=cfg.epochs, step=step,
                       loss=losses[-1])
        sched.step()
        due = (epoch + 1) % max(1, cfg.validate_every) == 0 or epoch + 1 == cfg.epochs
        val = validate(model, device, bf16, channels_last) if validate is not None and due else float("nan")
        check_cancel(cancel)
        elapsed = time.perf_counter() - t0
        info = {"epoch": epoch + 1, "epochs": cfg.epochs, "loss": float(np.mean(losses)) if losses else float("nan"),
                "val_dsc": val, "batches": len(losses), "lr": sched.get_last_lr()[0], "elapsed_s": elapsed,
                "eta_s": elapsed / (epoch + 1) * (cfg.epochs - epoch - 1)}
        history.append(info)
        if not math.isnan(val) and val > best["val_dsc"]:
            best = {"epoch": epoch + 1, "val_dsc": val}
            best_state = copy.deepcopy(model.state_dict())
            if on_best is not None and rank == 0:
                on_best(model, history, best)
        if rank == 0:
            report(progress, EPOCH, epoch + 1, cfg.epochs, **info)
        # (stopping is decided where the model was scored, so the last epoch has a figure)
        if due and epoch + 1 - max(best["epoch"], 0) >= cfg.patience and best["epoch"] > 0:
            break
    if best["epoch"] < 0 or cfg.select == "last":
        # "last": the validation slices only report progress (fine-tuning scores them afterwards,
        # so they must not choose the weights); no validation number at all: nothing to choose by
        best_state = copy.deepcopy(model.state_dict())
        if cfg.select == "last" and history:
            # what is reported (the model file's validation figure) must be the kept weights'
            best = {"epoch": len(history), "val_dsc": history[-1]["val_dsc"]}
    model.load_state_dict(best_state)
    model = model.to("cpu").to(memory_format=torch.contiguous_format).eval()
    return model, history, {**best, "device": str(device), "bf16": bf16, "world_size": world,
                            "train_seconds": time.perf_counter() - t0}


def train_model(train_sets, val_sets, cfg: TrainConfig, progress: ProgressCallback | None = None,
                cancel: Callable[[], bool] | None = None, init_state: dict | None = None):
    """Train a network on preprocessed slices held in memory; returns ``(model, history, best)``.

    Parameters
    ----------
    train_sets, val_sets : list of objects with ``x`` (N, k, H, W), ``y`` (N, H, W), ``positive`` (N,)
        e.g. :class:`napari_ian.trainer.data.SideSlices`.
    cfg : TrainConfig
    progress, cancel : see :func:`fit`
    init_state : dict, optional
        Weights to start from (fine-tuning).
    """
    sampler = ArraySampler(train_sets, cfg.batch_size, cfg.empty_fraction)
    x_va, y_va = _stack(val_sets, "x"), _stack(val_sets, "y")

    def validate(model, device, bf16, channels_last):
        if x_va is None or not len(x_va):
            return float("nan")
        return slice_dsc(predict_probabilities(model, x_va, device, bf16, channels_last), y_va)

    return fit(build_model(cfg, init_state), sampler, validate, cfg, progress, cancel)
