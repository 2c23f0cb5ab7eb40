"""Save / export from the Case panel, remembered locations, and no patient identifiers anywhere."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pydicom
import pytest

from napari_ian.sample_data.dataset import phantom_geometry
from napari_ian.sample_data.phantom import INTENSITY_SLOPE
from napari_ian.trainer.dicom_write import write_dicom_series
from napari_ian.trainer.phi import identifiers_of, mentions_identifier, safe_name

PHI = ("DOE", "JANE", "PID778899", "19610203")


def _identified_series(folder: Path, phantom) -> Path:
    """A small DICOM series with a patient's name, ID and birth date, filed under the name."""
    image, _labels, spacing, _info = phantom
    crop = image[40:52, :, 60:200]
    aff = phantom_geometry(image.shape, spacing).canonical_affine.copy()
    aff[:3, 3] = (aff @ [40, 0, 60, 1])[:3]
    write_dicom_series(folder, crop, aff, slope=INTENSITY_SLOPE, patient_id="PID778899",
                       series_description="t2 stir cor")
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        ds.PatientName = "DOE^JANE"
        ds.PatientBirthDate = "19610203"
        ds.save_as(f)
    return folder


def test_identifiers_from_headers_and_checks():
    ds = pydicom.Dataset()
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "PID778899"
    ds.PatientBirthDate = "19610203"
    ids = identifiers_of(ds)
    assert {"DOE^JANE", "DOE", "JANE", "PID778899", "19610203"} <= ids
    assert mentions_identifier("scans/doe_jane_t2", ids) and not mentions_identifier("t2 stir cor", ids)
    assert safe_name("Jane Doe 1961", ids, "MR series 1a2b") == "MR series 1a2b"
    assert identifiers_of(pydicom.Dataset()) == frozenset()


def _all_bytes_and_names(*roots):
    for root in roots:
        for p in Path(root).rglob("*"):
            yield p.name
            if p.is_file():
                raw = p.read_bytes()
                yield raw.decode("latin-1")
                if p.name.endswith((".gz", ".npz")):
                    try:
                        yield gzip.decompress(raw).decode("latin-1")
                    except OSError:
                        pass


@pytest.mark.gui
def test_dicom_with_identifiers_leaves_none_in_names_autosaves_or_exports(make_napari_viewer, qtbot, tmp_path,
                                                                         monkeypatch, phantom):
    from qtpy.QtWidgets import QFileDialog

    from gui_actions import dock

    home, out = tmp_path / "home", tmp_path / "exports"
    out.mkdir()
    monkeypatch.setenv("NAPARI_IAN_HOME", str(home))
    folder = _identified_series(tmp_path / "DOE_JANE_PID778899", phantom)
    viewer = make_napari_viewer(show=True)
    [image] = viewer.open(str(folder), plugin="napari-ian")
    assert not any(s in image.name.upper() for s in PHI)
    assert image.name == "t2 stir cor"                       # the series description, not the folder
    w = dock(viewer, "Case")
    labels = w.new_labels()
    labels.data_setitem((np.array([5, 5]), np.array([20, 21]), np.array([40, 40])), 1)
    saver = w.autosaver
    saver.flush()
    qtbot.waitUntil(lambda: bool(saver.saved), timeout=5_000)
    # the save dialog offers a neutral name; we accept it in another folder
    offered = []

    def fake_dialog(parent, caption, start, filters):
        offered.append(start)
        return str(out / Path(start).name), filters

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(fake_dialog))
    saved = w.save_labels_dialog()
    assert saved and Path(saved).exists()
    assert not any(s in Path(offered[0]).name.upper() for s in PHI)
    # the exported mask is the painted one, on the source grid
    from napari_ian.trainer.io import read_volume

    back = read_volume(saved)
    assert np.array_equal(back.data, np.asarray(labels.data))
    # nothing written by the tool (autosave, workspace, export) names the patient
    for text in _all_bytes_and_names(home, out):
        up = text.upper()
        assert not any(s in up for s in ("DOE^JANE", "PID778899", "19610203")), text[:200]
    # next time the dialog opens on this case's saved file, and the panel says where it went
    w.save_labels_dialog()
    assert offered[1] == str(Path(saved).resolve())
    assert str(Path(saved).resolve()) in w.save_info.text()


@pytest.mark.gui
def test_save_without_labels_or_geometry_says_why(make_napari_viewer, tmp_path, monkeypatch):
    from gui_actions import dock
    from napari_ian import _case_widget

    monkeypatch.setenv("NAPARI_IAN_HOME", str(tmp_path))
    said, errors = [], []
    monkeypatch.setattr(_case_widget, "show_info", lambda m: said.append(m))
    monkeypatch.setattr("napari.utils.notifications.show_error", lambda m: errors.append(m))
    viewer = make_napari_viewer(show=True)
    w = dock(viewer, "Case")
    assert w.save_labels_dialog() is None and "no IAN labels layer" in said[-1]
    # a plain labels layer (not made by napari-ian): refused with the reason, no file written
    viewer.add_image(np.zeros((4, 5, 6), np.float32), name="plain")
    plain = viewer.add_labels(np.zeros((4, 5, 6), np.uint8), name="plain labels")
    target = tmp_path / "x.nii.gz"
    assert w.save_labels_to(target, plain) is None
    assert "no source-image geometry" in errors[-1] and not target.exists()
