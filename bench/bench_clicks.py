"""Click-prompted segmentation: DSC against clicks per side, and the time per click (issue 8).

Clicks are placed as an annotator following the ToothFairy-style protocol would: on the true
nerve centre, evenly spaced along its labelled course ((i + 0.5) / n of its length). The model's
probability map is computed once per case (as the panel does when the interactive mode starts);
the per-click time is the update after adding one more click. Phantom figures, not clinical.

Also printed: the automatic result (the same probability, post-processed as ``ian predict`` does)
for comparison; ``--per-case`` adds each case's mean coronal DSC, automatic and per click count,
and for the most clicks up to five, where each side's clicked path runs: the share of its voxels
more than 1 mm from that side's labelled nerve, and the farthest.

Run: ``.venv/bin/python bench/bench_clicks.py --model ian-default --set v1 --set unseen-artefacts [--per-case]``
(``--fast``: the probability in large tiles, as ``ian interactive --fast`` computes it).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_styles import cached_set  # noqa: E402

from napari_ian.trainer.evaluation import evaluate_volume, pooled_summary  # noqa: E402
from napari_ian.trainer.interactive import InteractiveSession  # noqa: E402
from napari_ian.trainer.modelfile import load_model  # noqa: E402
from napari_ian.trainer.pipeline import FAST_TILE  # noqa: E402
from napari_ian.trainer.openvino_runtime import BACKENDS  # noqa: E402
from napari_ian.trainer.predict import predict_volume  # noqa: E402
from napari_ian.trainer.registry import resolve_model  # noqa: E402


def centreline(labels, side, spacing):
    """Ordered centre points (voxels) of a labelled nerve, end to end: the longest path of a
    minimum spanning tree over its skeleton points (in mm), so a label in several pieces (a nerve
    that leaves the field of view and comes back) still gives one course across all of them."""
    from scipy.sparse.csgraph import minimum_spanning_tree, shortest_path
    from scipy.spatial.distance import cdist
    from skimage.morphology import skeletonize

    mask = labels == side
    skel = np.argwhere(skeletonize(mask))
    if len(skel) < 2:
        return np.argwhere(mask).astype(float)
    mm = skel * np.asarray(spacing)
    tree = minimum_spanning_tree(cdist(mm, mm))
    d0 = shortest_path(tree, directed=False, indices=[0])[0]
    a = int(np.argmax(d0))
    da, pred = shortest_path(tree, directed=False, indices=[a], return_predecessors=True)
    b = int(np.argmax(da[0]))
    path = [b]
    while path[-1] != a:
        path.append(int(pred[0, path[-1]]))
    return skel[path].astype(float)


def clicks_along(cl, n, spacing):
    arc = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(cl * np.asarray(spacing), axis=0), axis=1))])
    targets = (np.arange(n) + 0.5) / n * arc[-1]
    return [cl[int(np.argmin(np.abs(arc - t)))] for t in targets]


def path_offsets(sess, lab, spacing) -> str:
    """Per side with clicks: the share of the clicked path's voxels more than 1 mm from the side's
    labelled nerve, and the farthest (mm)."""
    from scipy import ndimage

    out = []
    for s in (1, 2):
        path = sess.course(s)
        if not len(path) or not (lab == s).any():
            continue
        d = ndimage.distance_transform_edt(lab != s, sampling=spacing)[tuple(path.T)]
        out.append(f"side {s} path {np.mean(d > 1.0):.0%} > 1 mm, max {d.max():.1f} mm")
    return "; ".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="ian-default")
    ap.add_argument("--no-model", action="store_true")
    ap.add_argument("--set", action="append", default=None)
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--clicks", default="1,2,3,5,8")
    ap.add_argument("--per-case", action="store_true", help="also each case's DSC")
    ap.add_argument("--fast", action="store_true",
                    help="the model's probability in large tiles, as ian interactive --fast computes it")
    ap.add_argument("--backend", default="torch", choices=BACKENDS,
                    help="what runs the network (default torch; ian interactive's default is auto)")
    a = ap.parse_args()
    counts = [int(c) for c in a.clicks.split(",")]
    model, meta = (None, None) if a.no_model else load_model(resolve_model(a.model))
    folder = Path(__file__).resolve().parent / "out" / "eval_sets"
    for name in a.set or ["v1", "unseen-artefacts"]:
        cases = cached_set(name, a.n, folder)
        res = {k: [] for k in counts}
        auto, rows, offsets = [], [], []
        path_count = max([k for k in counts if k <= 5] or counts[:1])
        click_t, prep_t = [], []
        for case, img, lab, sp in cases:
            t0 = time.perf_counter()
            pred = None if model is None else predict_volume(img, model, meta, sp, device="cpu",
                                                                  tile=FAST_TILE if a.fast else None,
                                                                  backend=a.backend)
            sess = InteractiveSession(img, sp, None if pred is None else pred.probability)
            prep_t.append(time.perf_counter() - t0)
            if pred is not None:
                auto.append(evaluate_volume(lab, pred.labels, sp))
            rows.append([case, None if pred is None else pooled_summary(auto[-1:])["dsc"]["mean"]])
            lines = {s: centreline(lab, s, sp) for s in (1, 2) if (lab == s).any()}
            for k in counts:
                clicks = [(p, s) for s, cl in lines.items() for p in clicks_along(cl, k, sp)]
                sess.set_clicks(clicks[:-1])
                # one click = the update of the side it changed (what the panel recomputes)
                t2 = time.perf_counter()
                changed = sess.set_clicks(clicks)
                for s in changed:
                    sess.side_mask(s)
                click_t.append((time.perf_counter() - t2, f"{case}, {k} clicks"))
                res[k].append(evaluate_volume(lab, sess.labels(), sp))
                rows[-1].append(pooled_summary(res[k][-1:])["dsc"]["mean"])
                if a.per_case and k == path_count:
                    offsets.append(path_offsets(sess, lab, sp))
        if auto:
            d = pooled_summary(auto)["dsc"]
            print(f"{name:<17} {Path(a.model).stem:<20} automatic:      DSC {d['mean']:.3f} ± {d['sd']:.3f} "
                  f"({d['median']:.3f})", flush=True)
        for k in counts:
            d = pooled_summary(res[k])["dsc"]
            print(f"{name:<17} {'no model' if model is None else Path(a.model).stem:<20} {k} clicks/side: "
                  f"DSC {d['mean']:.3f} ± {d['sd']:.3f} ({d['median']:.3f})", flush=True)
        if a.per_case:
            for (case, au, *by_count), off in zip(rows, offsets):
                print(f"{name:<17}   {case:<22} automatic {'-' if au is None else f'{au:.3f}'}; clicks "
                      + " / ".join(f"{k}: {v:.3f}" for k, v in zip(counts, by_count))
                      + f"; {path_count} clicks: {off}", flush=True)
        slowest = max(click_t)
        print(f"{name:<17} probability map {np.median(prep_t):.1f} s/case; one click update median "
              f"{np.median([t for t, _ in click_t]):.2f} s, max {slowest[0]:.2f} s ({slowest[1]})", flush=True)


if __name__ == "__main__":
    main()
