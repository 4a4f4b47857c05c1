"""The measurement engine: train a task with its optimizer and record the ground-truth trajectory.

Per measured step t (before the update θ_t → θ_{t+1}) the frame holds: ``loss``, ``accuracy``,
``grad_norm``, ``param_norm``, ``dist_init`` (‖θ_t − θ_0‖), and at sharpness steps ``sharpness`` (the
largest *algebraic* Hessian eigenvalue), ``eig_2..eig_k``, ``eos_ratio`` = sharpness / threshold (η·S/2
for GD) and, when θ_{t±1} exist, ``osc_amplitude`` |(θ_t − θ̄_t)·u₁| with θ̄_t = ¼(θ_{t−1} + 2θ_t + θ_{t+1})
(:mod:`eosbench.oscillation`). SGD adds ``minibatch_loss`` and, at sharpness steps, ``batch_sharpness`` E_B[g_Bᵀ H_B g_B / ‖g_B‖²] (the mean
over ``batch_samples`` fresh minibatches, :mod:`eosbench.batch_sharpness`) and its standard error ``batch_sharpness_se``;
Adam and RMSProp add ``precond_sharpness`` λ_max(P⁻¹H) and ``precond_threshold``; DAL adds its
``step_size`` η_t (and ``eos_ratio`` is then S·η_t/2). Test loss/accuracy
appear at ``test_every`` steps. A non-finite loss, or one above the plan's ``diverge_loss``, ends the
run with outcome ``diverged`` — a measured result, not an error.
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

import eosbench
from eosbench.batch_sharpness import DEFAULT_SAMPLES, batch_rng, batch_sharpness, draw_batches
from eosbench.cost import measure_cost_ratios
from eosbench.losses import accuracy
from eosbench.optimizers import make_optimizer
from eosbench.oracle import Oracle, build_oracle
from eosbench.oscillation import AmplitudeProbe
from eosbench.recorder import Recorder, Stop, step_loop
from eosbench.spec import TaskSpec, spec_hash
from eosbench.store import Store
from eosbench.trajectory import Trajectory

StepCallback = Callable[[int, int], None]


def resolve_lr(spec: TaskSpec, oracle: Oracle, theta0) -> tuple[float, dict]:
    """The learning rate: the spec's ``lr``, or c/λ0 with λ0 the sharpness at θ0."""
    if spec.optimizer.lr is not None:
        return spec.optimizer.lr, {"lr_source": "spec"}
    top = oracle.eigs(theta0, 1, tol=spec.measure.eig_tol, maxiter=10 * spec.measure.eig_maxiter)
    lam0 = float(top.values[0])
    return spec.optimizer.c / lam0, {"lr_source": "c/lambda0", "lambda0": lam0, "c": spec.optimizer.c}


def _norm(v) -> float:
    """‖v‖ computed where v lives (on the device), so only a scalar crosses to the host."""
    return math.sqrt(float((v * v).sum()))


def measure(spec: TaskSpec, *, backend: str = "torch", data_dir: str | Path | None = None,
            on_step: StepCallback | None = None, oracle: Oracle | None = None) -> Trajectory:
    """Run the task's optimizer from θ0 for ``spec.steps`` steps on ``spec.device`` and record the trajectory.

    Data and parameters stay on the device; per measured step only scalars come back to the host
    (vectors cross only at checkpoints).
    """
    started = time.perf_counter()
    oracle = oracle or build_oracle(spec, backend=backend, data_dir=data_dir)
    plan = spec.measure
    theta = oracle.theta0()
    theta_init = theta
    timing = time.perf_counter()
    cost_ratios = measure_cost_ratios(oracle, theta)  # leaves the counters as they were
    started += time.perf_counter() - timing  # and is not part of the run's wall time
    lr, lr_info = resolve_lr(spec, oracle, theta)
    opt = make_optimizer(spec.optimizer, lr, oracle.data.n)
    checkpoint_steps = set(spec.checkpoint_steps())

    recorder = Recorder.every(plan.every, spec.steps, sharpness_every=plan.sharpness_every)
    rows = recorder.rows
    checkpoints: dict[int, np.ndarray] = {}
    warm = warm_pre = g = None
    amplitude = AmplitudeProbe()  # osc_amplitude at sharpness steps, once θ_{t+1} is known
    eig_failures = 0

    def observe(t: int) -> None:
        """Loss and gradient at θ_t, the row of a recorded (or diverged) step, checkpoint, eigenvalues."""
        nonlocal g, warm, warm_pre, eig_failures
        measured = recorder.wants(t)
        if measured:
            loss, g, out = oracle.loss_grad_outputs(theta)
        else:
            loss, g = oracle.loss_and_grad(theta)
        diverged = not math.isfinite(loss) or loss > plan.diverge_loss
        step_size = None if diverged else opt.adapt(oracle, theta, g, t)
        if measured or diverged:
            row = recorder.row(t)
            row.update(loss=loss, grad_norm=_norm(g), param_norm=_norm(theta), dist_init=_norm(theta - theta_init))
            if step_size is not None:
                row["step_size"] = step_size
            if measured:
                row["accuracy"] = accuracy(spec.loss, out, oracle.data.y, oracle.data.num_classes)
            if plan.test_every and t % plan.test_every == 0:
                row["test_loss"], row["test_accuracy"] = oracle.test_loss_accuracy(theta)
        if diverged:
            raise Stop("diverged")
        if t in checkpoint_steps:
            checkpoints[t] = oracle.to_numpy(theta)
        if recorder.wants_sharpness(t):
            row = recorder.row(t)
            top = oracle.eigs(theta, plan.k, v0=warm, tol=plan.eig_tol, maxiter=plan.eig_maxiter)
            eig_failures += not top.converged
            warm = top.vectors
            row["sharpness"] = float(top.values[0])
            for i in range(1, plan.k):
                row[f"eig_{i + 1}"] = float(top.values[i])
            row["eos_ratio"] = row["sharpness"] / opt.threshold
            row["eig_hvps"] = top.matvecs
            d = opt.preconditioner()
            if d is not None:
                pre = oracle.eigs(theta, 1, v0=warm_pre, tol=plan.eig_tol, maxiter=plan.eig_maxiter, precondition=d)
                warm_pre = pre.vectors
                row["precond_sharpness"] = float(pre.values[0])
                row["precond_threshold"] = opt.preconditioned_threshold

    def advance(t: int, _: int) -> None:
        """θ_t → θ_{t+1} (SGD: on the step's minibatch, whose loss and batch sharpness join row t)."""
        nonlocal theta, g
        batch = opt.batch(t)
        if batch is not None:
            batch_loss, g = oracle.loss_and_grad(theta, batch)
            if rows[-1]["step"] == t:
                rows[-1]["minibatch_loss"] = batch_loss
                if "sharpness" in rows[-1]:
                    rows[-1]["batch_sharpness"], rows[-1]["batch_sharpness_se"] = batch_sharpness(
                        oracle, theta, draw_batches(batch_rng(spec.optimizer.seed, t), oracle.data.n,
                                                    spec.optimizer.batch_size, plan.batch_samples or DEFAULT_SAMPLES))
        else:
            ahead = opt.lookahead(theta)
            if ahead is not None:
                g = oracle.grad(ahead)
        theta, before = opt.update(theta, g, t), theta
        amplitude.record(t, before, theta, rows[-1] if rows else None, warm)
        if on_step is not None:
            on_step(t + 1, spec.steps)

    step_loop(recorder, range(spec.steps + 1), observe, advance)
    outcome = "diverged" if recorder.stopped else "completed"
    frame = pd.DataFrame(rows).set_index("step").sort_index()
    meta = _meta(spec, oracle, lr, lr_info, opt.threshold, outcome, frame, started, eig_failures, cost_ratios)
    return Trajectory(frame, meta, checkpoints)


def _meta(spec: TaskSpec, oracle: Oracle, lr: float, lr_info: dict, threshold: float, outcome: str,
          frame: pd.DataFrame, started: float, eig_failures: int, cost_ratios: dict[str, float]) -> dict:
    """The run's metadata; ``cost_ratios`` (loss, HVP and d3 in gradients at θ0, see :mod:`eosbench.cost`)
    prices the counters of predictions made on this run."""
    return {
        "task_id": spec.id, "task_version": spec.version, "spec_hash": spec_hash(spec, oracle.backend),
        "spec": spec.model_dump(mode="json"), "backend": oracle.backend, "device": str(oracle.device),
        "dtype": spec.dtype, "lr": lr, **lr_info, "threshold": threshold, "outcome": outcome,
        "last_step": int(frame.index.max()), "num_params": oracle.num_params,
        "model": oracle.model.describe(), "data": oracle.data.info, "data_hash": oracle.data.hash(),
        "counters": oracle.counters.snapshot(), "cost_ratios": cost_ratios, "eig_unconverged": eig_failures,
        "wall_time_s": time.perf_counter() - started,
        "versions": _versions(oracle.backend),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": {"machine": platform.machine(), "system": platform.system(), "cpu_kernels": _cpu_kernels()},
    }


def _cpu_kernels() -> str:
    """The instruction set torch's CPU kernels use here (``AVX2``, ``AVX512``, …): runs at the edge of
    stability amplify rounding, so two machines with different kernels agree closely but not bit for bit."""
    import torch

    return torch.backends.cpu.get_cpu_capability()


def _versions(backend: str) -> dict[str, str]:
    import torch

    versions = {"eosbench": eosbench.__version__, "torch": torch.__version__, "numpy": np.__version__,
                "python": platform.python_version()}
    if backend == "jax":
        import jax

        versions["jax"] = jax.__version__
    return versions


def ensure_trajectory(spec: TaskSpec, store: Store, *, backend: str = "torch", force: bool = False,
                      data_dir: str | Path | None = None,
                      on_step: StepCallback | None = None) -> tuple[Trajectory, bool]:
    """The stored trajectory of ``spec`` (measuring and storing it first if missing, or if ``force``).

    Returns the trajectory and whether it came from the cache.
    """
    with store.measuring(spec, backend):  # a concurrent measurement of the same task waits, then reads it
        if not force:
            cached = store.load_trajectory(spec, backend)
            if cached is not None:
                return cached, True
        trajectory = measure(spec, backend=backend, data_dir=data_dir, on_step=on_step)
        store.save_trajectory(spec, trajectory, backend, replace=force)
    return trajectory, False
