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


@pytest.mark.parametrize("task_id", sorted(TINY))
def test_tiny_task_derivatives_and_eigenvalues_agree_at_theta0(task_id):
    diffs = oracle_parity(TINY[task_id][0])
    assert max(diffs[k] for k in ("loss", "grad", "hvp", "d3")) <= 1e-10, diffs
    assert diffs["eigs"] <= 1e-8, diffs


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
