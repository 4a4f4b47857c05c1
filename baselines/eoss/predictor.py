"""Edge of stochastic stability (Andreyev & Beneventano, arXiv 2412.20553)."""

from __future__ import annotations

from eosbench.batch_sharpness import DEFAULT_SAMPLES, batch_rng, batch_sharpness, draw_batches
from eosbench.predictor import Prediction, Predictor, Problem
from eosbench.spec import TaskSpec
from eosbench.theory.flows import integrate_gradient_flow


class EdgeOfStochasticStability(Predictor):
    """Under SGD, batch sharpness BS = E_B[g_Bᵀ H_B g_B / ‖g_B‖²] rises to 2/η and stays there (Andreyev &
    Beneventano, arXiv 2412.20553, abstract and §1): B̂S(t) = BS(θ_GF(t)) until its first t_c with
    BS ≥ 2/η, then 2/η. The paper says λ_max sits below BS and gives no formula for it; the choice here:
    Ŝ(t) = S_GF(t) until t_c, then S_GF(t_c). Loss: gradient flow's. BS(θ) is the mean over M minibatches of
    the task's batch size (M the measurement plan's), one minibatch gradient and HVP each, at sharpness
    steps up to t_c.
    """

    def applies_to(self, task: TaskSpec) -> bool:
        return task.optimizer.name == "sgd"

    def predict(self, problem: Problem) -> Prediction:
        oracle, edge, task = problem.oracle, problem.threshold, problem.task
        samples = task.measure.batch_samples or DEFAULT_SAMPLES
        state = {"onset": None, "frozen": None}

        def on_row(row: dict, theta) -> None:
            if "sharpness" not in row:
                return
            if state["onset"] is None:
                batches = draw_batches(batch_rng(task.optimizer.seed, row["step"]), oracle.data.n,
                                       task.optimizer.batch_size, samples)
                row["batch_sharpness"] = batch_sharpness(oracle, theta, batches)[0]
                if row["batch_sharpness"] >= edge:
                    state["onset"], state["frozen"] = row["step"], row["sharpness"]
            if state["onset"] is not None:
                row["batch_sharpness"], row["sharpness"] = edge, state["frozen"]

        flow = integrate_gradient_flow(oracle, problem.theta0, problem.t0, problem.steps, problem.lr,
                                       sharpness_every=task.measure.sharpness_every, on_row=on_row)
        return Prediction.from_rows(flow.rows, diagnostics={"stopped": flow.stopped,
                                                            "batch_sharpness_onset": state["onset"]})
