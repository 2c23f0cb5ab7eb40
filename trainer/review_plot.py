"""The nerve-measurement plot, drawn with matplotlib's Agg backend into an RGBA array (no GUI, any thread)."""
from __future__ import annotations

import numpy as np


def measurements_rgba(rows, marker: int | None = None, dpi: int = 100) -> np.ndarray:
    """Area (mm²) and mean signal along the nerve for both sides, as an (H, W, 4) uint8 RGBA picture.

    Parameters
    ----------
    rows : list of dict
        From :func:`napari_ian.trainer.review.nerve_measurements` (``side``, ``slice``,
        ``distance_mm``, ``area_mm2``, ``mean_signal``).
    marker : int, optional
        Slice where the anterior-loop / mental-foramen region ends; drawn as a dashed line.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), dpi=dpi, tight_layout=True)
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    for side, colour in (("right", "tab:red"), ("left", "tab:blue")):
        rs = [r for r in rows if r["side"] == side]
        if not rs:
            continue
        x = [r["distance_mm"] for r in rs]
        ax1.plot(x, [r["area_mm2"] for r in rs], color=colour, label=f"{side} IAN")
        ax2.plot(x, [r["mean_signal"] for r in rs], color=colour)
        slices = [r["slice"] for r in rs]
        if marker is not None and min(slices) <= marker <= max(slices):
            # interpolated: the marker may fall on a slice where this side has a gap
            order = np.argsort(slices)
            d = float(np.interp(marker, np.asarray(slices)[order], np.asarray(x)[order]))
            for ax in (ax1, ax2):
                ax.axvline(d, color=colour, linestyle="--", linewidth=0.8)
    ax1.set_ylabel("area (mm²)")
    ax2.set_ylabel("mean signal")
    ax2.set_xlabel("distance along the nerve (mm, from its first slice)")
    if rows:
        ax1.legend(fontsize=8)
    fig.canvas.draw()
    return np.array(fig.canvas.buffer_rgba())
