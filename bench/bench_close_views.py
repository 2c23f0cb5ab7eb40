"""Time closing napari's layers with the three views shown, the side views' removals batched or not.

napari cleans a canvas's scene graph, with a full garbage collection, after each layer it removes
outside a batch. ``napari_ian._window.share_layer_batches`` (which the Case panel's three views
connect) puts the side views' removals in the main viewer's batch. This script shows the sample
patient with ``--layers`` layers in two viewers, one with the views shown as the Case panel shows
them and one with napari-orthogonal-views' own ``show()`` only, and times ``layers.clear()``
(what ``viewer.close()`` does first) in each, alternating, in one process.

Run: ``xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python bench/bench_close_views.py [--rounds 3]``
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np


def one_clear(shared: bool, n_layers: int) -> tuple[float, int]:
    import napari
    from napari._vispy.canvas import VispyCanvas

    from napari_ian.__main__ import pump
    from napari_ian._window import orthoviews, show_three_views, side_viewer_models

    viewer = napari.Viewer()
    image, truth = viewer.open_sample("napari-ian", "phantom")
    for i in range(n_layers - 2):
        viewer.add_labels(np.zeros(truth.data.shape, np.uint8), scale=truth.scale, name=f"labels {i}")
    if shared:
        show_three_views(viewer)
    else:
        orthoviews(viewer).show()
    pump(1.5)
    assert len(side_viewer_models(viewer)) == 2
    cleaned, clean = [], VispyCanvas._clean_and_update_scenegraph
    VispyCanvas._clean_and_update_scenegraph = lambda self: (cleaned.append(self), clean(self))
    try:
        t0 = time.perf_counter()
        viewer.layers.clear()
        seconds = time.perf_counter() - t0
    finally:
        VispyCanvas._clean_and_update_scenegraph = clean
    orthoviews(viewer).cleanup()
    viewer.close()
    pump(0.5)
    return seconds, len(cleaned)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--layers", type=int, default=8, help="layers in the viewer, the sample's two included")
    a = ap.parse_args()
    times = {True: [], False: []}
    for _ in range(a.rounds):
        for shared in (False, True):
            s, n = one_clear(shared, a.layers)
            times[shared].append(s)
            print(f"{'batched' if shared else 'one by one':>10}: layers.clear() {s:.2f} s, "
                  f"{n} scene-graph clean-ups", flush=True)
    print(f"\n{platform.processor() or platform.machine()}, {a.layers} layers, the three views shown")
    for shared in (False, True):
        print(f"{'side views batched' if shared else 'side views one by one':>22}: median "
              f"{float(np.median(times[shared])):.2f} s over {a.rounds}")


if __name__ == "__main__":
    main()
