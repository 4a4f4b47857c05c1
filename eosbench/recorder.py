"""One step loop for the measurement and every flow: a process advances a state, a recorder keeps the rows.

The split is the one of the central-flows code (Cohen et al., arXiv 2410.24206): the process (GD, a flow, a
map) only knows how to evaluate its state at a step (``observe``) and move it to a later step
(``advance``); the :class:`Recorder` decides at which steps a row is kept and at which of those the
sharpness is measured, holds the rows, and finds the onset (:func:`onset_step`). :func:`step_loop` drives the
two and turns a :class:`Stop` raised by the process into the recorder's ``stopped`` reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any


class Stop(Exception):
    """Raised by a process to end the run early; its message (why) becomes :attr:`Recorder.stopped`."""


class Recorder:
    """The rows of a run: one at each step of ``steps``, with the sharpness at those that are multiples of
    ``sharpness_every`` (0: never) and at the last one (the measurement ends every run with a sharpness, so
    a forecast of the whole run must too)."""

    def __init__(self, steps: Iterable[int], *, sharpness_every: int = 0):
        self.steps: list[int] = sorted({int(s) for s in steps})
        self._wanted = frozenset(self.steps)
        self.sharpness_every = sharpness_every
        self.final = self.steps[-1] if self.steps else None
        self.rows: list[dict] = []
        self.stopped: str | None = None

    @classmethod
    def every(cls, every: int, last: int, *, sharpness_every: int = 0) -> Recorder:
        """Rows at every ``every``-th step from 0 and at ``last`` (which also gets the sharpness): the
        measurement's plan."""
        return cls([*range(0, last + 1, every), last], sharpness_every=sharpness_every)

    def wants(self, t: int) -> bool:
        return t in self._wanted

    def wants_sharpness(self, t: int) -> bool:
        return bool(self.sharpness_every) and (t % self.sharpness_every == 0 or t == self.final)

    def row(self, t: int) -> dict:
        """The row of step t, opened (``{"step": t}``) if it is not the latest one; steps come in order."""
        if not self.rows or self.rows[-1]["step"] != t:
            self.rows.append({"step": t})
        return self.rows[-1]

    def at(self, t: int) -> dict | None:
        """The row of step t if it is the latest one, else None."""
        return self.rows[-1] if self.rows and self.rows[-1]["step"] == t else None

    def onset(self, threshold: float, column: str = "sharpness") -> int | None:
        return onset_step(self.rows, threshold, column)


def step_loop(recorder: Recorder, visits: Iterable[int], observe: Callable[[int], Any],
        advance: Callable[[int, int], Any], *, start: int | None = None) -> Recorder:
    """Visit the steps of ``visits`` in order: ``advance(t, target)`` moves the process from its step t
    (``start``, else the first visit) to the next visit, then ``observe(target)`` evaluates it there and
    writes into ``recorder``. A :class:`Stop` from either ends the run with its reason."""
    t = start
    try:
        for target in visits:
            if t is not None and target > t:
                advance(t, target)
            t = target
            observe(t)
    except Stop as stop:
        recorder.stopped = str(stop)
    return recorder


def onset_step(values: Sequence[dict] | Any, threshold: float, column: str = "sharpness") -> int | None:
    """The first recorded step whose ``column`` is ≥ ``threshold`` (None if none): ``values`` is a list of
    rows or a series indexed by step (missing values skipped)."""
    if isinstance(values, Sequence):
        return next((int(r["step"]) for r in values if r.get(column) is not None and r[column] >= threshold), None)
    hit = values.dropna()
    hit = hit[hit >= threshold]
    return int(hit.index[0]) if len(hit) else None
