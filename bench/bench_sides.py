"""Which side a lone nerve is on: the course rule of ``trainer/sides.py`` on partial views of labelled nerves.

Every labelled nerve of the cached held-out sets of ``bench/eval_styles.py`` (24 in-style
renders, six each of sample look, ``v1`` and unseen artefacts) is taken alone, whole and cut to
six random windows (an AP stretch and an SI band, as a field of view that holds part of one side
would), and its side is read from its course by

* ``posterior``: the RL slope against the posterior distance of per-slice centroids (the rule
  before the sixteenth stop: towards the chin each nerve converges on the midline);
* ``posterior + inferior``: the RL slope against posterior + inferior distance of the nerve's
  voxels (:func:`napari_ian.trainer.sides.course_slope`: the nerve runs medially away from the
  angle of the mandible at both ends, to the chin and to the skull base);
* ``both``: the second, and the first where the second is too shallow to tell
  (:func:`napari_ian.trainer.sides.side_from_course`, what prediction uses).

Reported per rule: views called right, left undecided, and wrong. Labels only, no model; phantom
anatomy, so the figures say how the rule behaves on our generator's nerves, not on patients.

Run: ``.venv/bin/python bench/bench_sides.py`` (about a minute).
"""
from __future__ import annotations

import platform
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

from napari_ian.trainer.sides import MIN_BODY_SLOPE, MIN_SLOPE, body_slope, course_slope, side_by, side_from_course

sys.path.insert(0, str(Path(__file__).resolve().parent))     # its sibling eval_styles makes the sets

SETS = (("in-style", 24), ("sample", 6), ("v1", 6), ("unseen-artefacts", 6))


RULES = {"posterior": partial(side_by, body_slope, MIN_BODY_SLOPE),
         "posterior + inferior": partial(side_by, course_slope, MIN_SLOPE),
         "both": side_from_course}


def views(labels, side, rng, n=6):
    """The nerve whole, then cut to ``n`` random windows of AP slices and SI rows."""
    m = labels == side
    idx = np.flatnonzero(m.any(axis=(1, 2)))
    boxes = [(idx.min(), idx.max() + 1, 0, labels.shape[1])]
    for _ in range(n):
        a0 = int(rng.integers(idx.min(), idx.max()))
        s0 = int(rng.integers(0, labels.shape[1] // 2))
        boxes.append((a0, a0 + int(rng.integers(25, 120)), s0, s0 + int(rng.integers(labels.shape[1] // 3, labels.shape[1]))))
    for a0, a1, s0, s1 in boxes:
        v = np.zeros_like(m)
        v[a0:a1, s0:s1] = m[a0:a1, s0:s1]
        if v.sum() >= 50:
            yield v


def main():
    from eval_styles import cached_set

    rng = np.random.default_rng(1)
    counts = {rule: [0, 0, 0] for rule in RULES}
    nerves = 0
    t0 = time.perf_counter()
    for name, n in SETS:
        for case, _img, labels, sp in cached_set(name, n, Path(__file__).resolve().parent / "out" / "eval_sets"):
            for side in (1, 2):
                if np.count_nonzero(labels == side) < 50:
                    continue
                nerves += 1
                for v in views(labels, side, rng):
                    for rule, decide in RULES.items():
                        said = decide(v, sp)
                        counts[rule][0 if said == side else 1 if said is None else 2] += 1
    print(f"Machine: {platform.machine()}, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}; "
          f"{nerves} labelled nerves, {sum(counts['posterior'])} views, {time.perf_counter() - t0:.0f} s")
    print("| rule | right side | undecided | wrong side |\n| --- | --- | --- | --- |")
    for rule, (ok, none, bad) in counts.items():
        print(f"| {rule} | {ok} | {none} | {bad} |")


if __name__ == "__main__":
    main()
