"""Training: AdamW + cosine annealing + early stopping on validation DSC, the paper's protocol.

Runs on one CPU/GPU, or unchanged under ``torchrun --nproc_per_node N`` (DDP: gloo on CPU,
NCCL on GPU; each process takes its share of every epoch's batches, all keep identical
weights, rank 0 reports). Progress goes to callbacks (``on_step``/``on_epoch``) and a cancel
flag is polled between steps, so the CLI (tqdm) and the plugin (progress bar, Cancel) drive the
same loop.
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
from .losses import DEFAULT_LOSS_PARAMS, get_loss
from .metrics import metrics_from_counts
from .nets import build_network


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

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["size"] = list(self.size)
        return d


class Cancelled(Exception):
    """Raised inside the loop when the cancel flag is set; nothing is saved."""


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA, then Apple MPS, then CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(name)


def cpu_bf16_supported() -> bool:
    try:
        return bool(torch.backends.mkldnn.is_available()) and (
            torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:
        return False


def autocast_context(device: torch.device, bf16: bool):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    if device.type == "cpu" and bf16:
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return torch.autocast(device.type, enabled=False)


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
        if cancel is not None and cancel():
            raise Cancelled()
        xb = torch.from_numpy(np.ascontiguousarray(x[i:i + batch], dtype=np.float32)).to(device)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with autocast_context(device, bf16):
            logits = model(xb)
        out[i:i + batch] = torch.sigmoid(logits.float())[:, 0].cpu().numpy()
    return out


def slice_dsc(prob: np.ndarray, y: np.ndarray) -> float:
    """Mean per-slice DSC over reference-positive slices (SPEC.md), in network space."""
    p = prob > 0.5
    t = y.astype(bool)
    tp = np.count_nonzero(p & t, axis=(1, 2))
    fp = np.count_nonzero(p & ~t, axis=(1, 2))
    fn = np.count_nonzero(~p & t, axis=(1, 2))
    sm = metrics_from_counts(tp, fp, fn)
    d = sm.dsc[sm.reference_positive]
    return float(d.mean()) if d.size else float("nan")


def train_model(train_sets, val_sets, cfg: TrainConfig, callbacks=None,
                cancel: Callable[[], bool] | None = None, init_state: dict | None = None):
    """Train a network on preprocessed side slices; returns ``(model, history, best)``.

    Parameters
    ----------
    train_sets, val_sets : list of :class:`napari_ian.trainer.data.SideSlices`
    cfg : TrainConfig
    callbacks : object, optional
        With optional ``on_step(info)`` and ``on_epoch(info)`` methods (info is a dict).
    cancel : callable, optional
        Polled between steps; when it returns True the run stops with :class:`Cancelled`.
    init_state : dict, optional
        Weights to start from (fine-tuning).

    Returns
    -------
    model : torch.nn.Module
        The best model (by validation DSC), on CPU, eval mode.
    history : list of dict
        One entry per epoch.
    best : dict
        Best epoch and its validation DSC.
    """
    world, rank = _dist()
    device = pick_device(cfg.device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    torch.manual_seed(cfg.seed)
    np_rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed + 1000 * rank)
    bf16 = device.type == "cpu" and (cfg.bf16 is True or (cfg.bf16 == "auto" and cpu_bf16_supported()))
    channels_last = device.type != "mps" and (cfg.channels_last is True or cfg.channels_last == "auto")

    model = build_network(cfg.network, in_channels=cfg.context, **cfg.network_config)
    if init_state is not None:
        model.load_state_dict(init_state)
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.epochs))
    loss_fn = get_loss(cfg.loss, **(cfg.loss_params if cfg.loss_params is not None
                                    else DEFAULT_LOSS_PARAMS.get(cfg.loss, {})))
    scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" else None

    x_tr, y_tr, pos_tr = _stack(train_sets, "x"), _stack(train_sets, "y"), _stack(train_sets, "positive")
    x_va, y_va = _stack(val_sets, "x"), _stack(val_sets, "y")
    if x_tr is None or not pos_tr.any():
        raise ValueError("the training cases hold no nerve label (1 = right, 2 = left): nothing to learn from")
    pos_idx, neg_idx = np.flatnonzero(pos_tr), np.flatnonzero(~pos_tr)
    history, best = [], {"epoch": -1, "val_dsc": -1.0}
    best_state = copy.deepcopy(model.state_dict())
    t0 = time.perf_counter()
    step = 0
    for epoch in range(cfg.epochs):
        n_neg = int(round(cfg.empty_fraction * len(pos_idx))) if len(pos_idx) else len(neg_idx)
        idx = np.concatenate([pos_idx, np_rng.choice(neg_idx, size=min(n_neg, len(neg_idx)), replace=False)])
        idx = np_rng.permutation(idx)
        batch = min(cfg.batch_size, len(idx) // world)
        if batch < 2:
            raise ValueError(f"{len(idx)} training slices: too few for a batch of 2 per process")
        per_rank = (len(idx) // (batch * world)) * batch  # drop the last short batch (BatchNorm)
        mine = idx[rank::world][:per_rank]
        net.train()
        losses = []
        for b in range(0, per_rank, batch):
            if cancel is not None and cancel():
                raise Cancelled()
            sel = np.sort(mine[b:b + batch])
            xb = torch.from_numpy(x_tr[sel].astype(np.float32))
            yb = torch.from_numpy(y_tr[sel].astype(np.float32))[:, None]
            if cfg.augment:
                xb, yb = augment_batch(xb, yb, gen)
            xb, yb = xb.to(device), yb.to(device)
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            opt.zero_grad(set_to_none=True)
            with autocast_context(device, bf16):
                logits = net(xb)
            loss = loss_fn(logits.float(), yb)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            step += 1
            losses.append(float(loss.item()))
            if callbacks is not None and hasattr(callbacks, "on_step") and rank == 0:
                callbacks.on_step({"epoch": epoch, "step": step, "batch": b // batch + 1,
                                   "batches": per_rank // batch, "loss": losses[-1]})
        sched.step()
        val = slice_dsc(predict_probabilities(model, x_va, device, bf16, channels_last, cancel=cancel), y_va) \
            if x_va is not None and len(x_va) else float("nan")
        elapsed = time.perf_counter() - t0
        info = {"epoch": epoch + 1, "epochs": cfg.epochs, "loss": float(np.mean(losses)), "val_dsc": val,
                "batches": per_rank // batch,
                "lr": sched.get_last_lr()[0], "elapsed_s": elapsed,
                "eta_s": elapsed / (epoch + 1) * (cfg.epochs - epoch - 1)}
        history.append(info)
        if not math.isnan(val) and val > best["val_dsc"]:
            best = {"epoch": epoch + 1, "val_dsc": val}
            best_state = copy.deepcopy(model.state_dict())
        if callbacks is not None and hasattr(callbacks, "on_epoch") and rank == 0:
            callbacks.on_epoch(info)
        if epoch + 1 - max(best["epoch"], 0) >= cfg.patience and best["epoch"] > 0:
            break
    if best["epoch"] < 0 or cfg.select == "last":
        # "last": the validation slices only report progress (fine-tuning scores them afterwards,
        # so they must not choose the weights); no validation number at all: nothing to choose by
        best_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    model = model.to("cpu").to(memory_format=torch.contiguous_format).eval()
    return model, history, {**best, "device": str(device), "bf16": bf16, "world_size": world,
                            "train_seconds": time.perf_counter() - t0}
