"""Labels to and from 3D Slicer (.seg.nrrd) and PACS (DICOM SEG): `ian convert`, checked in patient space.

Every grid here is oblique and anisotropic; positions are compared in world coordinates (RAS for
NIfTI, LPS for NRRD and DICOM), not only as arrays.
"""
from __future__ import annotations

import gzip

import nibabel as nib
import nrrd
import numpy as np
import pydicom
import pytest

from napari_ian.trainer.cli import main
from napari_ian.trainer.dicom_write import write_dicom_series
from napari_ian.trainer.io import read_volume
from napari_ian.trainer.io_nifti import write_nifti
from napari_ian.trainer.cli_args import parse_side_map
from napari_ian.trainer.segment_sides import side_from_name
from napari_ian.trainer.volume import Geometry

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _rotation(ax, ay):
    cx, sx, cy, sy = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay)
    return np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]]) @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])


def _oblique_geometry(shape=(48, 30, 56)):
    """A native grid stored as (RL, AP, SI)-ish axes, tilted 11° and 7°, voxels 0.43 x 0.8 x 1.6 mm."""
    rot = _rotation(np.radians(11), np.radians(7))
    base = np.array([[-1.0, 0, 0], [0, -1.0, 0], [0, 0, 1.0]])   # i -> patient's left, j -> posterior, k -> up
    aff = np.eye(4)
    aff[:3, :3] = rot @ base @ np.diag([0.43, 0.8, 1.6])
    aff[:3, 3] = (12.5, -30.0, 41.0)
    return Geometry(native_affine=aff, native_shape=shape, kind="nifti", source="synthetic")


def _nerves(shape):
    """Canonical (AP, SI, RL) labels: a right and a left tube, a little curved."""
    lab = np.zeros(shape, np.uint8)
    for a in range(3, shape[0] - 3):
        s = shape[1] // 2 + int(3 * np.sin(a / 6))
        lab[a, s - 1:s + 2, 6:9] = 1
        lab[a, s - 2:s + 1, shape[2] - 10:shape[2] - 7] = 2
    return lab


def _world_points(labels_native, affine, value):
    """Sorted world coordinates (rounded to 1 µm) of the voxels holding ``value``."""
    ijk = np.argwhere(labels_native == value)
    xyz = (affine @ np.c_[ijk, np.ones(len(ijk))].T).T[:, :3]
    return xyz[np.lexsort(np.round(xyz, 3).T)]


@pytest.fixture
def nifti_case(tmp_path):
    """(labels.nii.gz, image.nii.gz, geometry, canonical labels) on the oblique grid."""
    g = _oblique_geometry()
    lab = _nerves(g.canonical_shape)
    image = np.random.default_rng(0).normal(100, 10, g.canonical_shape).astype(np.float32)
    write_nifti(tmp_path / "labels.nii.gz", lab, g)
    write_nifti(tmp_path / "image.nii.gz", image, g, dtype=np.float32)
    return tmp_path / "labels.nii.gz", tmp_path / "image.nii.gz", g, lab


def test_nifti_to_seg_nrrd_segments_sit_where_the_labels_are(nifti_case, tmp_path, capsys):
    import slicerio

    labels_path, _, _, _ = nifti_case
    out = tmp_path / "labels.seg.nrrd"
    assert main(["convert", str(labels_path), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    nii = nib.load(labels_path)
    seg = slicerio.read_segmentation(str(out))   # 3D Slicer's own reader
    ijk_to_ras = LPS @ seg["ijkToLPS"]
    by_name = {s["name"]: s for s in seg["segments"]}
    assert set(by_name) == {"right IAN", "left IAN"}
    for name, value in (("right IAN", 1), ("left IAN", 2)):
        s = by_name[name]
        assert s["labelValue"] == value and s["layer"] == 0 and len(s["color"]) == 3
        assert s["terminology"]["type"][:2] == ["SCT", "280261005"]
        mask = seg["voxels"] == value
        hit = np.argwhere(mask)
        assert s["extent"] == [int(v) for pair in zip(hit.min(0), hit.max(0)) for v in pair]
        # the same patient-space positions, not merely the same array
        got = _world_points(seg["voxels"], ijk_to_ras, value)
        want = _world_points(np.asarray(nii.dataobj), nii.affine, value)
        assert got.shape == want.shape and np.allclose(got, want, atol=1e-4)
    header = nrrd.read_header(str(out))
    assert header["space"] == "left-posterior-superior"
    assert header["kinds"] == ["domain", "domain", "domain"]
    assert header["Segment0_Tags"].startswith("TerminologyEntry:")


def test_nifti_seg_nrrd_nifti_round_trip_is_exact(nifti_case, tmp_path, capsys):
    labels_path, image_path, _, lab = nifti_case
    seg, back = tmp_path / "l.seg.nrrd", tmp_path / "back.nii.gz"
    assert main(["convert", str(labels_path), "--out", str(seg)]) == 0
    assert main(["convert", str(seg), "--reference", str(image_path), "--out", str(back)]) == 0
    a, b = nib.load(labels_path), nib.load(back)
    assert np.array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))
    assert np.allclose(a.affine, b.affine)
    out = capsys.readouterr().out
    assert "'right IAN' -> right IAN (1) (from its name)" in out


def _slicer_style(lab, geometry, space="left-posterior-superior"):
    """A segmentation as Slicer stores one: other axis order (RL reversed, AP, SI), cropped to the
    labels' extent, two layers because a "Mandible" segment overlaps the nerves, side in the names."""
    canon_aff = geometry.canonical_affine
    n_rl = lab.shape[2]
    # N[i, j, k] = L[j, k, n_rl - 1 - i]
    perm = np.zeros((4, 4))
    perm[0, 1] = perm[1, 2] = 1
    perm[2, 0], perm[2, 3] = -1, n_rl - 1
    perm[3, 3] = 1
    native = np.transpose(lab, (2, 0, 1))[::-1]
    hit = np.argwhere(native > 0)
    lo, hi = hit.min(0) - 2, hit.max(0) + 3
    crop = native[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    shift = np.eye(4)
    shift[:3, 3] = lo
    aff_ras = canon_aff @ perm @ shift
    to_space = LPS if space == "left-posterior-superior" else np.eye(4)
    aff = to_space @ aff_ras
    layer0 = np.where(crop == 1, 1, np.where(crop == 2, 5, 0)).astype(np.uint8)
    layer1 = np.zeros_like(layer0)
    layer1[:, :, : crop.shape[2] // 2] = 1          # "Mandible" overlapping both nerves
    data = np.stack([layer0, layer1])
    header = {
        "space": space, "kinds": ["list", "domain", "domain", "domain"],
        "space directions": np.vstack([[np.nan] * 3, aff[:3, :3].T]), "space origin": aff[:3, 3],
        "encoding": "gzip",
        "Segment0_ID": "Segment_1", "Segment0_Name": "IAN_R", "Segment0_LabelValue": "1", "Segment0_Layer": "0",
        "Segment1_ID": "Segment_2", "Segment1_Name": "Left IAN", "Segment1_LabelValue": "5", "Segment1_Layer": "0",
        "Segment2_ID": "Segment_3", "Segment2_Name": "Mandible", "Segment2_LabelValue": "1", "Segment2_Layer": "1",
    }
    return data, header


@pytest.mark.parametrize("space", ["left-posterior-superior", "right-anterior-superior"])
def test_slicer_file_in_another_axis_order_lands_on_the_same_voxels(nifti_case, tmp_path, capsys, space):
    labels_path, image_path, g, lab = nifti_case
    data, header = _slicer_style(lab, g, space)
    slicer_file = tmp_path / "slicer.seg.nrrd"
    nrrd.write(str(slicer_file), data, header, index_order="F")
    out = tmp_path / "labels.nii.gz.out.nii.gz"
    # an unknown name is one line asking which side, and nothing is written
    assert main(["convert", str(slicer_file), "--reference", str(image_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "which side is segment 'Mandible'" in err and "--map" in err
    assert not out.exists()
    assert main(["convert", str(slicer_file), "--reference", str(image_path), "--out", str(out),
                 "--map", "Mandible=ignore"]) == 0
    text = capsys.readouterr().out
    assert "'IAN_R' -> right IAN (1) (from its name)" in text and "'Left IAN' -> left IAN (2)" in text
    assert "'Mandible' -> ignored (as mapped: mandible)" in text
    got = read_volume(out)
    assert np.array_equal(got.data, lab)
    assert np.allclose(got.geometry.native_affine, g.native_affine)


def test_oversampled_slicer_segmentation_lands_on_the_image_voxels(nifti_case, tmp_path):
    """Slicer often segments on a finer grid than the image: twice finer along every axis here."""
    from napari_ian.trainer.label_io import read_labels

    _, image_path, g, lab = nifti_case
    native = g.to_native(lab)
    fine = native.repeat(2, 0).repeat(2, 1).repeat(2, 2)
    aff = g.native_affine.copy()
    aff[:3, 3] = (aff @ [-0.25, -0.25, -0.25, 1])[:3]     # centre of the first sub-voxel
    aff[:3, :3] /= 2
    aff_lps = LPS @ aff
    names = {"Segment0_Name": "nerve right", "Segment0_LabelValue": "1", "Segment1_Name": "nerve left",
             "Segment1_LabelValue": "2"}
    path = tmp_path / "fine.seg.nrrd"
    nrrd.write(str(path), fine, {"space": "left-posterior-superior", "space directions": aff_lps[:3, :3].T,
                                 "space origin": aff_lps[:3, 3], **names}, index_order="F")
    got, report = read_labels(path, read_volume(image_path))
    assert np.array_equal(got.data, lab)
    assert "'nerve right' -> right IAN (1) (from its name)" in report


def _dicom_case(tmp_path):
    """An oblique, anisotropic DICOM series (identified patient), its labels as NIfTI on its grid."""
    g = _oblique_geometry((40, 24, 36))
    rng = np.random.default_rng(1)
    image = rng.uniform(10, 200, g.canonical_shape).astype(np.float32)
    folder = tmp_path / "dicom"
    write_dicom_series(folder, image, g.canonical_affine, slope=1 / 64, patient_id="PID-4711",
                       series_description="t2 cor")
    vol = read_volume(folder)
    lab = _nerves(vol.data.shape)
    write_nifti(tmp_path / "labels.nii.gz", lab, vol.geometry)
    return folder, tmp_path / "labels.nii.gz", vol, lab


def test_dicom_seg_frames_match_the_labels_on_each_source_slice(tmp_path, capsys):
    import highdicom as hd

    folder, labels_path, vol, lab = _dicom_case(tmp_path)
    out = tmp_path / "seg.dcm"
    assert main(["convert", str(labels_path), "--reference", str(folder), "--out", str(out)]) == 0
    assert "carries the patient's identifiers" in capsys.readouterr().out
    seg = hd.seg.segread(out)
    sources = [pydicom.dcmread(f) for f in sorted(folder.iterdir())]
    assert seg.PatientID == "PID-4711" and seg.FrameOfReferenceUID == sources[0].FrameOfReferenceUID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == sources[0].SeriesInstanceUID
    numbers = {str(seg.get_segment_description(n).SegmentLabel): n for n in seg.segment_numbers}
    assert set(numbers) == {"right IAN", "left IAN"}
    for label, n in numbers.items():
        d = seg.get_segment_description(n)
        assert d.SegmentedPropertyTypeCodeSequence[0].CodeValue == "280261005"
        assert d.SegmentedPropertyTypeModifierCodeSequence[0].CodeMeaning == label.split()[0].capitalize()
        assert d.SegmentAlgorithmType == "MANUAL"
    nii = nib.load(labels_path)
    nii_labels, to_voxel = np.asarray(nii.dataobj), np.linalg.inv(nii.affine)
    checked = 0
    for ds in sources:
        frames = seg.get_pixels_by_source_instance([ds.SOPInstanceUID], segment_numbers=[numbers["right IAN"],
                                                   numbers["left IAN"]], assert_missing_frames_are_empty=True)[0]
        got = np.where(frames[..., 0] > 0, 1, np.where(frames[..., 1] > 0, 2, 0))
        # what the NIfTI labels hold at each pixel centre of this source slice, in patient space
        row_dir, col_dir = np.asarray(ds.ImageOrientationPatient[:3], float), np.asarray(ds.ImageOrientationPatient[3:], float)
        dr, dc = (float(v) for v in ds.PixelSpacing)
        r, c = np.mgrid[:ds.Rows, :ds.Columns]
        lps = np.asarray(ds.ImagePositionPatient, float) + r[..., None] * dr * col_dir + c[..., None] * dc * row_dir
        ras = lps * (-1, -1, 1)
        ijk = np.rint(np.einsum("ij,...j->...i", to_voxel[:3, :3], ras) + to_voxel[:3, 3]).astype(int)
        want = nii_labels[ijk[..., 0], ijk[..., 1], ijk[..., 2]]
        assert np.array_equal(got, want), ds.InstanceNumber
        checked += int(want.any())
    assert checked >= 3   # the axial slices the nerves cross


def test_nifti_dicom_seg_nifti_round_trip_and_model_as_algorithm(tmp_path, capsys):
    folder, labels_path, vol, lab = _dicom_case(tmp_path)
    out, back = tmp_path / "seg.dcm", tmp_path / "back.nii.gz"
    assert main(["convert", str(labels_path), "--reference", str(folder), "--out", str(out),
                 "--model", "ian-default"]) == 0
    ds = pydicom.dcmread(out)
    item = ds.SegmentSequence[0]
    assert item.SegmentAlgorithmType == "AUTOMATIC"
    assert item.SegmentationAlgorithmIdentificationSequence[0].AlgorithmName == "ian-default"
    assert main(["convert", str(out), "--reference", str(folder), "--out", str(back)]) == 0
    assert np.array_equal(read_volume(back).data, lab)
    # only the SEG carries the patient: NIfTI and Slicer outputs of the same series do not
    assert b"PID-4711" in out.read_bytes()
    slicer = tmp_path / "from_dicom.seg.nrrd"
    assert main(["convert", str(back), "--reference", str(folder), "--out", str(slicer)]) == 0
    assert b"PID-4711" not in gzip.decompress(back.read_bytes())
    assert b"PID-4711" not in slicer.read_bytes().split(b"\n\n", 1)[0]     # the header; the rest is voxels
    assert np.array_equal(np.asarray(nib.load(back).dataobj), np.asarray(nib.load(labels_path).dataobj))
    assert main(["convert", str(labels_path), "--reference", str(folder), "--out", str(tmp_path / "y.dcm"),
                 "--model", "no-such-model"]) == 2
    assert "no such model" in capsys.readouterr().err and not (tmp_path / "y.dcm").exists()
    # a SEG needs the series it references
    assert main(["convert", str(labels_path), "--out", str(tmp_path / "x.dcm")]) == 2
    assert "needs --reference" in capsys.readouterr().err


@pytest.mark.parametrize("name, side", [
    ("Right IAN", 1), ("IAN_L", 2), ("nerve right", 1), ("rIAN", 1), ("IANr", 1), ("IAN-R", 1), ("RightIAN", 1),
    ("left inferior alveolar nerve", 2), ("N. alveolaris inf. dx", 1), ("ian_sin", 2), ("L", 2),
    ("Segment_1", None), ("Inferior alveolar nerve", None), ("left and right", None), ("cleft", None),
    ("Lingual nerve", None)])
def test_side_from_segment_names(name, side):
    assert side_from_name(name) == side


def test_side_map_option_is_checked():
    assert parse_side_map(["Segment_1=right", "3=L", "mandible=ignore"]) == {"segment_1": 1, "3": 2, "mandible": 0}
    with pytest.raises(ValueError, match="expected NAME=right"):
        parse_side_map(["Segment_1=up"])


def test_plain_label_nrrd_and_bad_files_say_what_is_wrong(nifti_case, tmp_path, capsys):
    labels_path, image_path, g, lab = nifti_case
    aff = LPS @ g.native_affine
    plain = tmp_path / "plain.nrrd"
    header = {"space": "LPS", "space directions": aff[:3, :3].T, "space origin": aff[:3, 3]}
    nrrd.write(str(plain), g.to_native(lab), header, index_order="F")
    assert main(["convert", str(plain), "--out", str(tmp_path / "p.nii.gz")]) == 0
    assert "label values read as napari-ian's 1 = right IAN, 2 = left IAN" in capsys.readouterr().out
    assert np.array_equal(read_volume(tmp_path / "p.nii.gz").data, lab)
    three = tmp_path / "three.nrrd"
    nrrd.write(str(three), (g.to_native(lab) * 3).astype(np.uint8), header, index_order="F")
    assert main(["convert", str(three), "--out", str(tmp_path / "t.nii.gz")]) == 2
    err = capsys.readouterr().err
    assert "which side is segment '3', '6'" in err and "Traceback" not in err
    assert main(["convert", str(three), "--out", str(tmp_path / "t.nii.gz"), "--map", "3=right", "--map", "6=left"]) == 0
    assert np.array_equal(read_volume(tmp_path / "t.nii.gz").data, lab)
    scanner = tmp_path / "scanner.nrrd"
    nrrd.write(str(scanner), g.to_native(lab), {**header, "space": "scanner-xyz"}, index_order="F")
    assert main(["convert", str(scanner), "--out", str(tmp_path / "s.nii.gz")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"ian: {scanner}: space 'scanner-xyz'") and len(err.splitlines()) == 1
    assert main(["convert", str(labels_path), "--out", str(tmp_path / "x.mha")]) == 2
    assert "unknown label format" in capsys.readouterr().err


# -- the plugin: reader onto an open image, writers, the Case panel's save -------------------------
def _answer_dialogs(monkeypatch, answers, asked):
    """QInputDialog.getItem answered from ``answers`` (question substring -> item), questions recorded."""
    from qtpy.QtWidgets import QInputDialog

    def get_item(parent, title, question, items, current=0, editable=False):
        asked.append((question, list(items)))
        for key, item in answers.items():
            if key in question:
                return item, True
        return "", False

    monkeypatch.setattr(QInputDialog, "getItem", staticmethod(get_item))


@pytest.mark.gui
def test_plugin_opens_a_slicer_file_onto_the_chosen_image_and_saves_for_slicer(
        make_napari_viewer, qtbot, nifti_case, tmp_path, monkeypatch):
    import slicerio
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QFileDialog

    monkeypatch.setenv("NAPARI_IAN_HOME", str(tmp_path / "home"))
    labels_path, image_path, g, lab = nifti_case
    other = tmp_path / "other.nii.gz"
    og = _oblique_geometry((30, 30, 30))
    write_nifti(other, np.zeros(og.canonical_shape, np.float32), og, dtype=np.float32)
    data, header = _slicer_style(lab, g)
    slicer_file = tmp_path / "slicer.seg.nrrd"
    nrrd.write(str(slicer_file), data, header, index_order="F")
    viewer = make_napari_viewer(show=True)
    _, w = viewer.window.add_plugin_dock_widget("napari-ian", "Case")
    viewer.open(str(image_path), plugin="napari-ian")
    viewer.open(str(other), plugin="napari-ian")
    asked = []
    _answer_dialogs(monkeypatch, {"onto which image": "image", "'Mandible'": "ignored"}, asked)
    [layer] = viewer.open(str(slicer_file), plugin="napari-ian")
    # the user chose among the open images (or the file's own grid), then the side of 'Mandible'
    assert asked[0][1] == ["other", "image", "(its own grid, no image)"]
    assert "Which side is segment 'Mandible'?" in asked[1][0] and len(asked) == 2
    assert np.array_equal(layer.data, lab) and layer.scale == pytest.approx(viewer.layers["image"].scale)
    # saved from the Case panel as a Slicer segmentation: the same patient-space positions
    out = tmp_path / "exports" / "for_slicer"

    def fake_dialog(parent, caption, start, filters):
        return str(out), next(f for f in filters.split(";;") if f.startswith("3D Slicer"))

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(fake_dialog))
    viewer.layers.selection.active = layer
    qtbot.mouseClick(w.save_btn, Qt.LeftButton)
    written = out.with_name("for_slicer.seg.nrrd")
    seg = slicerio.read_segmentation(str(written))
    nii = nib.load(labels_path)
    for value in (1, 2):
        assert np.allclose(_world_points(seg["voxels"], LPS @ seg["ijkToLPS"], value),
                           _world_points(np.asarray(nii.dataobj), nii.affine, value), atol=1e-4)
    # File > Save Selected Layers routes .seg.nrrd to the Slicer writer too
    again = tmp_path / "again.seg.nrrd"
    viewer.layers.save(str(again), selected=True, plugin="napari-ian")
    assert np.array_equal(slicerio.read_segmentation(str(again))["voxels"], seg["voxels"])


@pytest.mark.gui
def test_case_panel_dicom_seg_asks_first_then_round_trips_in_the_plugin(
        make_napari_viewer, qtbot, tmp_path, monkeypatch):
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QFileDialog, QMessageBox

    monkeypatch.setenv("NAPARI_IAN_HOME", str(tmp_path / "home"))
    folder, _, vol, lab = _dicom_case(tmp_path)
    viewer = make_napari_viewer(show=True)
    _, w = viewer.window.add_plugin_dock_widget("napari-ian", "Case")
    [image] = viewer.open(str(folder), plugin="napari-ian")
    labels = w.new_labels()
    labels.data = lab.copy()
    target = tmp_path / "exports" / "nerves.dcm"
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        staticmethod(lambda parent, caption, start, filters: (str(target), filters.split(";;")[-1])))
    questions = []

    def question(parent, title, text, buttons, default):
        questions.append(text)
        return QMessageBox.Cancel if len(questions) == 1 else QMessageBox.Save

    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    viewer.layers.selection.active = labels
    qtbot.mouseClick(w.save_btn, Qt.LeftButton)          # cancelled: nothing written
    assert "patient's identifiers" in questions[0] and not target.exists()
    qtbot.mouseClick(w.save_btn, Qt.LeftButton)
    assert target.exists() and pydicom.dcmread(target).PatientID == "PID-4711"
    # opened again in the plugin: onto the series it references, the same voxels
    [back] = viewer.open(str(target), plugin="napari-ian")
    assert back.name == f"{image.name} IAN labels (DICOM SEG)" and np.array_equal(back.data, lab)
    # without its series open there is nothing to put it on: one line says so, no layer
    errors = []
    monkeypatch.setattr("napari_ian._reader.show_error", lambda m: errors.append(m))
    viewer.layers.clear()
    with pytest.raises(ValueError):   # napari's own "returned no data" after our notification
        viewer.open(str(target), plugin="napari-ian")
    assert len(viewer.layers) == 0 and "not open: open that series first" in errors[-1]


def test_writer_records_the_model_of_a_prediction_layer_in_the_dicom_seg(tmp_path):
    from napari_ian._layers import labels_layer_data
    from napari_ian._writer import write_labels

    folder, _, vol, lab = _dicom_case(tmp_path)
    _, kwargs, _ = labels_layer_data(lab, vol.geometry, "ian-default prediction")
    kwargs["metadata"]["ian_model"] = {"name": "ian-default"}
    write_labels(str(tmp_path / "pred.dcm"), lab, kwargs)
    item = pydicom.dcmread(tmp_path / "pred.dcm").SegmentSequence[1]
    assert item.SegmentLabel == "left IAN" and item.SegmentAlgorithmType == "AUTOMATIC"
    assert item.SegmentationAlgorithmIdentificationSequence[0].AlgorithmName == "ian-default"
    assert item.SegmentationAlgorithmIdentificationSequence[0].AlgorithmVersion != "unknown"


@pytest.mark.slow
def test_phantom_labels_to_dicom_seg_of_the_phantom_dicom_series(tmp_path, capsys, monkeypatch, phantom_cache):
    """The issue's check on `ian phantom` output: NIfTI labels (coronal grid) -> SEG of the axial DICOM series."""
    import highdicom as hd

    from napari_ian.sample_data import dataset as dataset_mod

    monkeypatch.setattr(dataset_mod, "make_phantom", phantom_cache)  # reuse the session's phantom
    assert main(["phantom", "--out", str(tmp_path / "ph"), "--patients", "1", "--seed", "5", "--quiet"]) == 0
    labels_path = tmp_path / "ph" / "labelsTr" / "ianph_0005000.nii.gz"
    series = tmp_path / "ph" / "dicom" / "ianph_0005000"
    out = tmp_path / "seg.dcm"
    assert main(["convert", str(labels_path), "--reference", str(series), "--out", str(out)]) == 0
    seg = hd.seg.segread(out)
    numbers = {str(seg.get_segment_description(n).SegmentLabel): n for n in seg.segment_numbers}
    ref = read_volume(series)
    native = ref.geometry.to_native(read_volume(labels_path).data)   # the labels in the series' own slices
    files = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID): f for f in series.iterdir()}
    for uid, f in files.items():
        k = int(pydicom.dcmread(f, stop_before_pixels=True).InstanceNumber) - 1   # the writer numbers slices in order
        frames = seg.get_pixels_by_source_instance([uid], segment_numbers=[numbers["right IAN"], numbers["left IAN"]],
                                                   assert_missing_frames_are_empty=True)[0]
        assert np.array_equal(frames[..., 0] > 0, native[k] == 1) and np.array_equal(frames[..., 1] > 0, native[k] == 2)
    assert (native == 1).any() and (native == 2).any()
