"""The Review panel's summary: the case's per-nerve figures as a small table that fits a narrow dock.

One row per nerve: per-slice DSC as mean ± SD, the share of its reference slices that failed
(DSC < 0.3: complete, tracking or boundary failures), false-positive slices, then the 3D DSC,
HD95 and volumetric similarity once they are computed. Every figure, with the medians, IoU,
precision, recall and each failure category, is in the tooltip.
"""
from __future__ import annotations

HEADER = ("", "DSC", "fail", "FP", "3D DSC", "HD95", "VS")


def _cell(text, bold=False):
    return f"<td style='padding-right:4px; white-space:nowrap'>{'<b>' if bold else ''}{text}{'</b>' if bold else ''}</td>"


def summary_html(summary: dict, nerve3d: dict | None = None, note: str = "") -> str:
    """``summary``: :meth:`SliceReview.summary`; ``nerve3d``: side -> nerve_metrics, or None (computing)."""
    rows = ["<tr>" + "".join(_cell(h, True) for h in HEADER) + "</tr>"]
    for side, s in summary.items():
        cells = [side]
        if s["reference_positive_slices"]:
            d, fr = s["dsc"], s["failure_rates"]
            cells += [f"{d['mean']:.3f} ± {d['sd']:.3f}", f"{fr['boundary']:.0%}"]
        else:
            cells += ["no nerve", "–"]
        cells.append(str(s["false_positive_slices"]))
        m = (nerve3d or {}).get(side)
        cells += ([f"{m['dsc_3d']:.3f}", f"{m['hd95_mm']:.2f}", f"{m['volumetric_similarity']:.3f}"]
                  if m else ["…", "…", "…"])
        rows.append("<tr>" + "".join(_cell(c) for c in cells) + "</tr>")
    text = "<table cellspacing=0>" + "".join(rows) + "</table>"
    if nerve3d is None and not note:
        note = "3D figures: computing…"
    return text + (f"<i>{note}</i>" if note else "")


def summary_tooltip(summary: dict, nerve3d: dict | None = None) -> str:
    """Every figure of the summary, in words."""
    lines = ["<i>DSC: mean ± SD over the nerve's slices; fail: share of them with DSC &lt; 0.3; FP: false-positive "
             "slices; 3D DSC, HD95 (mm) and volumetric similarity (VS) of the whole nerve.</i>"]
    for side, s in summary.items():
        if not s["reference_positive_slices"]:
            lines.append(f"<b>{side}</b>: no reference nerve; {s['false_positive_slices']} false-positive slices")
            continue
        d, fr = s["dsc"], s["failure_rates"]
        lines.append(f"<b>{side}</b>: DSC {d['mean']:.3f} ± {d['sd']:.3f} ({d['median']:.3f}), IoU "
                     f"{s['iou']['mean']:.3f}, precision {s['precision']['mean']:.3f}, recall {s['recall']['mean']:.3f}; "
                     f"failures: complete {fr['complete']:.1%}, tracking {fr['tracking']:.1%}, "
                     f"boundary {fr['boundary']:.1%} of {fr['n']} slices; FP slices {s['false_positive_slices']}")
        m = (nerve3d or {}).get(side)
        if m:
            lines.append(f"<b>{side}</b> 3D: DSC {m['dsc_3d']:.3f}, HD95 {m['hd95_mm']:.2f} mm, volumetric "
                         f"similarity {m['volumetric_similarity']:.3f}")
    return "<br>".join(lines)
