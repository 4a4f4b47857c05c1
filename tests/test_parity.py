"""Torch and JAX give the same ground truth: every tiny task at θ0, and the digits run step for step."""

import json

import pytest

pytest.importorskip("jax")

from click.testing import CliRunner  # noqa: E402

from eosbench.catalog import Catalog  # noqa: E402
from eosbench.cli import main  # noqa: E402
from eosbench.parity import measured_parity, oracle_parity  # noqa: E402
from eosbench.spec import normalized  # noqa: E402


def _distinct_objectives() -> dict[str, list[str]]:
    """Tiny tasks grouped by what fixes L(θ) and θ0 (data, model, loss, dtype); sweep members share one."""
    groups: dict[str, list] = {}
    for spec in Catalog().suite("tiny"):
        n = normalized(spec)
        key = json.dumps([n["data"], n["model"], n["loss"], n["dtype"]], sort_keys=True)
        groups.setdefault(key, []).append(spec)
    return {specs[0].id: specs for specs in groups.values()}


TINY = _distinct_objectives()

# The cost of a parity check at θ0 is XLA compiling the JAX oracle's five functions (loss, loss and gradient,
# HVP, block HVP, ∇³L), whatever the size of the data or the width of the layers: ≈ 20 s for the transformer,
# ≈ 11 s for the two-block CNN, ≈ 4 s for a digits MLP, ≈ 1 s for a toy. These run in the slow suite only,
# each with its default-run cover:
SLOW = {
    # test_digits_mlp_runs_agree_step_for_step_through_the_onset measures this very objective from this θ0
    # (digits-mlp-tanh-eos shares them) on both backends: the loss and gradient norm for 100 steps to 1e-8, the
    # sharpness to 1e-4; tests/test_oracle_jax.py's test_minibatch_derivatives_match_torch checks the loss,
    # gradient and HVP of the same tanh MLP code (6-5 units, 40 digits, MSE) to 1e-12; every other tiny task
    # checks the generic ∇³L and block HVP
    "digits-mlp-tanh-stable": "test_digits_mlp_runs_agree_step_for_step_through_the_onset",
    # the same model and loss code as a task or test run by default, with other sizes, initial scale or data:
    # tanh MLP, MSE, the same 500 digits (32-32 against 64-64 units)
    "digits-mlp-tanh-sgd": "test_digits_mlp_runs_agree_step_for_step_through_the_onset",
    "gmm-mlp-diverging": "moons-mlp-catapult",  # one-hidden-layer ReLU MLP (64 units, He init), MSE; moons data
    # the ReLU MLP of moons-mlp-catapult (one hidden layer against two of 32 units), and cross-entropy on one-hot
    # digits as in tests/test_oracle_jax.py's mlp-ntk-gelu-ce (40 digits against 500)
    "digits-mlp-relu-ce": "moons-mlp-catapult",
    "uv-eos@lr=11": "uv@c=1",  # the UV model, width 100 (init scale 0.1 against 0.5)
    "chain-depth2": "chain-depth4",  # the scalar chain
    "linreg-sgd": "gmm-deep-linear",  # the deep linear network on Gaussian-mixture data (depth 1 against 3)
    # test_small_cnn_derivatives_and_eigenvalues_agree_at_theta0: one block of the same convolution, GroupNorm,
    # tanh and pooling (compiling twice as fast), on 10 digits
    "digits-cnn": "test_small_cnn_derivatives_and_eigenvalues_agree_at_theta0",
    # test_small_transformer_derivatives_agree_at_theta0: the same transformer's loss, gradient and HVP on 8
    # sequences (the block HVP and ∇³L of the generic oracle code are covered by every other tiny task)
    "sorting-transformer": "test_small_transformer_derivatives_agree_at_theta0",
}


@pytest.mark.parametrize("task_id", [pytest.param(t, marks=pytest.mark.slow) if t in SLOW else t for t in sorted(TINY)])
def test_tiny_task_derivatives_and_eigenvalues_agree_at_theta0(task_id):
    diffs = oracle_parity(TINY[task_id][0])
    assert max(diffs[k] for k in ("loss", "grad", "hvp", "d3")) <= 1e-10, diffs
    assert diffs["eigs"] <= 1e-8, diffs


def _smaller(task_id: str, data: dict, model: dict | None = None):
    """The tiny task ``task_id`` on a subset of its data (and, given ``model``, a narrower model)."""
    spec = TINY[task_id][0]
    update = {"data": spec.data.model_copy(update=data)}
    if model:
        update["model"] = spec.model.model_copy(update=model)
    return spec.model_copy(update=update)


def test_small_cnn_derivatives_and_eigenvalues_agree_at_theta0():
    """Default-run cover of the slow digits-cnn case: the same CNN code (3×3 convolutions, GroupNorm in 2
    groups, tanh, mean pooling, linear head, MSE) with one block of 4 channels instead of 4 and 8, on the
    first 10 digits; every quantity of :func:`oracle_parity` with the tiny suite's tolerances."""
    diffs = oracle_parity(_smaller("digits-cnn", {"n": 10}, {"channels": [4]}))
    assert max(diffs[k] for k in ("loss", "grad", "hvp", "d3")) <= 1e-10, diffs
    assert diffs["eigs"] <= 1e-8, diffs


def test_small_transformer_derivatives_agree_at_theta0():
    """Default-run cover of the slow sorting-transformer case: the same transformer (d = 16, 2 heads,
    LayerNorm, causal attention, next-token cross-entropy) on its first 8 sequences. Loss, gradient and an
    HVP at θ0 with the tiny suite's tolerance; ∇³L and the eigenvalues (block HVPs) of this model are what
    the slow case adds — about half of its XLA compilation."""
    import numpy as np

    from eosbench.oracle import build_oracle
    from eosbench.parity import relative_difference

    spec = _smaller("sorting-transformer", {"n": 8})
    ours, reference = build_oracle(spec, backend="jax"), build_oracle(spec, backend="torch")
    v = np.random.default_rng(0).standard_normal(reference.num_params)
    a, b = ours.theta0(), reference.theta0()
    assert relative_difference(ours.to_numpy(a), reference.to_numpy(b)) == 0.0  # the same θ0
    (loss, grad), (ref_loss, ref_grad) = ours.loss_and_grad(a), reference.loss_and_grad(b)
    diffs = {"loss": relative_difference(loss, ref_loss),
             "grad": relative_difference(ours.to_numpy(grad), reference.to_numpy(ref_grad)),
             "hvp": relative_difference(ours.to_numpy(ours.hvp(a, ours.asarray(v))),
                                        reference.to_numpy(reference.hvp(b, reference.asarray(v))))}
    assert ref_loss > 0 and np.linalg.norm(reference.to_numpy(ref_grad)) > 0
    assert max(diffs.values()) <= 1e-10, diffs


def test_digits_mlp_runs_agree_step_for_step_through_the_onset():
    spec = Catalog().get("digits-mlp-tanh-eos")
    spec = spec.model_copy(update={"steps": 120, "measure": spec.measure.model_copy(
        update={"k": 1, "sharpness_every": 10, "checkpoints": []})})
    diffs = measured_parity(spec)
    first_100 = diffs.loc[:100, ["loss", "grad_norm", "param_norm", "dist_init"]]
    assert len(first_100) == 101 and float(first_100.max().max()) <= 1e-8, first_100.max()
    sharpness = diffs["sharpness"].dropna()
    assert len(sharpness) == 13 and float(sharpness.max()) <= 1e-4, sharpness


def test_parity_command_prints_the_largest_differences(home):
    result = CliRunner().invoke(main, ["parity", "chain-depth2", "--steps", "20", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = {row["quantity"]: row for row in json.loads(result.output)["differences"]}
    assert {"loss", "grad", "hvp", "d3", "eig_1", "eig_2", "run: loss", "run: sharpness"} <= set(rows)
    assert all(row["max_rel_diff"] <= 1e-8 for row in rows.values()), rows
    assert not home.exists() or not list(home.iterdir())  # parity measures in memory, it stores nothing
