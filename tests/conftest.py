"""Shared non-GUI fixtures: phantom patients made once per test session.

Making one phantom patient takes several seconds, so every test that needs one asks the
``phantom_cache`` (a memoised :func:`make_phantom`) and gets the same read-only arrays.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

# each pytest process (make test runs two workers) has its own napari settings file, made before
# napari is imported: napari rewrites the file as viewers are made, and a process reading it while
# the other writes it would get a half-written file
_SETTINGS_DIR = tempfile.mkdtemp(prefix="napari-ian-tests-")
atexit.register(shutil.rmtree, _SETTINGS_DIR, ignore_errors=True)
os.environ["NAPARI_CONFIG"] = os.path.join(_SETTINGS_DIR, "settings.yaml")

# ``ian phantom --seed 5`` and ``write_dataset(..., seed=5)`` make patient seeds 5000, 5001, ...
PHANTOM_SEED = 5000


class PhantomCache:
    """``cache(seed)`` -> make_phantom(seed), computed once per seed, arrays read-only."""

    def __init__(self):
        self._done = {}

    def __call__(self, seed=0, params=None, **overrides):
        from napari_ian.sample_data.phantom import make_phantom

        if params is not None or overrides:
            return make_phantom(seed, params=params, **overrides)
        if seed not in self._done:
            image, labels, spacing, info = make_phantom(seed)
            image.flags.writeable = False
            labels.flags.writeable = False
            self._done[seed] = (image, labels, spacing, info)
        return self._done[seed]


@pytest.fixture(scope="session")
def phantom_cache():
    return PhantomCache()


@pytest.fixture(scope="session")
def phantom(phantom_cache):
    """(image, labels, spacing, info) of phantom patient seed 5000."""
    return phantom_cache(PHANTOM_SEED)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory, phantom_cache):
    """A 3-patient NIfTI dataset folder (cases.csv) made from phantom seeds 5000-5002."""
    import numpy as np

    from napari_ian.sample_data.dataset import phantom_geometry
    from napari_ian.trainer.io_nifti import write_nifti

    root = tmp_path_factory.mktemp("tiny_dataset")
    lines = ["case_id,patient_id,image,labels"]
    for seed in (5000, 5001, 5002):
        image, labels, spacing, _ = phantom_cache(seed)
        g = phantom_geometry(image.shape, spacing)
        write_nifti(root / f"imagesTr/c{seed}_0000.nii.gz", image, g, dtype=np.float32)
        write_nifti(root / f"labelsTr/c{seed}.nii.gz", labels, g)
        lines.append(f"c{seed},p{seed},imagesTr/c{seed}_0000.nii.gz,labelsTr/c{seed}.nii.gz")
    (root / "cases.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def tile_spy(monkeypatch):
    """The ``tile`` argument of every ``predict_volume`` call (None: training-size patches), in order."""
    from napari_ian.trainer import predict

    tiles = []
    real = predict.predict_volume

    def spy(*args, tile=None, **kwargs):
        tiles.append(tile)
        return real(*args, tile=tile, **kwargs)

    monkeypatch.setattr(predict, "predict_volume", spy)
    return tiles


@pytest.fixture(scope="session", autouse=True)
def _openvino_cache_in_a_temporary_folder(tmp_path_factory):
    """Networks OpenVINO compiles during the tests are cached in a session folder, not in the
    user's home (the bundled model converts once per test session)."""
    from napari_ian.trainer import openvino_runtime

    folder = tmp_path_factory.mktemp("openvino_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(openvino_runtime, "cache_dir", lambda: folder)
        yield folder


@pytest.fixture(autouse=True)
def _collector_skips_what_lived_before_the_test():
    """Freeze every object alive when a test starts, so that the garbage collector skips them.

    napari runs a full ``gc.collect()`` on every canvas for each layer it removes (a Windows
    OpenGL workaround), and closing a viewer removes every layer from the main and side canvases.
    With torch, napari and OpenVINO loaded, each collection walked several hundred thousand
    objects (about 0.2 s here), and closing a viewer with three views took 6-15 s. Frozen objects
    are still freed when their last reference goes; only cycles among them are never collected.
    """
    import gc

    gc.collect()
    gc.freeze()
    yield
