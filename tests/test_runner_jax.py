"""A predictor declared for JAX runs on a JAX oracle and scores what it scores on torch."""

import math

import pytest

pytest.importorskip("jax")

from eosbench.catalog import Catalog  # noqa: E402
from eosbench.errors import EosbenchError  # noqa: E402
from eosbench.registry import Registry  # noqa: E402
from eosbench.runner import RunContext, backend_of, run  # noqa: E402
from eosbench.store import Store  # noqa: E402

# A tiny task that reaches 2/η (a deep scalar chain, whose GD crosses it at step 3), cut to its first 60 steps
# (its full run of 400 steps, and the other models, are in the tiny suite of the slow test below). Each JAX
# unit (the trajectory, and the forecast from its origins) runs in a process of its own and compiles there:
# most of the cost, whatever the number of steps.
FAST = {"chain-depth4": 60}


def gradient_flow_scores(store: Store, specs, backend: str) -> dict:
    ref = Registry().get("gradient-flow")
    ctx = RunContext(store=store, catalog=Catalog(), backend=backend)
    record = run(ref, specs, ctx, tracks=["trajectory", "forecast"], suite="custom")
    assert record["backend"] == backend
    return {(track, task_id): t for track, result in record["tracks"].items()
            for task_id, t in result["tasks"].items()}


def assert_same_scores(ours: dict, reference: dict, rtol: float = 1e-6) -> float:
    worst = 0.0
    assert ours.keys() == reference.keys()
    for key, t in reference.items():
        assert ours[key]["status"] == t["status"], key
        for metric, value in t.get("metrics", {}).items():
            other = ours[key]["metrics"][metric]
            if math.isnan(value):
                assert math.isnan(other), (key, metric)
                continue
            # relative, with scores below 1e-6 (errors of a GF that is exact to rounding) compared absolutely
            diff = abs(other - value) / max(abs(value), 1e-6)
            worst = max(worst, diff)
            assert diff <= rtol, (key, metric, other, value)
    return worst


def _scores_on_both(tmp_path, task_ids, steps: dict[str, int] | None = None):
    catalog = Catalog()
    specs = [s for t in task_ids for s in (catalog.suite(t) if t == "tiny" else [catalog.get(t)])]
    specs = [s.model_copy(update={"steps": steps[s.id]}) if steps else s for s in specs]
    store = Store(tmp_path)
    reference = gradient_flow_scores(store, specs, "torch")
    ours = gradient_flow_scores(store, specs, "jax")
    assert (tmp_path / "predictions" / "gradient-flow").exists()
    return ours, reference


def test_gradient_flow_on_jax_scores_as_on_torch(tmp_path):
    ours, reference = _scores_on_both(tmp_path, list(FAST), FAST)
    assert all(t["status"] == "ok" for t in reference.values())
    assert_same_scores(ours, reference)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_gradient_flow_on_jax_scores_as_on_torch_on_the_tiny_suite(tmp_path):
    """Default-run cover: test_gradient_flow_on_jax_scores_as_on_torch (the same code on one tiny task)."""
    ours, reference = _scores_on_both(tmp_path, ["tiny"])
    print(f"largest relative score difference: {assert_same_scores(ours, reference):.2e}")


def test_explicit_backend_a_predictor_does_not_declare_is_refused():
    ref = Registry().get("persistence")
    ctx = RunContext(store=Store("/nonexistent"), catalog=Catalog(), backend="jax")
    with pytest.raises(EosbenchError, match="declares backends"):
        backend_of(ref, ref.load(), ctx)
    assert backend_of(ref, ref.load(), RunContext(store=Store("/nonexistent"), catalog=Catalog())) == "torch"
