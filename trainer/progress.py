"""One progress convention and one cancel convention for every long job in the package.

Every long function (prediction, training, fine-tuning, the workflows over them) takes

* ``progress``: ``None`` or a callable given one :class:`Progress` event at a time, and
* ``cancel``: ``None`` or a callable polled between batches; when it returns True the work stops
  by raising :class:`Cancelled`, and nothing is returned or saved.

Front-ends adapt the events once: the CLI to tqdm bars and lines, the napari panels to a Qt signal
(``napari_ian._progress_bridge``), since the work runs off the GUI thread.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Optional

#: what an event counts
STAGE = "stage"    # a phase starts; ``message`` says which
PREPARE = "prepare"  # cases or volumes loaded, rendered or preprocessed: ``done`` of ``total``; ``message``: which
INFER = "infer"    # network batches of one prediction: ``done`` of ``total``
STEP = "step"      # training batches of one epoch: ``done`` of ``total``; ``info`` has epoch and loss
EPOCH = "epoch"    # training epochs: ``done`` of ``total``; ``info`` has loss, val_dsc, elapsed_s, eta_s...
KINDS = (STAGE, PREPARE, INFER, STEP, EPOCH)


class Cancelled(Exception):
    """Raised inside long work when its cancel flag is set; nothing is returned or saved."""


@dataclasses.dataclass(frozen=True)
class Progress:
    """One progress event (see the module's docstring)."""

    kind: str
    done: int = 0
    total: int = 0
    message: str = ""
    info: Mapping = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"progress kind {self.kind!r}: one of {', '.join(KINDS)}")


ProgressCallback = Callable[[Progress], None]


def report(progress: Optional[ProgressCallback], kind: str, done: int = 0, total: int = 0, message: str = "",
           **info) -> None:
    """Send one event to ``progress`` (nothing when it is None)."""
    if progress is not None:
        progress(Progress(kind, int(done), int(total), message, info))


def check_cancel(cancel: Optional[Callable[[], bool]]) -> None:
    """Raise :class:`Cancelled` when ``cancel`` is set and returns True."""
    if cancel is not None and cancel():
        raise Cancelled()
