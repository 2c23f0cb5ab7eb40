"""The workflow in plain napari fits a laptop and a desktop screen (docs/plain_napari.py, run on each).

napari is started as a user starts it, the sample opened from File > Open Sample and the six
panels docked from the Plugins menu; then the workflow is clicked through (with a tiny test
network: the layout, not the model, is under test). At every step the
window must fit the screen, and each panel's main controls, progress and result must be wholly
in view (not scrolled away, not cut) when its tab is in front.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tiny_models import save_tiny3d

pytestmark = [pytest.mark.gui, pytest.mark.slow]
SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "plain_napari.py"


SCREENS = [(1366, 768), (1600, 1000)]


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """``{(width, height): the walkthrough's JSON report}``, both screens walked through at once
    (each in its own process, home and settings): most of a walkthrough is starting napari and
    torch, which leaves the second core idle."""
    if shutil.which("xvfb-run") is None:
        pytest.skip("xvfb-run is needed to make a screen of a given size")
    runs = {}
    with pytest.MonkeyPatch.context() as mp:
        for width, height in SCREENS:
            if runs:
                time.sleep(3)      # xvfb-run -a takes the first free display: let the first run claim its own
            folder = tmp_path_factory.mktemp(f"screen_{width}x{height}")
            out = folder / "report.json"
            mp.setenv("NAPARI_IAN_HOME", str(folder / "home"))
            # what is on screen does not depend on the model's skill: a tiny network predicts and
            # fine-tunes in seconds where the bundled one takes minutes on a CPU (`make screenshot`
            # runs the bundled one)
            save_tiny3d("tiny3d")
            env = dict(os.environ, NAPARI_CONFIG=str(folder / "napari_settings.yaml"))
            with open(folder / "stderr.txt", "w") as err:      # a file: a full pipe would stall the other run
                proc = subprocess.Popen(["xvfb-run", "-a", "-s", f"-screen 0 {width}x{height}x24", sys.executable,
                                         str(SCRIPT), "--model", "tiny3d", "--json", str(out)], env=env,
                                        stdout=subprocess.DEVNULL, stderr=err)
            runs[width, height] = proc, out, folder / "stderr.txt"
    done = {}
    for screen, (proc, out, err) in runs.items():
        try:
            proc.wait(timeout=900)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        done[screen] = (proc.returncode, err.read_text(), out)
    return done


@pytest.mark.parametrize("width,height", SCREENS)
def test_all_six_panels_fit_the_screen_through_the_workflow(reports, width, height):
    returncode, err, out = reports[width, height]
    assert returncode == 0, err[-3000:]
    report = json.loads(out.read_text())
    assert report["steps"].keys() >= {"docked", "three_views", "predicted", "reviewed", "finetuning", "finetuned"}
    for step, state in report["steps"].items():
        assert state["screen"] == [width, height]
        assert state["fits_screen"], (step, state["window"])
        # napari opens at about two thirds of the screen: the first napari-ian panel makes it fill it
        assert state["window"][0] >= 0.95 * width and state["window"][1] >= 0.9 * height, (step, state["window"])
        for name, panel in state["panels"].items():
            assert panel["hidden"] == [], (step, name, panel)
            assert panel["cut_buttons"] == [], (step, name, panel)
    # the longest result: saved, with the held-out before/after figure
    assert "saved" in report["finetune_result"] and "Held-out corrected slices" in report["finetune_result"]
    assert report["predict_panels"] == 1 and report["repredicted_with"].startswith("tiny3d-ft1")
    assert report["axis_labels"] == ["AP", "SI", "RL"]
