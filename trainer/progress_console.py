"""The command line's side of the progress convention: events (:mod:`.progress`) to tqdm bars and lines.

One adapter for every ``ian`` command: ``prepare``, ``infer`` and ``step`` events move a bar on
stderr (hidden with ``bars=False``); ``stage`` messages and one summary line per ``epoch`` are
printed (hidden with ``lines=False``).
"""
from __future__ import annotations

import math

from .progress import EPOCH, INFER, PREPARE, STAGE, STEP, Progress


class ConsoleProgress:
    """A ``progress`` callable for the CLI; close it when the work ends (also a context manager).

    Parameters
    ----------
    bars : bool
        Show tqdm bars for ``prepare``, ``infer`` and ``step`` events.
    lines : bool
        Print ``stage`` messages and one line per epoch.
    desc : str
        The bars' label for ``prepare`` and ``infer`` events (e.g. ``predict``, ``phantom``).
    unit : str
        What a ``prepare`` event counts.
    score : str
        What the epoch line calls the validation DSC (``val DSC``, ``held-out DSC``).
    """

    def __init__(self, bars: bool = True, lines: bool = True, desc: str = "", unit: str = "it",
                 score: str = "val DSC"):
        self.bars, self.lines, self.desc, self.unit, self.score = bars, lines, desc, unit, score
        self._bar = None
        self._kind = None

    def _open(self, kind, total, desc, unit):
        from tqdm import tqdm

        self.close()
        self._bar = tqdm(total=total or None, desc=desc, unit=unit, leave=False, disable=not self.bars)
        self._kind = kind

    def __call__(self, event: Progress) -> None:
        if event.kind == STAGE:
            if self.lines:
                self.close()
                print(event.message, flush=True)
        elif event.kind == EPOCH:
            self.close()
            if self.lines:
                i = event.info
                val = i.get("val_dsc", float("nan"))
                print(f"epoch {event.done}/{event.total}  loss {i.get('loss', float('nan')):.4f}  {self.score} "
                      f"{'–' if math.isnan(val) else format(val, '.3f')}  {i.get('elapsed_s', 0):.0f} s "
                      f"(about {i.get('eta_s', 0):.0f} s left)", flush=True)
        elif event.kind in (PREPARE, INFER, STEP):
            if self._kind != event.kind or self._bar is None or event.done <= 1:
                if event.kind == STEP:
                    desc, unit = f"epoch {event.info.get('epoch', '?')}/{event.info.get('epochs', '?')}", "batch"
                else:
                    desc, unit = self.desc or event.kind, self.unit if event.kind == PREPARE else "batch"
                self._open(event.kind, event.total, desc, unit)
            bar = self._bar
            if event.total and bar.total != event.total:
                bar.total = event.total
            bar.n = event.done
            if event.kind == STEP and "loss" in event.info:
                bar.set_postfix(loss=f"{event.info['loss']:.3f}", refresh=False)
            elif event.message:
                bar.set_postfix_str(event.message, refresh=False)
            bar.refresh()

    def close(self) -> None:
        """Close the open bar, if any."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            self._kind = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
