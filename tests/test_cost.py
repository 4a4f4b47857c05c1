"""Cost in gradient-equivalents: measured ratios on a tiny MLP, the arithmetic, and the record in measure()."""

import math

import pytest

from eosbench.cost import DEFAULT_RATIOS, KINDS, grad_equivalents, measure_cost_ratios
from eosbench.cost import cost_ratio as ratio_to_gd
from eosbench.measure import measure
from eosbench.oracle import build_oracle
from tests.helpers import FAMILIES


@pytest.fixture(scope="module")
def mlp_oracle():
    return build_oracle(FAMILIES["mlp-tanh"])


def test_ratios_on_a_tiny_mlp_are_plausible_and_leave_the_counters_alone(mlp_oracle):
    oracle = mlp_oracle
    theta = oracle.theta0()
    oracle.loss_and_grad(theta)  # some work already counted: it must stay as it is
    oracle.hvp(theta, theta)
    before = oracle.counters.snapshot()
    ratios = measure_cost_ratios(oracle, theta, reps=3)
    assert oracle.counters.snapshot() == before
    assert set(ratios) == set(KINDS)
    assert ratios["grads"] == 1.0
    assert all(math.isfinite(r) and r > 0 for r in ratios.values())
    assert 0.5 <= ratios["hvps"] <= 20
    assert ratios["losses"] < ratios["d3s"]


class _NoThirdDerivative:
    """An oracle whose model has no d3 (it raises), otherwise the MLP's."""

    def __init__(self, oracle):
        self._oracle = oracle

    def __getattr__(self, name):
        return getattr(self._oracle, name)

    def d3(self, theta, u, v):
        raise NotImplementedError("no third derivatives here")


def test_an_unmeasurable_kind_gets_its_documented_default(mlp_oracle):
    oracle = _NoThirdDerivative(mlp_oracle)
    before = oracle.counters.snapshot()
    ratios = measure_cost_ratios(oracle, oracle.theta0(), reps=1)
    assert ratios["d3s"] == DEFAULT_RATIOS["d3s"] == 4.0
    assert ratios["hvps"] != DEFAULT_RATIOS["hvps"]  # measured
    assert oracle.counters.snapshot() == before


def test_grad_equivalents_and_cost_ratio_arithmetic():
    counters = {"losses": 2, "grads": 10, "hvps": 4, "d3s": 1, "wall_seconds": 3.0}
    ratios = {"losses": 0.5, "grads": 1.0, "hvps": 2.5}  # d3s missing: its default, 4
    assert grad_equivalents(counters, ratios) == 2 * 0.5 + 10 + 4 * 2.5 + 1 * 4.0
    assert grad_equivalents({"grads": 3}) == 3.0
    assert grad_equivalents({"hvps": 3}) == 3 * DEFAULT_RATIOS["hvps"]
    assert ratio_to_gd(50.0, 10, 60) == 1.0
    assert ratio_to_gd(3.0, 5, 5) == 3.0  # an empty window counts one step


def test_measure_records_the_cost_ratios_outside_its_counters():
    spec = FAMILIES["mlp-tanh"].model_copy(update={"steps": 3})
    trajectory = measure(spec)
    ratios = trajectory.meta["cost_ratios"]
    assert set(ratios) == set(KINDS) and ratios["grads"] == 1.0
    assert all(math.isfinite(r) and r > 0 for r in ratios.values())
    counters = trajectory.meta["counters"]
    assert counters["d3s"] == 0 and counters["losses"] == 0  # the timing's calls are not counted
    assert counters["grads"] == spec.steps + 1
