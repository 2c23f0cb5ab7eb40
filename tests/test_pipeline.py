"""The prepare -> infer -> invert seam: robust normalisation, the working grid and back, crops."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_ian.trainer.normalise import count_nonfinite, normalise, robust_range
from napari_ian.trainer.pipeline import HalfSlices, Patches3D, Slices25D, pipeline_for_model, pipeline_from_dict
from napari_ian.trainer.resample import to_grid, working_shape


def _volume(seed=0, shape=(40, 30, 50)):
    rng = np.random.default_rng(seed)
    v = rng.gamma(2.0, 50.0, shape).astype(np.float32)
    v[18:22, 10:14, 20:24] += 2000.0           # a bright nerve-like blob (normalised: 3, the clip)
    return v


def test_normalisation_ignores_nan_inf_and_a_hot_voxel():
    v = _volume()
    ref = normalise(v)
    bad = v.copy()
    bad[0, 0, 0] = np.nan
    bad[0, 0, 1] = np.inf
    bad[0, 0, 2] = -np.inf
    bad[0, 0, 3] = 1e9                          # one hot metal voxel
    out = normalise(bad)
    assert np.isfinite(out).all() and out.dtype == np.float32
    assert out[0, 0, 0] == 0.0
    # everything else is scaled as before: the statistics did not move
    keep = np.ones(v.shape, bool)
    keep[0, 0, :4] = False
    np.testing.assert_allclose(out[keep], ref[keep], atol=5e-3)
    assert count_nonfinite(bad) == 3 and count_nonfinite(v) == 0
    # per-slice min-max (the old way) would have squashed that slice to almost nothing
    assert out[0].std() > 0.1


def test_normalisation_of_degenerate_volumes():
    assert robust_range(np.full((3, 3, 3), np.nan)) == (0.0, 1.0)
    assert np.all(normalise(np.full((3, 3, 3), 7.0)) == 0)
    assert np.isfinite(normalise(np.full((3, 3, 3), np.inf))).all()


def test_working_grid_round_trip_keeps_geometry():
    sp, work = (0.8, 1.6, 0.43), (0.8, 0.5, 0.5)
    shape = (30, 20, 70)
    assert working_shape(shape, sp, work) == (30, 62, 61)   # covers (n - 1) * spacing, rounded up
    # a smooth field survives the round trip; labels (order 0) stay labels
    a, s, r = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    f = np.sin(a * sp[0] / 9) + np.cos(s * sp[1] / 11) + np.sin(r * sp[2] / 7)
    w = to_grid(f, sp, work)
    back = to_grid(w, work, sp, shape)
    assert back.shape == shape
    assert np.abs(back - f)[:, :-2, :-2].max() < 0.05
    lab = (f > 1.2).astype(np.uint8) * 2
    lw = to_grid(lab, sp, work, order=0)
    assert lw.dtype == np.uint8 and set(np.unique(lw)) <= {0, 2}
    # the first voxel centres coincide: a value at voxel 0 stays at voxel 0
    assert to_grid(f, sp, work)[0, 0, 0] == pytest.approx(f[0, 0, 0])


class _Constant(torch.nn.Module):
    """A fake network: logit +10 where the centre channel is very bright, -10 elsewhere."""

    def forward(self, x):
        c = x[:, x.shape[1] // 2: x.shape[1] // 2 + 1]
        return (c > 2.0).float() * 20 - 10


def test_slices25d_maps_probability_back_onto_the_input_grid():
    v = _volume(1, (30, 24, 60))
    pipe = Slices25D(context=3, spacing_mm=(0.8, 0.5, 0.5))
    prep = pipe.prepare(v, (0.8, 1.0, 0.43))
    assert prep.volume.shape == working_shape(v.shape, (0.8, 1.0, 0.43), pipe.spacing_mm)
    prob = pipe.invert(pipe.infer(prep, _Constant(), torch.device("cpu")), prep)
    assert prob.shape == v.shape
    # the bright blob is found where it is on the input grid (edges interpolated)
    assert prob[18:22, 11:13, 21:23].min() > 0.9 and prob[:10].max() < 0.1
    found = np.argwhere(prob > 0.5)
    assert found.min(axis=0).tolist() >= [18, 9, 19] and found.max(axis=0).tolist() <= [21, 14, 24]
    flipped = Slices25D(context=3, flip_tta=True).infer(prep, _Constant(), torch.device("cpu"))
    np.testing.assert_allclose(flipped, pipe.infer(prep, _Constant(), torch.device("cpu")), atol=1e-6)


def test_predict_volume_with_flip_tta_averages_a_pass_over_the_mirrored_volume():
    """``predict_volume(flip_tta=True)``: the mean of the plain pass and of a pass over the
    right-left mirrored volume, mirrored back (a network that is not mirror-symmetric shows it)."""
    from tiny_models import tiny3d

    from napari_ian.trainer.predict import predict_volume

    _, meta = tiny3d()     # its pipeline: 16 x 32 x 32 patches on a 2 x 1.5 x 1.5 mm grid

    class Ramp(torch.nn.Module):
        """Logits rising from the patient's right to left across each patch, plus the image."""

        def forward(self, x):
            return x[:, :1] + torch.linspace(-6.0, 6.0, x.shape[-1])

    v = _volume(3, (12, 24, 28))       # one patch, on the working grid: nothing resampled
    plain = predict_volume(v, Ramp(), meta, (2.0, 1.5, 1.5), device="cpu", postprocess=False)
    both = predict_volume(v, Ramp(), meta, (2.0, 1.5, 1.5), device="cpu", postprocess=False, flip_tta=True)
    mirrored = predict_volume(np.ascontiguousarray(v[:, :, ::-1]), Ramp(), meta, (2.0, 1.5, 1.5), device="cpu",
                              postprocess=False)
    np.testing.assert_allclose(both.probability, (plain.probability + mirrored.probability[:, :, ::-1]) / 2,
                               atol=1e-5)
    assert np.abs(both.probability - plain.probability).max() > 0.1
    assert both.flip_tta and not plain.flip_tta


def test_patches3d_covers_the_volume_and_blends_patches():
    v = _volume(2, (20, 40, 50))
    pipe = Patches3D(patch=(8, 16, 16), spacing_mm=(1.0, 1.0, 1.0))
    prep = pipe.prepare(v, (1.0, 1.0, 1.0))

    class Net(torch.nn.Module):
        def forward(self, x):
            return (x > 2.0).float() * 20 - 10

    prob = pipe.invert(pipe.infer(prep, Net(), torch.device("cpu")), prep)
    assert prob.shape == v.shape
    assert prob[18:20, 10:14, 20:24].mean() > 0.9 and prob[:, :5, :5].max() < 0.1


def test_box_is_prepared_with_context_and_pasted_back():
    v = _volume(3, (30, 24, 60))
    pipe = Slices25D(context=3)
    box = (slice(10, 25), slice(0, 24), slice(15, 45))
    prep = pipe.prepare(v, (0.8, 1.0, 0.5), box=box)
    assert prep.box[0].start < 10 and prep.box[2].start < 15          # widened by the margin
    prob = pipe.invert(pipe.infer(prep, _Constant(), torch.device("cpu")), prep, v.shape)
    assert prob.shape == v.shape


def test_crops_for_training_target_the_allowed_side_only():
    rng = np.random.default_rng(0)
    vol = np.zeros((20, 40, 100), np.float32)
    lab = np.zeros(vol.shape, np.uint8)
    lab[:, 18:22, 20:24] = 1                   # right nerve (left of the midline column 50)
    lab[:, 18:22, 76:80] = 2
    pipe = Slices25D(context=3)
    allowed = np.zeros((2, 20), bool)
    allowed[1, 5:8] = True                     # only the left side of slices 5-7 is trusted
    x, y = pipe.sample(vol, lab, rng, 40, (16, 32), positive_fraction=0.9, allowed=allowed, midline=50)
    assert x.shape == (40, 3, 16, 32) and y.shape == (40, 16, 32)
    assert y.any() and y.max() == 1
    # synthetic training: any nerve voxel is a target
    x, y = pipe.sample(vol, lab, rng, 10, (16, 32))
    assert y.max() == 1


def test_3d_crops_for_fine_tuning_teach_only_on_allowed_slices_and_sides():
    from napari_ian.trainer.losses import IGNORE

    rng = np.random.default_rng(1)
    vol = rng.random((30, 20, 60)).astype(np.float32)
    lab = np.zeros(vol.shape, np.uint8)
    lab[:, 9:11, 10:12] = 1                    # right nerve (left of the midline column 30)
    lab[:, 9:11, 45:47] = 2
    allowed = np.zeros((2, 30), bool)
    allowed[0, 12] = True                      # one corrected slice of the right side
    allowed[1, [18, 19]] = True                # two of the left side
    pipe = Patches3D(patch=(8, 16, 16), spacing_mm=(1.0, 1.0, 1.0))
    x, y = pipe.sample(vol, lab, rng, 60, allowed=allowed, midline=30)
    assert x.shape == (60, 1, 8, 16, 16) and y.shape == (60, 8, 16, 16)
    assert set(np.unique(y)) == {0, 1, IGNORE}
    for xi, yi in zip(x, y):
        counted = yi != IGNORE
        assert counted.any()                   # every crop teaches something
        # find the crop's place from its image, then check each counted voxel's slice and side
        hits = [(a, b, c) for a in range(23) for b in range(5) for c in range(45)
                if np.array_equal(vol[a:a + 8, b:b + 16, c:c + 16], xi[0])]
        assert len(hits) == 1
        a, b, c = hits[0]
        for (i, j, k) in np.argwhere(counted):
            side = 0 if c + k < 30 else 1
            assert allowed[side, a + i]
            assert yi[i, j, k] == (lab[a + i, b + j, c + k] > 0)
    # synthetic training (nothing restricted): any nerve voxel is a target, nothing ignored
    x, y = pipe.sample(vol, lab, rng, 10)
    assert set(np.unique(y)) <= {0, 1} and y.max() == 1


def test_3d_slice_inference_matches_the_whole_volume_on_those_slices():
    v = _volume(4, (40, 30, 50))
    pipe = Patches3D(patch=(8, 16, 16), spacing_mm=(1.0, 1.0, 1.0))
    prep = pipe.prepare(v, (1.0, 1.0, 1.0))

    class Net(torch.nn.Module):               # voxel-wise: any patch tiling gives the same answer
        def forward(self, x):
            return x * 4 - 6

    whole = pipe.infer(prep, Net(), torch.device("cpu"))
    centres = np.array([17, 18, 19, 20, 21])
    some = pipe.infer_slices(prep.volume, centres, (False,), Net(), torch.device("cpu"))
    np.testing.assert_allclose(some, whole[centres], atol=1e-5)
    # runs of slices far apart, in any order, the volume's ends included
    centres = np.array([36, 0, 2, 39, 20, 1])
    some = pipe.infer_slices(prep.volume, centres, (False,), Net(), torch.device("cpu"))
    np.testing.assert_allclose(some, whole[centres], atol=1e-5)


def test_3d_slice_inference_never_pays_for_the_slices_between_distant_runs():
    v = _volume(4, (80, 16, 16))
    pipe = Patches3D(patch=(8, 16, 16), spacing_mm=(1.0, 1.0, 1.0))
    prep = pipe.prepare(v, (1.0, 1.0, 1.0))
    depths = []

    class Net(torch.nn.Module):
        def forward(self, x):
            depths.extend([x.shape[2]] * x.shape[0])
            return x

    pipe.infer_slices(prep.volume, np.array([5, 7, 70, 72]), (False,), Net(), torch.device("cpu"))
    assert depths == [8, 8]                  # one patch-deep slab per run, not the 70 slices between


@pytest.mark.parametrize("shape", [(147, 202, 279), (60, 100, 120), (8, 16, 16), (33, 97, 300), (5, 7, 9)])
def test_prediction_tiles_cover_the_volume_within_their_limits(shape):
    pipe = Patches3D(patch=(32, 96, 96), overlap=0.25, tile=(80, 208, 288))
    size, starts = pipe.tiling(shape)
    for n, p, cap, t, s in zip(shape, pipe.patch, pipe.tile, size, starts):
        assert t % 8 == 0 and t >= p
        assert s[0] == 0 and s[-1] + t >= n                       # covered to the last voxel
        if len(s) > 1:
            assert t <= cap and s[-1] == n - t
            gaps = np.diff(s)
            assert gaps.max() - gaps.min() <= 1                     # spread evenly
            assert t - gaps.max() >= round(p * pipe.overlap)       # neighbours overlap at least that
        else:
            assert t == max(p, -(-n // 8) * 8)                       # one tile: the volume padded to a multiple
    # without a tile limit prediction keeps the training patch and its overlap
    assert Patches3D(patch=(32, 96, 96), overlap=0.25).tiling(shape)[0] == (32, 96, 96)


def test_one_large_tile_gives_the_network_on_the_whole_volume():
    v = _volume(5, (24, 40, 48))
    pipe = Patches3D(patch=(8, 16, 16), spacing_mm=(1.0, 1.0, 1.0), tile=(64, 64, 64))
    prep = pipe.prepare(v, (1.0, 1.0, 1.0))
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.InstanceNorm3d(4),
                              torch.nn.Conv3d(4, 1, 3, padding=1)).eval()
    with torch.no_grad():
        direct = torch.sigmoid(net(torch.from_numpy(prep.volume)[None, None]))[0, 0].numpy()
    np.testing.assert_allclose(pipe.infer(prep, net, torch.device("cpu")), direct, atol=1e-5)
    # the training-size patches see less of the volume, so their instance norm differs
    small = Patches3D(patch=(8, 16, 16), spacing_mm=(1.0, 1.0, 1.0))
    assert np.abs(small.infer(prep, net, torch.device("cpu")) - direct).max() > 1e-3


def test_pipelines_round_trip_through_model_metadata():
    for p in (Slices25D(context=5, flip_tta=True), Patches3D(patch=(16, 32, 32)), HalfSlices(size=(64, 160)),
              Patches3D(patch=(16, 32, 32), tile=(48, 96, 128))):
        assert pipeline_from_dict(p.to_dict()) == p
    old = pipeline_for_model({"preprocessing": {"size": [64, 160], "context": 3, "intensity": "min-max"}})
    assert isinstance(old, HalfSlices) and old.size == (64, 160)
    with pytest.raises(ValueError, match="not one this napari-ian knows"):
        pipeline_from_dict({"pipeline": "transformer9d"})


def test_two_pass_inference_finds_the_same_nerve_as_one_pass():
    v = _volume(4, (60, 40, 80))
    one = Slices25D(context=3, roi_min_voxels=10 ** 12)
    two = Slices25D(context=3, roi_min_voxels=1, roi_stride=3, roi_margin_mm=4.0)
    prep = one.prepare(v, (0.8, 0.5, 0.5))
    calls = []

    class Counting(_Constant):
        def forward(self, x):
            calls.append(x.shape[0] * x.shape[2] * x.shape[3])
            return super().forward(x)

    p1 = one.infer(prep, Counting(), torch.device("cpu"))
    work_one = sum(calls)
    calls.clear()
    p2 = two.infer(prep, Counting(), torch.device("cpu"))
    assert np.array_equal(p1 > 0.5, p2 > 0.5)
    assert sum(calls) < 0.6 * work_one          # the second pass only ran around the blob
    # nothing found in the first pass: nothing is run again and nothing is returned
    calls.clear()
    quiet = two.infer(two.prepare(np.ones((60, 40, 80), np.float32), (0.8, 0.5, 0.5)), Counting(), torch.device("cpu"))
    assert not quiet.any() and sum(calls) == 20 * 48 * 80   # the first pass only (20 slices, padded to 48 x 80)


def test_large_tiles_fit_a_deeper_networks_downsampling():
    from napari_ian.trainer.nets import UNet3D
    from napari_ian.trainer.predict import predict_volume

    v = _volume(6, (40, 40, 40))
    pipe = Patches3D(patch=(16, 32, 32), spacing_mm=(1.0, 1.0, 1.0))
    torch.manual_seed(0)
    net = UNet3D(base=2, depth=4).eval()            # needs multiples of 16; 40 voxels is not one
    meta = {"preprocessing": pipe.to_dict()}
    tiled = predict_volume(v, net, meta, (1.0, 1.0, 1.0), device="cpu", tile=(64, 64, 64), postprocess=False)
    assert tiled.probability.shape == v.shape and np.isfinite(tiled.probability).all()
    assert "multiple" not in meta["preprocessing"]   # a prediction-time setting, not a model file's
