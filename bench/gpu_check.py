"""The one GPU check of issue 13: run it on a machine with a CUDA GPU; it fits in a few minutes.

1. the GPU and the software it ran with;
2. one AMP training step (fp16 autocast + gradient scaler, through the real training loop) of
   each of the paper's seven networks at its published settings, batch 32 at 256 x 256: seconds
   per step and peak GPU memory;
3. per-slice inference time of ``iannet`` at 256 x 256 (the paper: 0.018 s per slice on an RTX
   3090) at batch 1 and 32, and of the bundled model (its network per slice, and a whole phantom
   volume through the ``ian predict`` code path);
4. the out-of-memory fallback: the process's CUDA memory is capped so that a prediction cannot
   fit, the prediction must finish on the CPU, say so, and equal a CPU prediction;
5. a short ``ian cv --paper`` (4 phantom patients, 1 split, 2 epochs) on the GPU.

Each step is timed and guarded: a failure is written down and the next step runs. Results go to
``OUT/gpu_check.json`` and ``OUT/gpu_check.md`` (for BENCHMARKS.md). ``--smoke`` runs the same
code on the CPU with tiny networks (to check the script itself where no GPU is lent).

Run: ``.venv/bin/python bench/gpu_check.py --out bench/out/gpu`` (``make setup`` installs a CUDA
build of torch where ``nvidia-smi`` exists).
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from napari_ian.trainer.cv import PAPER_MODELS
from napari_ian.trainer.nets import build_network, count_parameters

SMOKE_MODELS = {"iannet": {"stem": 16}, "caranet": {"backbone": "res2net50", "stem": 16, "channel": 16},
                "ds-transunet": {"primary": "swin-mini", "secondary": "swin-mini"}, "duck-net": {"filters": 4},
                "deeplabv3plus": {"base": 16, "aspp": 32}, "hardnet-mseg": {"channel": 16}, "meganet": {"stem": 16}}


class Report:
    def __init__(self, out: Path):
        self.out, self.data, self.lines = out, {}, []

    def step(self, key, fn):
        t0 = time.perf_counter()
        print(f"== {key}", flush=True)
        try:
            self.data[key] = {"ok": True, **fn()}
        except Exception as exc:   # noqa: BLE001 - every failure is a result here
            self.data[key] = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                              "traceback": traceback.format_exc(limit=6)}
            print(self.data[key]["traceback"], flush=True)
        self.data[key]["wall_s"] = round(time.perf_counter() - t0, 1)
        self.save()

    def save(self):
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "gpu_check.json").write_text(json.dumps(self.data, indent=1, default=str) + "\n")
        (self.out / "gpu_check.md").write_text(to_markdown(self.data))


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def facts(device):
    out = {"python": platform.python_version(), "torch": torch.__version__, "device": str(device)}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        out.update(gpu=p.name, capability=f"{p.major}.{p.minor}", memory_gib=round(p.total_memory / 2 ** 30, 1),
                   cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
        try:
            out["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                           capture_output=True, text=True, timeout=20).stdout.strip()
        except Exception:   # noqa: BLE001
            pass
    return out


def training_steps(device, models, size, batch):
    """One epoch of 2 steps of each network through the real loop (train.fit) on random slices."""
    from napari_ian.trainer.train import ArraySampler, TrainConfig, fit

    class Slices:
        x = np.random.default_rng(0).normal(size=(2 * batch, 1, *size)).astype(np.float16)
        y = np.zeros((2 * batch, *size), np.uint8)
        y[:, size[0] // 2 - 3:size[0] // 2 + 3, size[1] // 2 - 3:size[1] // 2 + 3] = 1
        positive = np.ones(2 * batch, bool)

    rows = {}
    for name, cfg in models.items():
        torch.manual_seed(0)
        net = build_network(name, **cfg)
        tc = TrainConfig(network=name, network_config=cfg, context=1, size=size, epochs=1, batch_size=batch,
                         device=str(device), augment=False)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        _, history, best = fit(net, ArraySampler([Slices()], batch, 0.0), None, tc)
        sync(device)
        rows[name] = {"parameters": count_parameters(net), "s_per_step": round((time.perf_counter() - t0) / 2, 3),
                      "loss": round(history[0]["loss"], 4), "amp": best["device"].startswith("cuda"),
                      "peak_gib": round(torch.cuda.max_memory_allocated(device) / 2 ** 30, 2)
                      if device.type == "cuda" else None}
        print(f"  {name}: {rows[name]}", flush=True)
        del net
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return {"size": list(size), "batch": batch, "networks": rows,
            "note": "each: 2 optimizer steps incl. the first (cuDNN autotuning and allocation) - an upper bound"}


@torch.no_grad()
def per_slice(net, device, shape, batch, reps):
    from napari_ian.trainer.device import autocast_context

    net = net.to(device).eval()
    if device.type != "mps":
        net = net.to(memory_format=torch.channels_last)
    x = torch.randn(batch, *shape, device=device).contiguous(memory_format=torch.channels_last)
    with autocast_context(device, device.type == "cpu"):
        for _ in range(3):
            net(x)
        sync(device)
        t0 = time.perf_counter()
        for _ in range(reps):
            net(x)
        sync(device)
    return (time.perf_counter() - t0) / reps / batch


def inference(device, smoke):
    from napari_ian.sample_data.phantom import make_phantom
    from napari_ian.trainer.modelfile import load_model
    from napari_ian.trainer.registry import resolve_model
    from napari_ian.trainer.workflows import predict_case

    reps = 3 if smoke else 50
    ian = build_network("iannet", **(SMOKE_MODELS["iannet"] if smoke else {}))
    out = {"iannet_256_batch1_s": per_slice(ian, device, (1, 256, 256), 1, reps),
           "iannet_256_batch32_s": per_slice(ian, device, (1, 256, 256), 4 if smoke else 32, max(reps // 5, 2)),
           "paper_rtx3090_s": 0.018}
    net, meta = load_model(resolve_model("ian-default"))
    pre = meta["preprocessing"]
    kind = pre.get("pipeline", "halfslice")
    out["bundled_network"] = f"{meta['network']} {json.dumps(meta['network_config'])}, pipeline {kind}"
    if kind != "patch3d":    # a 3D network has no slice; its whole-volume time is below
        shape = (pre["context"], *(pre["size"] if kind == "halfslice" else (128, 128)))
        out["bundled_per_slice_input"] = list(shape)
        out["bundled_per_slice_s"] = per_slice(net, device, shape, 16, reps)
    image, _, spacing, _ = make_phantom(2000)
    predict_case(image, spacing, device=str(device))          # warm-up
    sync(device)
    t0 = time.perf_counter()
    res = predict_case(image, spacing, device=str(device))
    sync(device)
    out["bundled_volume_s"] = time.perf_counter() - t0
    out["volume_shape"] = list(image.shape)
    out["bundled_volume_device"] = res.prediction.device
    return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in out.items()}


def oom_fallback(device):
    from napari_ian.sample_data.phantom import make_phantom
    from napari_ian.trainer.workflows import predict_case

    if device.type != "cuda":
        return {"skipped": "the fallback is from a GPU to the CPU; this run has no GPU"}
    image, _, spacing, _ = make_phantom(2001)
    cpu = predict_case(image, spacing, device="cpu")
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(device).total_memory
    cap = 48 * 2 ** 20        # 48 MiB: the weights fit, a batch of activations does not
    torch.cuda.set_per_process_memory_fraction(cap / total, device)
    try:
        res = predict_case(image, spacing, device="cuda")
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, device)
        torch.cuda.empty_cache()
    same = bool(np.array_equal(res.prediction.labels, cpu.prediction.labels))
    return {"cap_mib": 48, "note": res.note, "finished_on": res.prediction.device, "labels_equal_cpu_run": same,
            "passed": bool(res.note and "out of memory" in res.note and res.prediction.device == "cpu" and same)}


def short_cv(device, out: Path, smoke):
    data = out / "phantom4"
    ian = [sys.executable, "-m", "napari_ian.trainer.cli"]
    if not (data / "cases.csv").exists():
        subprocess.run(ian + ["phantom", "--out", str(data), "--patients", "4", "--seed", "13", "--no-dicom",
                              "--quiet"], check=True)
    cmd = ian + ["cv", "--data", str(data), "--out", str(out / "cv_paper"), "--paper", "--device", str(device.type),
                 "--repeats", "1", "--epochs", "2", "--patience", "2"]
    if smoke:
        cmd += ["--size", "32x80", "--batch-size", "8"]
        for name, cfg in SMOKE_MODELS.items():
            cmd += ["--model", f"{name}={name}:{json.dumps(cfg)}"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    (out / "cv_paper.log").write_text(done.stdout + done.stderr)
    if done.returncode:
        raise RuntimeError(f"ian cv exited {done.returncode}: {done.stderr.strip()[-400:]}")
    table1 = (out / "cv_paper/table1.md").read_text()
    timing = (out / "cv_paper/timing.csv").read_text()
    return {"command": " ".join(cmd[1:]), "wall_s": round(time.perf_counter() - t0, 1), "table1": table1,
            "timing_csv": timing}


def to_markdown(d: dict) -> str:
    lines = ["# GPU check (bench/gpu_check.py)", ""]
    f = d.get("facts", {})
    lines.append(f"- device: {f.get('gpu', f.get('device'))}, {f.get('memory_gib', '?')} GiB; torch {f.get('torch')}, "
                 f"CUDA {f.get('cuda')}, cuDNN {f.get('cudnn')}, driver {f.get('driver')}")
    tr = d.get("training", {})
    if tr.get("ok"):
        lines += ["", f"AMP training step, batch {tr['batch']} at {tr['size'][0]}x{tr['size'][1]} ({tr['note']}):", "",
                  "| network | parameters | s/step | peak GiB | loss |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {n} | {r['parameters']:,} | {r['s_per_step']} | {r['peak_gib']} | {r['loss']} |"
                  for n, r in tr["networks"].items()]
    for key in ("inference", "oom_fallback"):
        if key in d:
            lines += ["", f"{key}: " + ", ".join(f"{k} = {v}" for k, v in d[key].items() if k != "traceback")]
    cv = d.get("short_cv", {})
    if cv.get("ok"):
        lines += ["", f"`{cv['command']}`: {cv['wall_s']} s", "", cv["table1"], "", "```", cv["timing_csv"], "```"]
    failed = [k for k, v in d.items() if isinstance(v, dict) and v.get("ok") is False]
    if failed:
        lines += ["", "FAILED: " + ", ".join(f"{k} ({d[k]['error']})" for k in failed)]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("bench/out/gpu"))
    ap.add_argument("--smoke", action="store_true", help="tiny networks on the CPU: checks the script, not the GPU")
    ap.add_argument("--skip", action="append", default=[], help="training, inference, oom_fallback or short_cv")
    a = ap.parse_args()
    device = torch.device("cpu" if a.smoke else "cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA GPU visible to torch (use --smoke to check the script on the CPU)")
    rep = Report(a.out)
    rep.step("facts", lambda: facts(device))
    steps = {"training": lambda: training_steps(device, SMOKE_MODELS if a.smoke else PAPER_MODELS,
                                                (32, 32) if a.smoke else (256, 256), 4 if a.smoke else 32),
             "inference": lambda: inference(device, a.smoke),
             "oom_fallback": lambda: oom_fallback(device),
             "short_cv": lambda: short_cv(device, a.out, a.smoke)}
    for key, fn in steps.items():
        if key not in a.skip:
            rep.step(key, fn)
    print((a.out / "gpu_check.md").read_text())


if __name__ == "__main__":
    main()
