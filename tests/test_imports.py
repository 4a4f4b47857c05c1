"""The package's import graph has no cycle (module-level imports, TYPE_CHECKING blocks excluded), and listing
predictors and tasks does not import torch."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "eosbench"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """eosbench modules imported at module level by ``path``."""
    tree, name = ast.parse(path.read_text()), _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node) if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) else ():
            if isinstance(sub, ast.Import):
                found |= {a.name for a in sub.names}
            elif isinstance(sub, ast.ImportFrom):
                base = sub.module or ""
                if sub.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - sub.level + 1] + ([base] if base else []))
                found.add(base)
                found |= {f"{base}.{a.name}" for a in sub.names}
    return {m for m in found if m in modules and m != name}


def test_no_import_cycles():
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {m: _imports(p, set(files)) for m, p in files.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    packages = {m for m, p in files.items() if p.name == "__init__.py"}
    real = [c for c in cycles if not (set(c) & packages and len(set(c)) == 2 and any(
        a in packages and b.startswith(a + ".") for a, b in zip(c, c[1:])))]
    assert not real, real


def test_listing_predictors_and_tasks_does_not_import_torch():
    """``eosbench predictors list`` and ``tasks list`` read manifests and task files only: in a fresh
    interpreter they leave torch unimported (the registry used to import it through the annotation of a
    problem's oracle)."""
    code = ("import sys\nfrom click.testing import CliRunner\nfrom eosbench.cli import main\n"
            "for command in (['predictors', 'list', '--json'], ['tasks', 'list', '--json']):\n"
            "    assert CliRunner().invoke(main, command).exit_code == 0\n"
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
