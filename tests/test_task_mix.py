"""The tiny suite's task mix (issue 23): every regime family is represented by at least one toy and at least
one network, by each task's declared intent; the UV variants are few; the fastest tasks measure in the
regime they are meant for.

A task file has no field for its intended regime (TaskSpec declares none), so the intent lives here, one
entry per tiny task: the regime family it is in the suite for, and whether it is a toy or a network.
"""

from __future__ import annotations

import pytest

from eosbench.catalog import Catalog
from eosbench.spec import TaskSpec
from eosbench.tracks import phase_label, task_regime
from tests.conftest import REPO

FAMILIES = ("before-onset", "onset", "sustained-eos", "catapult", "divergence", "adaptive", "sgd")
TOY, NETWORK = "toy", "network"

INTENT: dict[str, tuple[str, str]] = {
    # toys
    "quadratic-stable": ("before-onset", TOY),
    "quadratic-diverging": ("divergence", TOY),
    "quadratic-heavyball": ("adaptive", TOY),
    "quadratic-rmsprop": ("adaptive", TOY),
    "uv@c=1": ("before-onset", TOY),
    "uv@c=3": ("catapult", TOY),
    "uv-eos@lr=11": ("sustained-eos", TOY),
    "xy-below": ("before-onset", TOY),
    "xy-above": ("catapult", TOY),
    "chain-depth2": ("before-onset", TOY),
    "chain-depth4": ("onset", TOY),
    "linreg-sgd": ("sgd", TOY),
    # networks
    "digits-mlp-tanh-stable": ("before-onset", NETWORK),
    "gmm-deep-linear": ("before-onset", NETWORK),
    "digits-mlp-tanh-eos": ("sustained-eos", NETWORK),
    "digits-mlp-relu-ce": ("onset", NETWORK),
    "digits-cnn": ("sustained-eos", NETWORK),
    "sorting-transformer": ("onset", NETWORK),
    "sparse-coding-relu": ("onset", NETWORK),
    "moons-mlp-catapult": ("catapult", NETWORK),
    "gmm-mlp-diverging": ("divergence", NETWORK),
    "digits-mlp-tanh-heavyball-short": ("adaptive", NETWORK),
    "digits-mlp-tanh-adam-short": ("adaptive", NETWORK),
    "digits-mlp-tanh-sgd": ("sgd", NETWORK),
}

TOY_ARCHS = ("quadratic", "uv", "product", "chain")
"""Toys: objectives without data (quadratics, the UV model, ℓ(xy), scalar chains); a one-layer deep-linear
model on data is linear regression, a toy too. Every other model on data is a network."""
ADAPTIVE = ("momentum", "adam", "rmsprop")

FAST = ["quadratic-stable", "quadratic-diverging", "quadratic-heavyball", "quadratic-rmsprop", "chain-depth2",
        "chain-depth4", "linreg-sgd", "moons-mlp-catapult", "gmm-mlp-diverging"]
"""Tasks measured here (each well under a second on one thread): a toy of most families, and the network
catapult and divergence."""


@pytest.fixture(scope="module")
def tiny() -> dict[str, TaskSpec]:
    return {spec.id: spec for spec in Catalog(REPO / "tasks").suite("tiny")}


def kind(spec: TaskSpec) -> str:
    if spec.model.arch in TOY_ARCHS or (spec.model.arch == "deep-linear" and spec.model.depth == 1):
        return TOY
    return NETWORK


def test_every_tiny_task_declares_its_intent_and_kind(tiny):
    assert set(INTENT) == set(tiny), "a tiny task without a declared intent here, or an intent for a task not in tiny"
    for task_id, (family, declared) in INTENT.items():
        assert family in FAMILIES, task_id
        assert kind(tiny[task_id]) == declared, task_id


def test_intent_matches_the_optimizer(tiny):
    """Adaptive tasks run momentum, Adam or RMSProp; SGD tasks mini-batch SGD; every other one full-batch GD."""
    expected = {"adaptive": ADAPTIVE, "sgd": ("sgd",)}
    for task_id, (family, _) in INTENT.items():
        assert tiny[task_id].optimizer.name in expected.get(family, ("gd",)), task_id


@pytest.mark.parametrize("family", FAMILIES)
def test_every_regime_family_has_a_toy_and_a_network(family):
    kinds = {k for f, k in INTENT.values() if f == family}
    assert kinds == {TOY, NETWORK}, f"{family}: only {sorted(kinds)}"


def test_the_mix_is_even_and_the_uv_variants_few(tiny):
    kinds = [kind(spec) for spec in tiny.values()]
    assert 20 <= len(tiny) <= 30
    assert abs(kinds.count(TOY) - kinds.count(NETWORK)) <= 2
    assert sum(spec.model.arch == "uv" for spec in tiny.values()) <= 3
    optimizers = {spec.optimizer.name for spec in tiny.values()}
    assert {"gd", "sgd", "momentum"} <= optimizers and optimizers & {"adam", "rmsprop"}


@pytest.mark.parametrize("task_id", FAST)
def test_fast_tasks_measure_in_their_intended_regime(task_id, measured, tiny):
    spec, (family, _) = tiny[task_id], INTENT[task_id]
    trajectory = measured(task_id)
    regime = task_regime(spec, trajectory)
    if family in ("adaptive", "sgd"):
        assert regime == "adaptive-sgd" and trajectory.outcome == "completed"
        if family == "adaptive":  # at its optimizer's edge: sharpness/threshold ≥ 0.95 over the last 20 %
            assert phase_label(trajectory) == "eos"
    else:
        assert regime == family
