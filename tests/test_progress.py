"""The one progress and cancel convention: events from prediction, training and the fine-tune flow,
the CLI's adapter, and the panels' bridge from a worker thread to the GUI thread."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from napari_ian.trainer.finetune import FinetuneConfig
from napari_ian.trainer.pipeline import Slices25D
from napari_ian.trainer.progress import EPOCH, INFER, STAGE, STEP, Cancelled, Progress, report
from napari_ian.trainer.progress_console import ConsoleProgress


class _Dark(torch.nn.Module):
    def forward(self, x):
        return torch.full((x.shape[0], 1) + tuple(x.shape[2:]), -10.0)


def test_an_event_has_a_known_kind_and_no_callback_means_no_work():
    with pytest.raises(ValueError, match="progress kind 'percent'"):
        Progress("percent", 1, 2)
    report(None, INFER, 1, 2)          # nothing to call: nothing happens
    seen = []
    report(seen.append, EPOCH, 3, 5, loss=0.5)
    assert seen == [Progress(EPOCH, 3, 5, "", {"loss": 0.5})]


def test_inference_reports_every_batch_in_order_and_cancel_stops_it():
    pipe = Slices25D(context=3, spacing_mm=(0.8, 0.5, 0.5), roi_stride=1)
    prep = pipe.prepare(np.random.default_rng(0).random((40, 24, 32), dtype=np.float32), (0.8, 0.5, 0.5))
    events = []
    pipe.infer(prep, _Dark(), torch.device("cpu"), batch=8, progress=events.append)
    assert {e.kind for e in events} == {INFER}
    assert [e.done for e in events] == [8, 16, 24, 32, 40] and {e.total for e in events} == {40}
    calls = []
    with pytest.raises(Cancelled):
        pipe.infer(prep, _Dark(), torch.device("cpu"), batch=8, progress=calls.append,
                   cancel=lambda: len(calls) >= 2)
    assert len(calls) == 2                # stopped before the third batch


def test_the_finetune_flow_reports_its_stages_then_steps_and_epochs(tmp_path, monkeypatch, phantom, capsys):
    from napari_ian.trainer.workflows import finetune_case

    from tiny_models import save_tiny3d

    monkeypatch.setenv("NAPARI_IAN_HOME", str(tmp_path / "home"))
    save_tiny3d("tiny3d")                      # the events, not what the network learns, are under test
    image, labels, sp, _ = phantom
    both = np.flatnonzero((labels == 1).any(axis=(1, 2)) & (labels == 2).any(axis=(1, 2)))
    trusted = np.zeros((2, image.shape[0]), bool)
    trusted[:, both[np.linspace(0, len(both) - 1, 8).round().astype(int)]] = True
    events = []
    console = ConsoleProgress(bars=False, score="held-out DSC")

    def both_sinks(e):
        events.append(e)
        console(e)

    out = finetune_case("file:progress-test", image, labels, trusted, sp, base="tiny3d", name="prog-ft",
                        cfg=FinetuneConfig(epochs=2, min_patches=4, device="cpu"), progress=both_sinks)
    console.close()
    kinds = [e.kind for e in events]
    assert kinds[:3] == [STAGE, STAGE, STAGE] and kinds[-1] == EPOCH
    assert "Saving the corrections" in events[0].message and "Training on" in events[2].message
    epochs = [e for e in events if e.kind == EPOCH]
    assert [(e.done, e.total) for e in epochs] == [(1, 2), (2, 2)]
    assert [h["loss"] for h in out.result.history] == [e.info["loss"] for e in epochs]
    assert set(kinds[3:]) == {STEP, EPOCH}
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == events[0].message and printed[-1].startswith("epoch 2/2  loss ")
    assert "held-out DSC" in printed[-1]
    # a cancel between the stages: nothing saved
    with pytest.raises(Cancelled):
        finetune_case("file:progress-test", image, labels, trusted, sp, base="tiny3d", name="prog-ft2",
                      cfg=FinetuneConfig(epochs=2, min_patches=4, device="cpu"),
                      cancel=lambda: True)
    assert not (tmp_path / "home" / "models" / "prog-ft2.pt").exists()


def test_console_bars_follow_batches_and_stay_off_when_quiet(capsys):
    with ConsoleProgress(desc="predict") as p:
        for done in (4, 8, 12):
            report(p, INFER, done, 12)
    err = capsys.readouterr().err
    assert "predict" in err and "12/12" in err
    with ConsoleProgress(bars=False, lines=False) as p:
        report(p, STAGE, message="a stage")
        report(p, INFER, 1, 2)
        report(p, EPOCH, 1, 1, loss=0.1, val_dsc=float("nan"))
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


@pytest.mark.gui
def test_the_panels_bridge_delivers_events_on_the_gui_thread(qtbot):
    from napari_ian._progress_bridge import WorkerProgress

    gui = threading.get_ident()
    seen = []
    bridge = WorkerProgress("bridge test", INFER, lambda e: seen.append((e.done, threading.get_ident())))
    worker = threading.Thread(target=lambda: [bridge(Progress(INFER, i, 3)) for i in (1, 2, 3)])
    worker.start()
    worker.join()
    qtbot.waitUntil(lambda: len(seen) == 3, timeout=5_000)
    assert seen == [(1, gui), (2, gui), (3, gui)]
    assert bridge._activity is not None and bridge._activity.n == 3 and bridge._activity.total == 3
    assert not bridge.cancelled()
    bridge.cancel()
    assert bridge.cancelled()
    activity = bridge._activity
    bridge.close()
    bridge(Progress(INFER, 3, 3))           # a late event after the worker ended opens nothing
    qtbot.wait(50)
    assert bridge._activity is None and activity.n == 3


@pytest.mark.gui
def test_a_run_in_the_activity_bar_repaints_the_window_a_few_times_a_second_not_thirty(make_napari_viewer, qtbot):
    """napari's activity spinner repaints the whole window on every frame, which costs a CPU core
    where OpenGL is drawn in software: while a panel's run shows there it turns at a tenth of its speed."""
    from qtpy.QtCore import QEvent, QObject
    from qtpy.QtWidgets import QLabel

    from napari_ian._progress_bridge import SPINNER_SPEED, WorkerProgress

    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window

    class Paints(QObject):
        n = 0

        def eventFilter(self, obj, event):
            if obj is window and event.type() == QEvent.Paint:
                self.n += 1
            return False

    counter = Paints()
    window.installEventFilter(counter)
    bridge = WorkerProgress("a long run", INFER)
    bridge(Progress(INFER, 1, 100))
    qtbot.waitUntil(lambda: bridge._activity is not None, timeout=5_000)
    qtbot.wait(500)                         # the bar has appeared and been drawn
    counter.n = 0
    qtbot.wait(2_000)
    painted = counter.n
    bridge.close()
    window.removeEventFilter(counter)
    spinners = [label.movie() for label in window.findChildren(QLabel) if label.movie() is not None]
    assert painted <= 12, painted           # napari's own speed: about 60 in two seconds
    assert spinners and all(m.speed() == SPINNER_SPEED for m in spinners)
