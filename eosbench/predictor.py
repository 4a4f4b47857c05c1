"""The contract between eosbench and a theory. Read this file first if you are writing a predictor.

A theory is a class with a ``name``, a ``version`` and a ``predict(problem) -> Prediction`` method.
eosbench hands it a :class:`Problem` — the task's mathematics (data recipe, architecture, loss,
optimizer), the weights θ_{t0} at the start step, the measured trajectory *up to t0 only*, an oracle for
loss and derivatives on one flat parameter vector, and a budget — and scores the :class:`Prediction` it
returns against the measured trajectory after t0.

Tracks (how a problem is posed, see :mod:`eosbench.tracks`):

* ``trajectory`` — t0 = 0; forecast every measured step of the run.
* ``forecast`` — t0 placed relative to the run's events (before and at the onset, inside sustained EoS, at a
  catapult, before a divergence; never after the run converged); forecast the next ``horizon`` steps.
* ``phase`` — one problem per member of a learning-rate sweep (t0 = 0); answer the scalar ``phase``
  (``monotone``, ``catapult``, ``eos`` or ``diverge``), and optionally the series too; or an ordinal
  ``max_sharpness`` (only its ranks across the sweep's members are scored, by Spearman's ρ).

Rules: a predictor never sees measurements past t0 (the prefix it gets has no later rows); it gets the
task's spec with its id, description and seeds blanked, so it must work from the mathematics, not from a
lookup table keyed by task ("no fingerprinting"); ``eosbench run --held-out`` scores it on unseen
variants too. A quantity it cannot answer is left out and counted as "not covered", not as an error.
Time is counted in optimizer steps: gradient flow is dθ/dt = −η∇L(θ).

Minimal example (a plugin file; in a predictor folder, name and version go in ``predictor.yaml`` instead)::

    class GradientFlowLike(Predictor):
        name, version = "my-theory", "1.0.0"

        def predict(self, problem: Problem) -> Prediction:
            theta, rows = problem.theta0, []
            for step in range(problem.t0, problem.steps[-1] + 1):
                if step in problem.step_set:
                    rows.append({"step": step, "loss": problem.oracle.loss(theta)})
                theta = theta - problem.lr * problem.oracle.grad(theta)
            return Prediction.from_rows(rows)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import pandas as pd

from eosbench.spec import TaskSpec

if TYPE_CHECKING:  # an annotation only: listing predictors need not import the models (and torch)
    from eosbench.oracle import Oracle

Track = Literal["trajectory", "forecast", "phase"]
TRACKS: tuple[str, ...] = ("trajectory", "forecast", "phase")
PHASES: tuple[str, ...] = ("monotone", "catapult", "eos", "diverge")
SERIES = ("loss", "sharpness", "grad_norm", "precond_sharpness", "batch_sharpness", "osc_amplitude")
"""Series a prediction may hold, besides ``eig_2``, ``eig_3``, ... (each scored against the smoothed
measurement, see :mod:`eosbench.scoring`).
``batch_sharpness`` is SGD's E_B[g_Bᵀ H_B g_B / ‖g_B‖²] over minibatches of the task's batch size
(:mod:`eosbench.batch_sharpness`), scored like the sharpness, against 2/η.
``precond_sharpness`` is λ₁(P⁻¹H) of Adam and RMSProp (P = diag(√ν + ε)); on their tasks it is the scored
sharpness, against its threshold, in place of the plain λ₁(H).
``osc_amplitude`` is the oscillation's amplitude along the top eigenvector u₁, |(θ_t − θ̄_t)·u₁| with the centre
θ̄_t = ¼(θ_{t−1} + 2θ_t + θ_{t+1}) (:mod:`eosbench.oscillation`): r for GD's period-two oscillation
θ_t = c + (−1)^t r u₁; scored on a log scale (:func:`eosbench.scoring.amplitude_error`)."""
SCALARS = ("onset_step", "final_sharpness", "phase", "critical_c", "max_sharpness", "divergence_step")
"""Scalars a prediction may hold; every one is scored (:mod:`eosbench.scoring`)."""


@dataclass(frozen=True)
class Budget:
    """What one ``predict`` call may spend; the runner stops a call that runs past ``wall_seconds``."""

    wall_seconds: float = 600.0
    hvps: int | None = None  # advisory: compare with ``problem.oracle.counters``


@dataclass
class Problem:
    """Everything a theory may use to forecast a run (and nothing past t0).

    Attributes:
        task: the task's spec with ``id``, ``description``, ``family``, held-out ranges and the initialization
            and data seeds blanked (data, model, loss, optimizer, ...; :func:`eosbench.tracks.blind`).
        track: ``trajectory``, ``forecast`` or ``phase``.
        lr: the learning rate η actually used (resolved from c/λ0 for relative sweeps).
        threshold: the stability threshold of the sharpness for this optimizer (2/η for GD).
        t0: the start step; ``theta0`` = θ_{t0} as a backend array of the task's dtype.
        steps: the steps (≥ t0, increasing) at which a forecast is wanted.
        observed: the measured frame (indexed by step) restricted to steps ≤ t0.
        oracle: loss, gradient, HVP, eigenpairs and third-derivative products on the chosen backend.
        budget: the compute budget of this call.
        model_info: facts about the architecture (depth, widths, parameter count, toy constants).
        family_params: parameters of the sweep family (e.g. depth, width) when the task belongs to one.
        c: for relative sweeps, c = η·λ0 (else η times the measured initial sharpness).
    """

    task: TaskSpec
    track: str
    lr: float
    threshold: float
    t0: int
    theta0: Any
    steps: np.ndarray
    observed: pd.DataFrame
    oracle: Oracle
    budget: Budget = field(default_factory=Budget)
    model_info: dict = field(default_factory=dict)
    family_params: dict = field(default_factory=dict)
    c: float | None = None

    @cached_property
    def step_set(self) -> frozenset[int]:
        return frozenset(int(s) for s in self.steps)

    @property
    def initial_sharpness(self) -> float | None:
        """The measured sharpness at step 0 (always part of the observed prefix)."""
        s = self.observed.get("sharpness")
        return None if s is None or s.dropna().empty else float(s.dropna().iloc[0])


@dataclass
class Prediction:
    """A theory's answer.

    Attributes:
        frame: indexed by step (a subset of ``problem.steps``), with any of the columns ``loss``,
            ``sharpness``, ``eig_2``.., ``grad_norm``, ``precond_sharpness``, ``batch_sharpness``,
            ``osc_amplitude``. Missing columns are "not covered"; steps a forecast stops short of count
            against it.
        scalars: any of ``onset_step`` (first step with sharpness ≥ threshold), ``final_sharpness``,
            ``divergence_step`` (the step the run's loss goes non-finite or above ``diverge_loss``),
            ``phase`` (one of :data:`PHASES`), ``critical_c`` (dict name → value), ``max_sharpness`` (the
            largest sharpness along the run; on the phase track an ordinal prediction: only its ranks
            over the sweep, and over all the suite's sweeps, are scored).
        diagnostics: free-form numbers worth keeping (e.g. α, β of self-stabilization); not scored.
        cost: filled in by the runner (wall seconds, gradients, HVPs, third-derivative products); a
            predictor may add entries of its own (e.g. ``solver_seconds``), which the runner keeps.
    """

    frame: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(index=pd.Index([], name="step")))
    scalars: dict[str, Any] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    cost: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: list[dict], **kwargs: Any) -> Prediction:
        """Build from a list of ``{"step": t, "loss": ..., ...}`` dicts."""
        frame = pd.DataFrame(rows)
        frame = frame.set_index("step") if len(frame) else pd.DataFrame(index=pd.Index([], name="step"))
        return cls(frame=frame, **kwargs)


class NotApplicable(Exception):
    """Raised by :meth:`Predictor.predict` when the theory makes no claim about this problem (e.g. it needs
    an optimizer state the problem does not hold); the unit is recorded as "not applicable", with the
    message, instead of failed. Whole tasks a theory never covers are excluded by ``applies_to``."""


class Predictor(ABC):
    """Base class of every theory. Subclasses implement :meth:`predict` (and :meth:`applies_to`).

    ``name``, ``version``, ``tracks`` and ``backends`` are stated once: in the folder's ``predictor.yaml``
    for a built-in or a submission (the registry sets them on the class when it loads it, and refuses a
    class that states them too), or as these class attributes for a plugin file or an entry point, which
    have no manifest."""

    name: ClassVar[str]
    version: ClassVar[str]
    tracks: ClassVar[tuple[str, ...]] = ("trajectory", "forecast")
    backends: ClassVar[tuple[str, ...]] = ("torch",)

    def applies_to(self, task: TaskSpec) -> bool:
        """Whether the theory makes a claim about this task (e.g. GD only); others are "not applicable"."""
        return True

    @abstractmethod
    def predict(self, problem: Problem) -> Prediction:
        """Forecast the run described by ``problem``."""
