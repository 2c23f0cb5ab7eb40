"""A montage PNG of coronal, axial and sagittal phantom slices with the label outline.

Run ``python -m napari_ian.sample_data.montage --seed 0 --out docs/phantom_montage.png``.
"""
from __future__ import annotations

import argparse

import numpy as np


def _outline(mask2d):
    from scipy import ndimage
    return ndimage.binary_dilation(mask2d) & ~mask2d  # around the label: the nerve stays visible


def plot_montage(image, labels, spacing, out, title=""):
    """Save a 3 x 3 grid of coronal / axial / sagittal slices through the nerves (matplotlib)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sp = np.asarray(spacing, dtype=float)
    vmax = float(np.percentile(image, 99.7))
    colours = {1: (1.0, 0.25, 0.2), 2: (0.2, 0.8, 1.0)}
    lab_idx = np.argwhere(labels > 0)
    ap_lo, ap_hi = lab_idx[:, 0].min(), lab_idx[:, 0].max()
    coronal = [int(ap_lo + f * (ap_hi - ap_lo)) for f in (0.12, 0.55, 0.85)]
    right = np.argwhere(labels == 1)
    si_levels = [int(np.percentile(right[:, 1], q)) for q in (10, 70)] if len(right) else [labels.shape[1] // 2] * 2
    rl_right = int(np.median(right[:, 2])) if len(right) else labels.shape[2] // 3
    fig, axes = plt.subplots(3, 3, figsize=(15, 13), facecolor="black")

    def show(ax, img2d, lab2d, aspect, name):
        ax.imshow(img2d, cmap="gray", vmin=0, vmax=vmax, aspect=aspect, interpolation="nearest")
        rgba = np.zeros(lab2d.shape + (4,))
        for k, c in colours.items():
            o = _outline(lab2d == k)
            rgba[o] = (*c, 1.0)
        ax.imshow(rgba, aspect=aspect, interpolation="nearest")
        ax.set_title(name, color="white", fontsize=10)
        ax.axis("off")

    for j, i in enumerate(coronal):  # coronal: rows = SI, cols = RL
        show(axes[0, j], image[i], labels[i], sp[1] / sp[2], f"coronal slice {i} (AP {i * sp[0]:.0f} mm)")
    for j, k in enumerate(si_levels + [int(np.percentile(right[:, 1], 98)) if len(right) else 0]):
        show(axes[1, j], image[:, k, :], labels[:, k, :], sp[0] / sp[2], f"axial slice {k} (SI {k * sp[1]:.0f} mm)")
    for j, l_ in enumerate([rl_right, rl_right + int(4 / sp[2]), labels.shape[2] - 1 - rl_right]):
        show(axes[2, j], image[:, :, l_].T, labels[:, :, l_].T, sp[1] / sp[0], f"sagittal slice {l_} (RL {l_ * sp[2]:.0f} mm)")
    fig.suptitle(title or "napari-ian phantom (synthetic, not patient data): red = right IAN, blue = left IAN",
                 color="white")
    fig.tight_layout()
    fig.savefig(out, dpi=90, facecolor="black")
    plt.close(fig)
    return out


def main(argv=None):
    from .phantom import make_phantom

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="docs/phantom_montage.png")
    ap.add_argument("--training-looks", default=None, help="also draw randomised training looks to this PNG")
    a = ap.parse_args(argv)
    if a.training_looks:
        print(plot_training_looks(a.training_looks))
    image, labels, spacing, info = make_phantom(a.seed)
    plot_montage(image, labels, spacing, a.out,
                 f"napari-ian phantom, seed {a.seed} (synthetic, not patient data): red = right IAN, blue = left IAN")
    print(a.out)



def plot_training_looks(out, seed: int = 100_000, n: int = 8, spacing=(1.6, 1.0, 1.0)):
    """One anatomy through ``n`` randomised training looks (coronal slices through the nerve)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .synth import anatomy_on_grid, random_volume

    a = anatomy_on_grid(seed, spacing)
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(2, n // 2, figsize=(3.2 * n // 2, 6.4), facecolor="black")
    for ax in axes.ravel():
        img, lab, st = random_volume(a, rng)
        pos = np.argwhere(lab > 0)
        i = int(np.median(pos[:, 0])) if len(pos) else img.shape[0] // 2
        ax.imshow(img[i], cmap="gray", vmin=0, vmax=float(np.percentile(img, 99.7)),
                  aspect=spacing[1] / spacing[2], interpolation="nearest")
        ax.contour(lab[i] > 0, levels=[0.5], colors=[(1.0, 0.3, 0.2)], linewidths=0.7)
        ax.set_title(f"{st.family}, voxel {'x'.join(f'{v:.1f}' for v in st.voxel_mm)} mm, SNR {st.snr:.0f}",
                     color="white", fontsize=8)
        ax.axis("off")
    fig.suptitle("training volumes: one phantom anatomy, random looks and views (red: IAN label)", color="white")
    fig.tight_layout()
    fig.savefig(out, dpi=80, facecolor="black")
    plt.close(fig)
    return out


if __name__ == "__main__":
    main()
