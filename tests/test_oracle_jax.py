"""The JAX oracle on every model family: the same numbers as torch, jitted once, counted the same way."""

import os

import numpy as np
import pytest

jax = pytest.importorskip("jax")

from eosbench.backends.jax import count_compilations  # noqa: E402
from eosbench.measure import measure  # noqa: E402
from eosbench.oracle import build_oracle  # noqa: E402
from eosbench.parity import oracle_parity, relative_difference  # noqa: E402
from tests.helpers import DIGITS, FAMILIES, task  # noqa: E402


# The families the tiny suite lacks (tests/test_parity.py checks every tiny task). In the slow suite only, each
# with its default-run cover there: the ResNet, the costly one to compile, whose convolutions and GroupNorm are
# those of the tiny digits CNN (test_small_cnn_derivatives_and_eigenvalues_agree_at_theta0), and the deep linear
# network, the code of the tiny task gmm-deep-linear (depth 3 on Gaussian-mixture data, MSE; width 16 on 10
# dimensions against 4 on 3).
EXTRA_FAMILIES = ["mlp-ntk-gelu-ce", "product-symlogistic", pytest.param("deep-linear", marks=pytest.mark.slow),
                  pytest.param("resnet-groupnorm", marks=pytest.mark.slow)]


@pytest.mark.parametrize("family", EXTRA_FAMILIES)
def test_model_families_beyond_the_tiny_suite_match_torch(family):
    diffs = oracle_parity(FAMILIES[family])
    assert max(diffs[k] for k in ("loss", "grad", "hvp", "d3")) <= 1e-10, diffs
    assert diffs["eigs"] <= 1e-8, diffs


# A digits MLP (FAMILIES["mlp-tanh"]) measured on JAX once for the module: its XLA compilations are most of the
# cost, and the tests below reuse them.
RUN = task({"arch": "mlp", "widths": [6, 5], "activation": "tanh"}, DIGITS, steps=30,
           measure={"k": 2, "sharpness_every": 2})


@pytest.fixture(scope="module")
def jax_run() -> dict:
    """``RUN`` measured on JAX: its ``trajectory`` and ``oracle``, the XLA ``compilations`` of the measurement,
    how many of them had happened by the end of each step (``per_step``), and ``oracle.compiled()`` after it."""
    oracle = build_oracle(RUN, backend="jax")
    per_step = []
    with count_compilations() as events:
        trajectory = measure(RUN, oracle=oracle, on_step=lambda t, n: per_step.append(len(events)))
    return {"trajectory": trajectory, "oracle": oracle, "compilations": events, "per_step": per_step,
            "compiled": oracle.compiled()}


def test_counters_match_torch_along_a_run(jax_run):
    ours, reference = jax_run["trajectory"], measure(RUN, backend="torch")
    assert ours.meta["counters"] == reference.meta["counters"]
    assert ours.meta["backend"] == "jax" and "jax" in ours.meta["versions"]
    assert ours.meta["spec_hash"] != reference.meta["spec_hash"]


def test_measurement_compiles_only_in_its_first_step(jax_run):
    per_step, compiled = jax_run["per_step"], jax_run["compiled"]
    # every per-step quantity has been computed once by step 3 (the oscillation amplitude needs θ_{t−1}, so it
    # first appears at the sharpness step 2); after that nothing compiles again
    assert len(jax_run["compilations"]) > 0 and per_step[-1] == per_step[2], per_step
    assert all(size <= 1 for size in compiled.values()), compiled


def test_a_new_oracle_reads_its_programs_from_the_persistent_cache(jax_run):
    """A fresh oracle of the measured task (as a new prediction process builds one) does not run the compiler
    again: its program comes from the compilation cache on disk (tests/conftest.py points
    JAX_COMPILATION_CACHE_DIR at one folder for the session) and computes the same numbers."""
    hits: list[str] = []

    def listener(event: str, **kwargs) -> None:
        if event == "/jax/compilation_cache/cache_hits":
            hits.append(event)

    assert jax.config.jax_compilation_cache_dir == os.environ["JAX_COMPILATION_CACHE_DIR"]
    jax.monitoring.register_event_listener(listener)
    try:
        oracle = build_oracle(RUN, backend="jax")
        theta = oracle.theta0()
        value, grad = oracle.loss_and_grad(theta)
    finally:
        jax.monitoring.unregister_event_listener(listener)
    assert len(hits) == 1  # the jitted loss and gradient
    reference = jax_run["oracle"].loss_and_grad(theta)
    assert value == reference[0] and np.array_equal(oracle.to_numpy(grad), jax_run["oracle"].to_numpy(reference[1]))


def test_block_hvp_is_the_columns_and_counts_each(jax_run):
    """On the measured oracle, whose block HVP is compiled for the eigen-solver's blocks of k = 2 columns."""
    oracle = jax_run["oracle"]
    theta = oracle.theta0()
    block = oracle.asarray(np.random.default_rng(0).standard_normal((oracle.num_params, 2)))
    before = oracle.counters.hvps
    out = oracle.hvp(theta, block)
    assert oracle.counters.hvps == before + 2
    for j in range(2):
        assert relative_difference(out[:, j], oracle.hvp(theta, block[:, j])) < 1e-12
    padded = oracle._hvp_columns(theta, block[:, :1], *oracle._batch(None), width=2)
    assert padded.shape == (oracle.num_params, 1)
    assert relative_difference(padded, out[:, :1]) < 1e-12


def test_minibatch_derivatives_match_torch():
    spec = FAMILIES["mlp-tanh"]
    ours, reference = build_oracle(spec, backend="jax"), build_oracle(spec, backend="torch")
    batch = np.array([1, 4, 7, 30])
    v = np.random.default_rng(1).standard_normal(ours.num_params)
    a, b = ours.loss_and_grad(ours.theta0(), batch), reference.loss_and_grad(reference.theta0(), batch)
    assert relative_difference(a[0], b[0]) < 1e-12 and relative_difference(a[1], reference.to_numpy(b[1])) < 1e-12
    hv = ours.hvp(ours.theta0(), ours.asarray(v), batch)
    assert relative_difference(hv, reference.to_numpy(reference.hvp(reference.theta0(), reference.asarray(v), batch))) < 1e-12


def test_float32_task_stays_float32():
    oracle = build_oracle(FAMILIES["mlp-tanh"].model_copy(update={"dtype": "float32"}), backend="jax")
    theta = oracle.theta0()
    assert theta.dtype == np.float32
    assert oracle.grad(theta).dtype == np.float32
    assert oracle.hvp(theta, theta).dtype == np.float32
    assert oracle.eigs(theta, 2, tol=1e-3).vectors.dtype == np.float32
