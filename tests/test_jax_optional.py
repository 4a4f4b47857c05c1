"""JAX is optional: without it everything else imports and runs, and asking for it says how to install it."""

import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from eosbench.cli import main
from tests.helpers import quadratic_yaml

QUAD = quadratic_yaml(10)


def _without_jax(monkeypatch):
    """Make ``import jax`` fail as it does where jax is not installed."""
    monkeypatch.setitem(sys.modules, "jax", None)
    monkeypatch.delitem(sys.modules, "eosbench.backends.jax", raising=False)


@pytest.fixture()
def env_tasks():
    return {"quad": QUAD}


def test_backend_jax_without_jax_says_how_to_install_it(env, monkeypatch):
    _without_jax(monkeypatch)
    for args in (["measure", "quad", "--backend", "jax"], ["parity", "quad"],
                 ["run", "gradient-flow", "--tasks", "quad", "--backend", "jax", "--track", "trajectory"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, (args, result.output)
        assert "pip install 'eosbench[jax]'" in result.output, (args, result.output)
        assert "Traceback" not in result.output


def test_everything_else_works_without_jax(env):
    script = textwrap.dedent("""
        import sys
        sys.modules["jax"] = None  # as if jax were not installed
        from eosbench.cli import main
        from click.testing import CliRunner
        import eosbench.runner, eosbench.registry, eosbench.parity, eosbench.measure, eosbench.site.build
        result = CliRunner().invoke(main, ["measure", "quad", "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        result = CliRunner().invoke(main, ["predictors", "list", "--json"], catch_exceptions=False)
        assert result.exit_code == 0 and "gradient-flow" in result.output, result.output
        assert not any(name == "jax" or name.startswith("jax.") for name in sys.modules if sys.modules[name])
    """)
    bare = {"EOSBENCH_TASKS": str(env / "tasks"), "EOSBENCH_HOME": str(env / "home"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script], env=bare, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
