"""The corrections store merges concurrent saves of one case from separate processes."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

SAVE = """
import sys, time
from pathlib import Path
import numpy as np
from napari_ian.trainer.corrections import save_corrections
folder, first = Path(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)                    # both processes: the same image
image = rng.normal(100, 20, (120, 96, 96)).astype(np.float32)
labels = np.zeros(image.shape, np.uint8)
trusted = np.zeros((2, image.shape[0]), bool)
labels[first:first + 5, 40:44, 20:24] = 1
trusted[0, first:first + 5] = True
go = folder / "go"
while not go.exists():
    time.sleep(0.0005)
save_corrections("one-case", image, labels, trusted, (0.8, 0.8, 0.8))
"""


@pytest.mark.slow
def test_two_processes_saving_one_case_both_reach_the_store(tmp_path, monkeypatch):
    from napari_ian.trainer.corrections import list_corrections, load_corrections

    monkeypatch.setenv("NAPARI_IAN_HOME", str(tmp_path / "home"))
    for trial in range(3):
        for old in (tmp_path / "home").glob("corrections/*.npz"):
            old.unlink()
        (tmp_path / "go").unlink(missing_ok=True)
        procs = [subprocess.Popen([sys.executable, "-c", SAVE, str(tmp_path), str(first)])
                 for first in (100, 110)]
        time.sleep(2.0)                               # both have made their arrays and wait
        (tmp_path / "go").touch()
        assert [p.wait(timeout=120) for p in procs] == [0, 0]
        entries = list_corrections()
        assert len(entries) == 1
        assert entries[0].slices["right"] == list(range(100, 105)) + list(range(110, 115)), trial
        _, labels, trusted, _ = load_corrections(entries[0])
        assert (labels[100:105] == 1).any(axis=(1, 2)).all() and (labels[110:115] == 1).any(axis=(1, 2)).all()
        assert trusted[0].sum() == 10
    # the lock is a hidden sidecar: never listed as an entry, never a temp file left
    names = sorted(p.name for p in (tmp_path / "home" / "corrections").iterdir())
    assert [n for n in names if not n.startswith(".")] == [entries[0].path.name]
    assert [n for n in names if n.startswith(".")] == [f".{entries[0].path.name}.lock"]
