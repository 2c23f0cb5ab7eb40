"""DICOM series and Enhanced multi-frame reading: geometry from the headers, clear refusals.

Real files only: pydicom's bundled test files and series written from the phantom, modified
with pydicom in tmp_path to build each kind of bad input.
"""
from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from napari_ian.sample_data.dataset import phantom_geometry
from napari_ian.sample_data.phantom import INTENSITY_SLOPE
from napari_ian.trainer.dicom_write import write_dicom_series
from napari_ian.trainer.errors import GeometryMissingError, VolumeReadError
from napari_ian.trainer.io import read_volume

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

MR700 = os.path.dirname(get_testdata_file("dicomdirtests/98892003/MR700/4467"))


def _assert_one_line_naming(exc, path):
    msg = str(exc)
    assert "\n" not in msg and "\r" not in msg, msg
    assert os.fspath(path) in msg, msg


def _read_error(path, **kw) -> str:
    with pytest.raises(VolumeReadError) as ei:
        read_volume(path, **kw)
    _assert_one_line_naming(ei.value, path)
    return str(ei.value)


def _files(folder):
    return sorted(Path(folder).glob("*.dcm"))


def _edit(path, fn):
    ds = pydicom.dcmread(path)
    fn(ds)
    ds.save_as(path, enforce_file_format=True)


def _normal(ds):
    iop = np.asarray([float(v) for v in ds.ImageOrientationPatient])
    return np.cross(iop[:3], iop[3:])


def _new_sop(ds):
    uid = generate_uid()
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = uid


# -- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def phantom_dicom(tmp_path_factory, phantom):
    """The whole phantom written as a classic axial DICOM series."""
    image, _labels, spacing, _info = phantom
    geom = phantom_geometry(image.shape, spacing)
    folder = tmp_path_factory.mktemp("phantom_dicom") / "series"
    write_dicom_series(folder, image, geom.canonical_affine, slope=INTENSITY_SLOPE,
                       patient_id="PHANTOM", series_description="phantom test")
    return folder, image, geom


@pytest.fixture(scope="module")
def small_series(tmp_path_factory, phantom):
    """A 10-slice crop of the phantom as a DICOM series: the template for bad inputs."""
    image, _labels, spacing, _info = phantom
    geom = phantom_geometry(image.shape, spacing)
    lo = np.array([30, 20, 60])
    crop = np.ascontiguousarray(image[30:70, 20:30, 60:180])
    aff = geom.canonical_affine.copy()
    aff[:3, 3] = (aff @ [*lo, 1])[:3]
    folder = tmp_path_factory.mktemp("small") / "series"
    write_dicom_series(folder, crop, aff, slope=INTENSITY_SLOPE, patient_id="PHANTOM",
                       series_description="small crop")
    assert len(_files(folder)) == 10
    return folder, crop, aff


@pytest.fixture
def series_copy(small_series, tmp_path):
    folder = tmp_path / "series"
    shutil.copytree(small_series[0], folder)
    return folder


# -- pydicom's own files --------------------------------------------------------------------------
def test_single_2d_slice_alone_is_refused(tmp_path):
    folder = tmp_path / "one"
    folder.mkdir()
    shutil.copy(get_testdata_file("MR_small.dcm"), folder / "MR_small.dcm")
    for path in (folder, folder / "MR_small.dcm"):
        msg = _read_error(path)
        assert "2D" in msg


def test_single_2d_slice_in_pydicom_folder_is_refused():
    # beside it lie other encodings of the same slice (same series, same position)
    path = get_testdata_file("MR_small.dcm")
    with pytest.raises(VolumeReadError) as ei:
        read_volume(path)
    msg = str(ei.value)
    assert "\n" not in msg and os.path.dirname(path) in msg


def test_mr700_is_not_parallel():
    msg = _read_error(MR700)
    assert "not parallel" in msg


def test_emri_small_geometry_missing_reports_facts():
    path = get_testdata_file("emri_small.dcm")
    with pytest.raises(GeometryMissingError) as ei:
        read_volume(path)
    _assert_one_line_naming(ei.value, path)
    facts = ei.value.facts
    assert facts["frames"] == 10
    assert facts["frame size (rows x columns)"] == "64 x 64"
    assert float(facts["spacing between slices (mm)"]) == pytest.approx(1.2)
    assert facts["pixel spacing (mm)"] == "not recorded"


# -- phantom round trip -------------------------------------------------------------------------
def test_phantom_dicom_roundtrip_identical(phantom_dicom):
    folder, image, geom = phantom_dicom
    assert len(_files(folder)) == image.shape[1]  # axial slices along SI
    vol = read_volume(folder)
    assert vol.geometry.kind == "dicom"
    assert vol.data.shape == image.shape
    assert np.array_equal(vol.data, image)
    np.testing.assert_allclose(vol.spacing, geom.spacing, atol=1e-4)
    np.testing.assert_allclose(vol.geometry.canonical_affine, geom.canonical_affine, atol=1e-3)
    assert vol.info()["canonical_orientation"] == "PIL"


def test_slices_are_sorted_by_position_not_name(small_series, series_copy):
    _folder, crop, aff = small_series
    files = _files(series_copy)
    for k, f in enumerate(files):  # reverse the name order
        f.rename(series_copy / f"tmp{k}")
    for k in range(len(files)):
        (series_copy / f"tmp{k}").rename(series_copy / f"X{len(files) - k:03d}.dcm")
    vol = read_volume(series_copy)
    assert np.array_equal(vol.data, crop)
    np.testing.assert_allclose(vol.geometry.canonical_affine, aff, atol=1e-3)


# -- bad inputs ---------------------------------------------------------------------------------
def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    assert "no DICOM" in _read_error(tmp_path / "empty")


def test_folder_of_text_files(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "readme.txt").write_text("not dicom\n")
    (folder / "IM0001.dcm").write_text("also not dicom, despite the name\n")
    assert "no DICOM" in _read_error(folder)


def test_two_series_in_one_folder(small_series, tmp_path):
    folder = tmp_path / "two"
    shutil.copytree(small_series[0], folder)
    uid2 = generate_uid()
    for f in _files(small_series[0]):
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID = uid2
        ds.SeriesDescription = "second series"
        _new_sop(ds)
        ds.save_as(folder / f"B_{f.name}", enforce_file_format=True)
    msg = _read_error(folder)
    assert "2 image series" in msg and "none loaded" in msg
    assert "small crop" in msg and "second series" in msg
    # naming one of them loads it
    vol = read_volume(folder, series_uid=uid2)
    assert np.array_equal(vol.data, small_series[1])


def test_non_image_dicom_only(tmp_path):
    folder = tmp_path / "sr"
    folder.mkdir()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = pydicom.uid.BasicTextSRStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "SR"
    ds.SeriesInstanceUID = generate_uid()
    ds.save_as(folder / "report.dcm", enforce_file_format=True)
    msg = _read_error(folder)
    assert "none is an image" in msg
    msg = _read_error(folder / "report.dcm")
    assert "without pixel data" in msg


def test_missing_middle_slice(series_copy):
    (series_copy / "IM0005.dcm").unlink()
    assert "missing" in _read_error(series_copy)


def test_duplicate_slice(series_copy):
    ds = pydicom.dcmread(series_copy / "IM0004.dcm")
    _new_sop(ds)
    ds.save_as(series_copy / "IM0099.dcm", enforce_file_format=True)
    assert "duplicate" in _read_error(series_copy)


@pytest.mark.parametrize("shift", [0.4, -0.4])
def test_unevenly_spaced(series_copy, shift):
    def move(ds):
        step = float(ds.SpacingBetweenSlices)
        ipp = np.asarray([float(v) for v in ds.ImagePositionPatient]) + shift * step * _normal(ds)
        ds.ImagePositionPatient = [f"{v:.6f}" for v in ipp]

    _edit(series_copy / "IM0006.dcm", move)
    msg = _read_error(series_copy)
    assert "uneven" in msg and "missing" not in msg


def test_one_slice_tilted_is_not_parallel(series_copy):
    def tilt(ds):
        iop = np.asarray([float(v) for v in ds.ImageOrientationPatient])
        row, col = iop[:3], iop[3:]
        n = np.cross(row, col)
        a = np.deg2rad(5.0)
        col2 = np.cos(a) * col + np.sin(a) * n
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*row, *col2)]

    _edit(series_copy / "IM0006.dcm", tilt)
    assert "not parallel" in _read_error(series_copy)


def test_slices_of_different_size(series_copy):
    def shrink(ds):
        arr = ds.pixel_array[:-2, :-3].copy()
        ds.Rows, ds.Columns = arr.shape
        ds.PixelData = arr.tobytes()

    _edit(series_copy / "IM0006.dcm", shrink)
    assert "differ in size" in _read_error(series_copy)


def test_compressed_without_decoder(tmp_path, monkeypatch):
    from pydicom.pixels.decoders import JPEGLSLosslessDecoder

    # highdicom brings a JPEG-LS decoder (pyjpegls); hide it so the "no decoder" path is exercised
    monkeypatch.setattr(JPEGLSLosslessDecoder, "_available", {})
    folder = tmp_path / "jls"
    folder.mkdir()
    src = get_testdata_file("MR_small_jpeg_ls_lossless.dcm")
    series_uid = generate_uid()
    for k in range(3):
        ds = pydicom.dcmread(src)
        assert ds.file_meta.TransferSyntaxUID.is_compressed
        assert "ImageOrientationPatient" in ds and "PixelSpacing" in ds
        ds.SeriesInstanceUID = series_uid
        _new_sop(ds)
        ipp = np.asarray([float(v) for v in ds.ImagePositionPatient]) + k * 2.0 * _normal(ds)
        ds.ImagePositionPatient = [f"{v:.4f}" for v in ipp]
        ds.save_as(folder / f"IM{k + 1:04d}.dcm")
    msg = _read_error(folder)
    assert "compressed" in msg and "no decoder" in msg


# -- Enhanced multi-frame -----------------------------------------------------------------------
def _enhanced_mr(path, stored, spacing, origin_lps, order, slope=2.0):
    """Write stored[k] (coronal frames, k along A->P) as an Enhanced MR file, frames in ``order``.

    Frame rows run superior->inferior, columns patient right->left, frames step posterior.
    """
    n, rows, cols = stored.shape
    sp_ap, sp_si, sp_rl = spacing
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = pydicom.uid.EnhancedMRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.SeriesDescription = "enhanced phantom"
    ds.NumberOfFrames = n
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0

    meas = Dataset()
    meas.PixelSpacing = [f"{sp_si:.10g}", f"{sp_rl:.10g}"]
    meas.SliceThickness = f"{sp_ap:.10g}"
    ori = Dataset()
    ori.ImageOrientationPatient = ["1", "0", "0", "0", "0", "-1"]  # rows -> +x (left), cols -> -z
    pvt = Dataset()
    pvt.RescaleSlope, pvt.RescaleIntercept, pvt.RescaleType = f"{slope:g}", "0", "US"
    shared = Dataset()
    shared.PixelMeasuresSequence = Sequence([meas])
    shared.PlaneOrientationSequence = Sequence([ori])
    shared.PixelValueTransformationSequence = Sequence([pvt])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per = []
    for k in order:
        pos = Dataset()
        ipp = np.asarray(origin_lps) + k * sp_ap * np.array([0.0, 1.0, 0.0])  # +y LPS = posterior
        pos.ImagePositionPatient = [f"{v:.6f}" for v in ipp]
        item = Dataset()
        item.PlanePositionSequence = Sequence([pos])
        per.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per)
    ds.PixelData = np.ascontiguousarray(stored[list(order)]).astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_enhanced_multiframe_shuffled_frames(tmp_path, phantom):
    image, _labels, spacing, _info = phantom
    crop = image[20:32, 10:40, 40:200]
    stored = (np.rint(crop / INTENSITY_SLOPE).astype(np.int64) // 2).astype(np.uint16)
    expected = stored.astype(np.float32) * np.float32(2.0)
    order = np.random.default_rng(7).permutation(stored.shape[0])
    assert not np.array_equal(order, np.arange(stored.shape[0]))
    origin_lps = np.array([-30.0, -40.0, 25.0])
    path = tmp_path / "enhanced.dcm"
    _enhanced_mr(path, stored, spacing, origin_lps, order)

    for source in (path, tmp_path):  # the file itself, or the folder that holds only it
        vol = read_volume(source)
        assert vol.geometry.kind == "dicom-enhanced"
        assert vol.data.shape == stored.shape
        assert np.array_equal(vol.data, expected)
        np.testing.assert_allclose(vol.spacing, spacing, atol=1e-4)
        exp_aff = np.zeros((4, 4))
        exp_aff[1, 0] = -spacing[0]   # posterior = -y in RAS
        exp_aff[2, 1] = -spacing[1]   # inferior = -z
        exp_aff[0, 2] = -spacing[2]   # patient's left = -x
        exp_aff[:3, 3] = origin_lps * [-1, -1, 1]
        exp_aff[3, 3] = 1
        np.testing.assert_allclose(vol.geometry.canonical_affine, exp_aff, atol=1e-4)


# -- damaged headers: one line naming the file, never a traceback or a wrong number --------------
def test_a_slice_without_rows_is_named(series_copy):
    _edit(series_copy / "IM0004.dcm", lambda ds: ds.__delattr__("Rows"))
    msg = _read_error(series_copy / "IM0004.dcm")
    assert "Rows is missing" in msg and "IM0004.dcm" in msg


def _patch_vr(path, keyword_tag: bytes, vr: bytes):
    """Change the value representation of one element in the file's bytes (explicit VR LE)."""
    raw = bytearray(Path(path).read_bytes())
    i = raw.find(keyword_tag)
    assert i > 0
    raw[i + 4:i + 6] = vr
    Path(path).write_bytes(bytes(raw))


@pytest.mark.parametrize("vr", [b"US", b"FL", b"PN", b"XX"])
def test_rescale_slope_with_a_wrong_vr_is_refused(series_copy, vr):
    # (0028,1053) RescaleSlope is DS; stored as US it read as a wrong slope (8241) without a word
    _patch_vr(series_copy / "IM0004.dcm", b"\x28\x00\x53\x10DS", vr)
    msg = _read_error(series_copy)
    assert "IM0004.dcm" in msg or "damaged DICOM file" in msg
    assert "RescaleSlope" in msg or "damaged DICOM file" in msg


def test_nan_in_image_position_is_named(series_copy):
    def nan(ds):
        ds.ImagePositionPatient = ["nan", "0", "0"]

    _edit(series_copy / "IM0003.dcm", nan)
    msg = _read_error(series_copy)
    assert "IM0003.dcm" in msg and "ImagePositionPatient" in msg and "non-finite" in msg


def test_enhanced_per_frame_sequence_shorter_than_frames(tmp_path, phantom):
    image = phantom[0]
    stored = np.rint(image[20:30, 10:40, 40:100] / INTENSITY_SLOPE).astype(np.uint16)
    path = tmp_path / "enhanced.dcm"
    _enhanced_mr(path, stored, phantom[2], np.zeros(3), np.arange(stored.shape[0]))
    _edit(path, lambda ds: ds.PerFrameFunctionalGroupsSequence.__delitem__(slice(7, None)))
    msg = _read_error(path)
    assert "7 frames" in msg and "NumberOfFrames is 10" in msg


def _with_alarm(seconds, fn):
    """Run ``fn`` but fail (instead of hanging) after ``seconds``."""
    import signal

    def timeout(*_):
        raise TimeoutError(f"no answer after {seconds} s")

    old = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(seconds)
    try:
        return fn()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_in_the_folder_is_not_opened(small_series, series_copy):
    os.mkfifo(series_copy / "pipe.dcm")           # opening it for reading would block for ever
    vol = _with_alarm(20, lambda: read_volume(series_copy))
    assert np.array_equal(vol.data, small_series[1])
    msg = _with_alarm(20, lambda: _read_error(series_copy / "pipe.dcm"))
    assert "not a regular file" in msg


def _set_all(folder, **values):
    for f in _files(folder):
        _edit(f, lambda ds: [setattr(ds, k, v) for k, v in values.items()])


def test_a_ct_series_is_read_with_one_warning(series_copy, capsys):
    from napari_ian.trainer.cli import main
    from napari_ian.trainer.errors import VolumeWarning

    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        read_volume(series_copy)
    assert not [w for w in rec if issubclass(w.category, VolumeWarning)]     # MR: nothing said
    _set_all(series_copy, Modality="CT")
    with pytest.warns(VolumeWarning, match="modality CT, not MR") as rec:
        vol = read_volume(series_copy)
    assert vol.modality == "CT" and len([w for w in rec if "not MR" in str(w.message)]) == 1
    assert main(["info", str(series_copy)]) == 0
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ian: warning: ") and "modality CT, not MR" in lines[0]
    assert str(series_copy) in lines[0] and "modality" in out and "CT" in out


@pytest.mark.parametrize("tilt_deg, refused", [(2.0, False), (12.0, True)])
def test_a_tilted_gantry_is_said_or_refused(small_series, series_copy, tilt_deg, refused):
    # each slice shifted along the column direction by step * tan(tilt): a sheared grid
    files = _files(series_copy)
    for k, f in enumerate(files):
        def shift(ds, k=k):
            iop = np.asarray([float(v) for v in ds.ImageOrientationPatient])
            step = float(ds.SpacingBetweenSlices)
            ipp = np.asarray([float(v) for v in ds.ImagePositionPatient]) + \
                k * step * np.tan(np.deg2rad(tilt_deg)) * iop[3:]
            ds.ImagePositionPatient = [f"{v:.6f}" for v in ipp]

        _edit(f, shift)
    if refused:
        assert "from perpendicular" in _read_error(series_copy)
        return
    from napari_ian.trainer.errors import VolumeWarning

    with pytest.warns(VolumeWarning, match="2.0° from perpendicular"):
        vol = read_volume(series_copy)
    assert np.array_equal(vol.data, small_series[1])


def _identify(folder, description):
    _set_all(folder, PatientName="DOE^JANE", PatientID="PID4711", SeriesDescription=description)


def test_patient_identifiers_never_reach_the_output(small_series, tmp_path, capsys):
    """A folder and a series description named after the patient: ``ian info`` shows neither."""
    from napari_ian.trainer.cli import main

    folder = tmp_path / "Doe_Jane_PID4711"
    shutil.copytree(small_series[0], folder)
    _identify(folder, "MRN Jane Doe PID4711")
    assert main(["info", str(folder)]) == 0
    out, err = capsys.readouterr()
    for text in (out, err):
        assert not any(s in text.upper() for s in ("DOE", "JANE", "PID4711")), text
    assert "[patient identifier]" in out and "small crop" not in out
    # the "several series" error lists descriptions: not the identifying ones
    second = tmp_path / "Doe_Jane_PID4711" / "second"
    second.mkdir()
    uid2 = generate_uid()
    for f in _files(small_series[0]):
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID = uid2
        _new_sop(ds)
        ds.save_as(second / f.name, enforce_file_format=True)
    _identify(second, "second of DOE^JANE")
    assert main(["info", str(folder)]) == 2
    out, err = capsys.readouterr()
    assert "2 image series" in err and len(err.splitlines()) == 1
    assert not any(s in err.upper() for s in ("DOE", "JANE", "PID4711")), err
