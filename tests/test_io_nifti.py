"""NIfTI reading into the canonical (P, I, L) orientation and writing masks back on the source grid.

Expectations are computed with nibabel directly (as_closest_canonical, aff2axcodes), never with
napari-ian's own orientation code.
"""
from __future__ import annotations

import os

import nibabel as nib
import nibabel.testing
import numpy as np
import pytest

from napari_ian.trainer.errors import VolumeReadError, VolumeWriteError
from napari_ian.trainer.io import read_volume
from napari_ian.trainer.io_nifti import read_nifti, write_nifti

ANAT = os.path.join(nibabel.testing.data_path, "anatomical.nii")
EX4D = os.path.join(nibabel.testing.data_path, "example4d.nii.gz")


def _pil_from_ras(ras_img):
    """Independent expectation: the (P, I, L) array and affine from nibabel's RAS+ canonical image.

    In nibabel's codes each letter names the direction the index grows toward, so the RAS array's
    index grows toward the patient's right, anterior and superior. Canonical (P, I, L) index
    (p, i, l) is therefore RAS index (nR-1-l, nA-1-p, nS-1-i).
    """
    data = np.asanyarray(ras_img.dataobj)
    n_r, n_a, n_s = data.shape
    pil = data[::-1, ::-1, ::-1].transpose(1, 2, 0)
    m = np.zeros((4, 4))
    m[0, 2], m[0, 3] = -1, n_r - 1   # RAS i = nR-1-l
    m[1, 0], m[1, 3] = -1, n_a - 1   # RAS j = nA-1-p
    m[2, 1], m[2, 3] = -1, n_s - 1   # RAS k = nS-1-i
    m[3, 3] = 1
    return pil, ras_img.affine @ m


def _assert_one_line_naming(exc, path):
    msg = str(exc)
    assert "\n" not in msg and "\r" not in msg, msg
    assert os.fspath(path) in msg, msg


# -- reading ------------------------------------------------------------------------------------
def test_anatomical_canonical_shape_spacing_orientation():
    src = nib.load(ANAT)
    ras = nib.as_closest_canonical(src)
    assert nib.aff2axcodes(ras.affine) == ("R", "A", "S")
    exp_data, exp_affine = _pil_from_ras(ras)
    z = ras.header.get_zooms()[:3]  # (R, A, S)

    vol = read_volume(ANAT)
    assert vol.data.shape == exp_data.shape == (src.shape[1], src.shape[2], src.shape[0])
    np.testing.assert_allclose(vol.spacing, (z[1], z[2], z[0]), rtol=1e-6)
    np.testing.assert_allclose(vol.geometry.canonical_affine, exp_affine, atol=1e-6)
    assert nib.aff2axcodes(vol.geometry.canonical_affine) == ("P", "I", "L")
    assert np.array_equal(vol.data, exp_data)
    assert vol.data.dtype.isnative, vol.data.dtype
    assert vol.data.dtype.kind == exp_data.dtype.kind and vol.data.dtype.itemsize == exp_data.dtype.itemsize

    info = vol.info()
    assert info["source_orientation"] == "".join(nib.aff2axcodes(src.affine)) == "LAS"
    assert info["canonical_orientation"] == "PIL"
    assert info["source_shape"] == tuple(src.shape)
    assert info["shape (AP, SI, RL)"] == exp_data.shape
    assert np.array_equal(vol.geometry.native_affine, src.affine)
    assert vol.geometry.kind == "nifti"


def test_anatomical_world_positions_of_canonical_voxels():
    """Canonical voxel (p, i, l) holds the source voxel at the same world position."""
    src = nib.load(ANAT)
    native = np.asanyarray(src.dataobj)
    vol = read_nifti(ANAT)
    rng = np.random.default_rng(0)
    inv = np.linalg.inv(src.affine)
    for _ in range(20):
        pil = tuple(int(rng.integers(0, n)) for n in vol.data.shape)
        world = vol.geometry.canonical_affine @ [*pil, 1]
        ijk = np.rint(inv @ world)[:3].astype(int)
        assert vol.data[pil] == native[tuple(ijk)]
    # anatomical sense of the axes: +axis0 -> posterior (-y), +axis1 -> inferior (-z),
    # +axis2 -> patient's left (-x) in RAS+ world coordinates
    a = vol.geometry.canonical_affine[:3, :3]
    assert a[1, 0] < 0 and a[2, 1] < 0 and a[0, 2] < 0


# -- writing labels back ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["labels.nii.gz", "labels.nii"])
def test_label_roundtrip_same_affine_shape_and_world_position(tmp_path, name):
    src = nib.load(ANAT)
    native_src = np.asanyarray(src.dataobj)
    vol = read_volume(ANAT)
    mask = np.zeros(vol.data.shape, dtype=np.uint8)
    p, i, l_ = 3, 5, 7  # near the anterior, superior, patient-right corner
    mask[p, i, l_] = 1
    mask[20, 12, 25] = 2
    out = tmp_path / name
    assert write_nifti(out, mask, vol.geometry) == out

    written = nib.load(str(out))
    assert np.array_equal(written.affine, src.affine)
    assert written.shape == src.shape
    assert written.get_data_dtype() == np.uint8
    data = np.asanyarray(written.dataobj)
    assert sorted(np.unique(data).tolist()) == [0, 1, 2]

    _, exp_affine = _pil_from_ras(nib.as_closest_canonical(src))
    inv = np.linalg.inv(src.affine)
    for (pp, ii, ll), value in (((p, i, l_), 1), ((20, 12, 25), 2)):
        ijk = tuple(np.rint(inv @ exp_affine @ [pp, ii, ll, 1])[:3].astype(int))
        assert np.argwhere(data == value).tolist() == [list(ijk)]
        # the mask voxel sits on the very image voxel it was drawn on
        assert native_src[ijk] == vol.data[pp, ii, ll]
    # and our reader brings it back to the same canonical index
    back = read_volume(out)
    assert np.array_equal(back.data, mask)


def test_write_wrong_shape_is_refused_and_writes_nothing(tmp_path):
    vol = read_volume(ANAT)
    with pytest.raises(VolumeWriteError) as ei:
        write_nifti(tmp_path / "bad.nii.gz", np.zeros((3, 4, 5), np.uint8), vol.geometry)
    _assert_one_line_naming(ei.value, tmp_path / "bad.nii.gz")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    vol = read_volume(ANAT)
    target = tmp_path / "labels.nii.gz"
    write_nifti(target, np.zeros(vol.data.shape, np.uint8), vol.geometry)
    before = target.read_bytes()
    listing = sorted(p.name for p in tmp_path.iterdir())
    calls = []

    def failing_save(img, filename, *a, **k):
        calls.append(filename)
        with open(filename, "wb") as fh:  # partial data, then the disk fills up
            fh.write(b"\x00" * 100)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(nib, "save", failing_save)
    with pytest.raises(VolumeWriteError) as ei:
        write_nifti(target, np.ones(vol.data.shape, np.uint8), vol.geometry)
    assert calls, "nibabel.save was not used"
    assert os.path.abspath(calls[0]) != os.path.abspath(target)  # wrote to a temporary file
    _assert_one_line_naming(ei.value, target)
    assert "No space left" in str(ei.value)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == listing


# -- refusals -----------------------------------------------------------------------------------
def test_2d_file_is_refused(tmp_path):
    path = tmp_path / "slice2d.nii"
    nib.save(nib.Nifti1Image(np.arange(120, dtype=np.int16).reshape(10, 12), np.eye(4)), str(path))
    with pytest.raises(VolumeReadError) as ei:
        read_volume(path)
    _assert_one_line_naming(ei.value, path)
    assert "2D" in str(ei.value)


def test_single_slice_3d_file_is_refused(tmp_path):
    path = tmp_path / "slice.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((10, 12, 1), np.int16), np.eye(4)), str(path))
    with pytest.raises(VolumeReadError) as ei:
        read_volume(path)
    _assert_one_line_naming(ei.value, path)


def test_4d_file_is_refused():
    assert nib.load(EX4D).shape[3] == 2
    with pytest.raises(VolumeReadError) as ei:
        read_volume(EX4D)
    _assert_one_line_naming(ei.value, EX4D)
    assert "4D" in str(ei.value) and "2 volumes" in str(ei.value)


def test_garbage_nii_is_refused(tmp_path):
    path = tmp_path / "garbage.nii"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    with pytest.raises(VolumeReadError) as ei:
        read_volume(path)
    _assert_one_line_naming(ei.value, path)


def test_text_named_nii_gz_is_refused(tmp_path):
    path = tmp_path / "notes.nii.gz"
    path.write_text("this is not a NIfTI file\nsecond line\n")
    with pytest.raises(VolumeReadError) as ei:
        read_volume(path)
    _assert_one_line_naming(ei.value, path)


def test_truncated_nii_is_refused(tmp_path):
    path = tmp_path / "truncated.nii"
    with open(ANAT, "rb") as fh:
        path.write_bytes(fh.read(352 + 500))  # header intact, most voxels missing
    with pytest.raises(VolumeReadError) as ei:
        read_volume(path)
    _assert_one_line_naming(ei.value, path)


def test_missing_file_is_refused(tmp_path):
    path = tmp_path / "nothere.nii.gz"
    with pytest.raises(VolumeReadError) as ei:
        read_volume(path)
    _assert_one_line_naming(ei.value, path)


# -- implausible geometry and voxel types: refused, or said once --------------------------------
def _save(path, data, affine, **header):
    img = nib.Nifti1Image(data, affine)
    for key, value in header.items():
        img.header[key] = value
    nib.save(img, str(path))
    return path


def _volume_warnings(path):
    import warnings

    from napari_ian.trainer.errors import VolumeWarning

    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        vol = read_volume(path)
    return vol, [str(w.message) for w in rec if issubclass(w.category, VolumeWarning)]


def _refusal(path) -> str:
    with pytest.raises(VolumeReadError) as ei:
        read_volume(path)
    _assert_one_line_naming(ei.value, path)
    return str(ei.value)


def _sheared(deg):
    aff = np.diag([0.8, 0.8, 0.8, 1.0])
    aff[0, 1] = 0.8 * np.tan(np.deg2rad(deg))    # axis 1 leans toward axis 0
    return aff


def test_a_sheared_grid_is_refused_and_a_slightly_sheared_one_said(tmp_path):
    data = np.arange(8 * 9 * 10, dtype=np.float32).reshape(8, 9, 10)
    assert "from perpendicular" in _refusal(_save(tmp_path / "shear10.nii", data, _sheared(10)))
    vol, said = _volume_warnings(_save(tmp_path / "shear2.nii", data, _sheared(2)))
    assert len(said) == 1 and "2.0° from perpendicular" in said[0] and "shear2.nii" in said[0]
    vol, said = _volume_warnings(_save(tmp_path / "straight.nii", data, np.diag([0.8, 0.8, 0.8, 1])))
    assert said == []


def test_nearly_parallel_axes_are_refused(tmp_path):
    aff = np.diag([0.8, 0.8, 0.8, 1.0])
    aff[:3, 1] = [0.8, 0.01, 0.0]                 # axis 1 almost along axis 0: a nearly flat grid
    assert "from perpendicular" in _refusal(_save(tmp_path / "flat.nii", np.zeros((6, 6, 6), np.float32), aff))


@pytest.mark.parametrize("size", [0.002, 50.0])
def test_implausible_voxel_sizes_are_refused(tmp_path, size):
    path = _save(tmp_path / "tiny.nii", np.zeros((6, 6, 6), np.float32), np.diag([size, 0.8, 0.8, 1]))
    assert "implausible" in _refusal(path)


def test_a_zero_pixdim_is_refused_not_read_as_1mm(tmp_path):
    path = _save(tmp_path / "pix0.nii", np.zeros((6, 7, 8), np.float32), np.diag([0.8, 0.8, 0.8, 1]))
    raw = bytearray(path.read_bytes())                 # NIfTI-1 header bytes:
    raw[80:84] = np.float32(0).tobytes()               # pixdim[1] = 0
    raw[254:256] = np.int16(0).tobytes()               # sform_code = 0: the geometry comes from pixdim
    path.write_bytes(bytes(raw))
    assert nib.load(str(path)).header.get_zooms()[0] == 1.0   # what nibabel makes of it
    assert "pixdim" in _refusal(path)


@pytest.mark.parametrize("unit, scale", [("meter", 1e-3), ("micron", 1e3)])
def test_metres_and_micrometres_are_converted_and_written_back_alike(tmp_path, unit, scale):
    aff = np.array([[0.0, 0.0, -0.5, 10], [-0.8, 0, 0, 20], [0, -1.6, 0, 30], [0, 0, 0, 1]])
    aff[:3] *= scale
    path = _save(tmp_path / "units.nii.gz", np.ones((6, 7, 8), np.float32), aff, xyzt_units=0)
    img = nib.load(str(path))
    img.header.set_xyzt_units(xyz=unit)
    nib.save(img, str(path))
    vol, said = _volume_warnings(path)
    np.testing.assert_allclose(sorted(vol.spacing), [0.5, 0.8, 1.6], rtol=1e-5)
    assert len(said) == 1 and f"{unit}s" in said[0] and "converted to mm" in said[0]
    out = write_nifti(tmp_path / "mask.nii.gz", np.zeros(vol.data.shape, np.uint8), vol.geometry)
    back = nib.load(str(out))
    np.testing.assert_allclose(back.affine, nib.load(str(path)).affine, rtol=1e-6, atol=1e-9)
    assert back.header.get_xyzt_units()[0] == unit


def test_millimetre_values_labelled_metres_are_refused(tmp_path):
    path = _save(tmp_path / "m.nii", np.zeros((6, 6, 6), np.float32), np.diag([0.8, 0.8, 0.8, 1]))
    img = nib.load(str(path))
    img.header.set_xyzt_units(xyz="meter")                # 0.8 m voxels
    nib.save(img, str(path))
    assert "implausible" in _refusal(path)


def test_complex_and_rgb_voxels_are_refused(tmp_path, capsys):
    from napari_ian.trainer.cli import main

    cplx = _save(tmp_path / "cplx.nii", (np.ones((6, 6, 6)) * (1 + 2j)).astype(np.complex64), np.eye(4))
    assert "complex" in _refusal(cplx)
    rgb_dtype = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")])
    rgb = _save(tmp_path / "rgb.nii.gz", np.zeros((6, 6, 6), rgb_dtype), np.eye(4))
    assert "RGB" in _refusal(rgb)
    out = tmp_path / "pred.nii.gz"
    assert main(["predict", str(rgb), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "rgb.nii.gz" in err and "RGB" in err and not out.exists()


def test_non_finite_voxels_are_counted_and_said_once(tmp_path, capsys):
    from napari_ian.trainer.cli import main

    data = np.ones((6, 7, 8), np.float32)
    data[0, 0, 0], data[5, 6, 7] = np.nan, np.inf
    path = _save(tmp_path / "nan.nii.gz", data, np.diag([0.8, 0.8, 0.8, 1]))
    vol, said = _volume_warnings(path)
    assert vol.nonfinite == 2 and vol.info()["non_finite_voxels"] == 2
    assert said == [f"{path}: 2 non-finite voxels (NaN/Inf) ignored"]
    assert main(["info", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == f"ian: warning: {path}: 2 non-finite voxels (NaN/Inf) ignored\n"
    assert "non_finite_voxels        2" in out or "non_finite_voxels  2" in out.replace("  ", "  ")


def test_a_header_larger_than_memory_says_so(tmp_path):
    """A NIfTI header claiming 8 GiB of voxels, read with 3 GiB of address space: one line saying so."""
    import gzip
    import resource
    import subprocess
    import sys

    hdr = nib.Nifti1Header()
    hdr.set_data_shape((2048, 2048, 512))
    hdr.set_data_dtype(np.float32)
    hdr.set_sform(np.diag([0.5, 0.5, 0.5, 1]), code=1)
    hdr["vox_offset"] = 352
    path = tmp_path / "huge.nii.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(hdr.binaryblock + b"\0" * 1004)

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    res = subprocess.run([sys.executable, "-m", "napari_ian.trainer.cli", "info", str(path)], preexec_fn=limit,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert res.stderr.strip() == f"ian: {path}: not enough memory to read its voxels (2048 x 2048 x 512, about 8.0 GiB)"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_named_like_nifti_is_refused_without_blocking(tmp_path):
    path = tmp_path / "pipe.nii.gz"
    os.mkfifo(path)                                   # opening it would wait for a writer for ever
    assert "not a regular file" in _refusal(path)
