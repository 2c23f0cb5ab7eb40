"""The training-data generator: anatomy label maps, randomised looks, random views.

The generator's randomisation stays inside its documented ranges, intensity effects never move a
label, geometry effects move tissues and labels alike, and seeds make it reproducible.
"""
from __future__ import annotations

import numpy as np
import pytest

from napari_ian.sample_data.anatomy import T, Grid, draw_anatomy, ian_labels, landmarks, nerve_paths, tissue_map
from napari_ian.sample_data.render import STYLE_RANGES, Style, mrn_style, random_style, render
from napari_ian.sample_data.synth import GEOMETRY_RANGES, anatomy_on_grid, random_view, random_volume

COARSE = (1.6, 1.0, 1.0)   # a coarse grid keeps these tests fast


@pytest.fixture(scope="module")
def anatomy():
    return anatomy_on_grid(300_500, COARSE)


def test_random_styles_respect_their_ranges():
    rng = np.random.default_rng(0)
    R = STYLE_RANGES
    for _ in range(300):
        s = random_style(rng, grid_spacing=COARSE)
        assert s.family in R["family"]
        assert s.means[T["background"]] == 0 and s.means[T["metal"]] == 0
        assert np.all(s.means >= 0)
        # the nerve always differs from what it runs through, and in the MRN look it is the brightest of them
        assert s.nerve_gap >= R["nerve_gap_min"] - 1e-6 and s.cnr_min == R["cnr_min"]
        if s.family == "mrn":
            assert s.means[T["nerve"]] > max(s.means[T[k]] for k in ("canal", "fat", "pterygoid"))
        assert np.all((s.texture >= 0) & (s.texture <= R["texture_amplitude"][1]))
        thick = max(s.voxel_mm)
        assert thick <= max(R["voxel_thickness_mm"][1], max(COARSE)) + 1e-9
        assert all(v >= g - 1e-9 for v, g in zip(s.voxel_mm, COARSE))
        assert R["snr"][0] <= s.snr <= R["snr"][1]
        assert R["coils"][0] <= s.coils <= R["coils"][1]
        assert R["gamma"][0] <= s.gamma <= R["gamma"][1]
        assert 0 <= s.ghost_strength <= R["ghost_strength"][1]
        assert s.readout_axis != s.phase_axis


def test_intensity_effects_never_move_a_label(anatomy):
    rng = np.random.default_rng(1)
    for _ in range(4):
        style = random_style(rng, grid_spacing=COARSE)
        img, lab = render(anatomy.tissue, anatomy.labels, COARSE, style, rng, metal=())
        assert np.array_equal(lab, anatomy.labels)
        assert img.shape == lab.shape and img.dtype == np.float32 and np.isfinite(img).all()


def test_random_views_move_tissues_and_labels_alike(anatomy):
    rng = np.random.default_rng(2)
    for _ in range(3):
        tissue, labels, metal = random_view(anatomy, rng)
        assert tissue.shape == labels.shape
        # every labelled voxel is nerve tissue after the same warp (the label lies inside the nerve)
        assert labels.any()
        assert np.all(tissue[labels > 0] == T["nerve"])
        # and a look where only the nerve is bright shows the labels bright
        means = np.zeros(len(mrn_style().means), np.float32)
        means[T["nerve"]] = 1.0
        img, lab = render(tissue, labels, COARSE, Style(means=means, texture=np.zeros_like(means)), rng,
                          acquire=False)
        assert np.all(img[lab > 0] == 1.0)


def test_random_views_respect_the_field_of_view_range(anatomy):
    rng = np.random.default_rng(3)
    lo = np.array([r[0] for r in GEOMETRY_RANGES["fov_mm"]])
    hi = np.array([r[1] for r in GEOMETRY_RANGES["fov_mm"]])
    for _ in range(4):
        tissue, _, _ = random_view(anatomy, rng)
        fov = np.asarray(tissue.shape) * np.asarray(COARSE)
        assert np.all(fov <= hi + np.asarray(COARSE))
        assert np.all((fov >= lo - np.asarray(COARSE)) | (np.asarray(tissue.shape) == anatomy.tissue.shape))


def test_same_seed_same_volume(anatomy):
    a = random_volume(anatomy, np.random.default_rng(9))
    b = random_volume(anatomy, np.random.default_rng(9))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_anatomy_labels_are_the_nerve_from_the_skull_base_to_the_mental_foramen():
    p = draw_anatomy(300_501)
    lm = landmarks(p)
    lo, hi = lm.extent()
    sp = (1.0, 1.0, 1.0)
    g = Grid(tuple(int((hi[i] - lo[i]) / sp[0]) for i in (1, 2, 0)), sp, (lo[1], lo[2], lo[0]))
    tissue, labels, info = tissue_map(p, g)
    paths = nerve_paths(p)
    for s, code in ((-1, 1), (1, 2)):
        idx = np.argwhere(labels == code)
        z = lo[2] + idx[:, 1] * sp[1]
        assert z.min() >= -1.0 and z.min() <= 2.5          # starts at the skull base (z = 0)
        # the nerve tissue continues above the skull base (unlabelled)
        above = g.to_index(paths[s]["above"])
        inside = np.all((above >= 0) & (above < np.asarray(g.shape) - 1), axis=1)
        ai = np.rint(above[inside]).astype(int)
        assert (tissue[tuple(ai.T)] == T["nerve"]).mean() > 0.8 and not labels[tuple(ai.T)].any()
    assert set(np.unique(ian_labels(paths, g)).tolist()) == {0, 1, 2}


def test_metal_at_the_edge_of_a_field_of_view_is_skipped_not_fatal():
    from napari_ian.sample_data.render import metal_artifacts

    img = np.ones((10, 10, 10), np.float32)
    lab = np.zeros(img.shape, np.uint8)
    for centre in ([0, 5, 5], [9.6, 5, 5], [-3, 5, 5], [5, 5, 5]):
        out, _ = metal_artifacts(img, lab, [(np.array(centre, float), 3.0, "crown")], (0.8, 0.5, 0.5))
        assert out.shape == img.shape and np.isfinite(out).all()


def test_the_training_doc_carries_the_ranges_the_code_uses():
    from pathlib import Path

    from napari_ian.sample_data.synth import ranges_markdown

    doc = (Path(__file__).resolve().parents[1] / "docs" / "training.md").read_text()
    table = doc.split("<!-- ranges -->")[1].split("<!-- /ranges -->")[0].strip()
    assert table == ranges_markdown()
