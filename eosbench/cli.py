"""The ``eosbench`` command line: a thin layer over the library.

Every command that does work prints a table (or ``--json`` for scripts); errors caused by input are one
paragraph on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from eosbench.catalog import Catalog
from eosbench.errors import DataUnavailableError, EosbenchError
from eosbench.spec import TaskSpec, spec_hash
from eosbench.store import Store

console = Console(stderr=True)
out = Console()


class _Group(click.Group):
    """Turns :class:`EosbenchError` into a one-paragraph message and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EosbenchError as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="eosbench")
@click.option("--home", type=click.Path(path_type=Path), envvar="EOSBENCH_HOME",
              help="Store of trajectories and predictions (default: $EOSBENCH_HOME or the user cache folder).")
@click.option("--tasks-dir", type=click.Path(path_type=Path), envvar="EOSBENCH_TASKS",
              help="Folder of task YAML files and suites.yaml (default: the source tree's tasks/).")
@click.pass_context
def main(ctx: click.Context, home: Path | None, tasks_dir: Path | None) -> None:
    """eosbench: measure training at large learning rates and score theories that forecast it.

    \b
    Quick start:
      eosbench tasks list                 the standard tasks and suites
      eosbench measure --suite tiny       measure the ground truth of the tiny suite
      eosbench plot digits-mlp-tanh-eos -o run.png
    """
    ctx.obj = {"home": home, "tasks_dir": tasks_dir}


def _catalog(ctx: click.Context) -> Catalog:
    return Catalog(ctx.obj["tasks_dir"])


def _store(ctx: click.Context) -> Store:
    return Store(ctx.obj["home"])


def _select(catalog: Catalog, task_ids: tuple[str, ...], suite: str | None) -> list[TaskSpec]:
    specs = [catalog.get(t) for t in task_ids]
    if suite:
        specs += catalog.suite(suite)
    if not specs:
        raise EosbenchError("Name at least one task (eosbench tasks list shows them) or a suite with --suite.")
    return specs


# ------------------------------------------------------------------------------------------- tasks
@main.group()
def tasks() -> None:
    """List and inspect the standard tasks."""


@tasks.command("list")
@click.option("--suite", help="Only the tasks of this suite.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def tasks_list(ctx: click.Context, suite: str | None, as_json: bool) -> None:
    """List tasks (id, tier, model, optimizer, steps) and the suites that exist."""
    catalog = _catalog(ctx)
    specs = catalog.suite(suite) if suite else list(catalog.tasks.values())
    if as_json:
        click.echo(json.dumps({
            "tasks": [{"id": s.id, "tier": s.tier, "version": s.version, "family": s.family,
                       "model": s.model.arch, "data": s.data.name, "loss": s.loss,
                       "optimizer": s.optimizer.name, "lr": s.optimizer.lr, "c": s.optimizer.c,
                       "steps": s.steps, "description": s.description} for s in specs],
            "suites": {name: [t.id for t in catalog.suite(name)] for name in catalog.suites},
            "families": catalog.families,
            "broken": {name: str(err) for name, err in catalog.broken.items()}}, indent=2))
        return
    table = Table(title=f"tasks{f' in suite {suite}' if suite else ''}")
    for col in ("id", "tier", "model", "data", "loss", "optimizer", "steps"):
        table.add_column(col)
    for s in specs:
        lr = f"lr={s.optimizer.lr:g}" if s.optimizer.lr is not None else f"c={s.optimizer.c:g}"
        table.add_row(s.id, s.tier, s.model.arch, s.data.name, s.loss, f"{s.optimizer.name} {lr}", str(s.steps))
    out.print(table)
    out.print("suites: " + ", ".join(f"{n} ({len(catalog.suite(n))})" for n in catalog.suites))
    for name, err in catalog.broken.items():
        console.print(f"[red]broken task file[/] {name}: {err}")


@tasks.command("show")
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def tasks_show(ctx: click.Context, task_id: str, as_json: bool) -> None:
    """Show one task's full, normalized spec and its hash (TASK_ID may also be a path to a YAML file)."""
    spec = _catalog(ctx).get(task_id)
    payload = {"spec_hash": spec_hash(spec), **spec.model_dump(mode="json")}
    if as_json:
        click.echo(json.dumps(payload, indent=2))
    else:
        import yaml

        out.print(yaml.safe_dump(payload, sort_keys=False), highlight=False)


# ----------------------------------------------------------------------------------------- measure
def _summary(spec: TaskSpec, trajectory, cached: bool) -> dict:
    frame = trajectory.frame
    sharp = frame["sharpness"].dropna() if "sharpness" in frame else frame.iloc[0:0]
    return {"task": spec.id, "cached": cached, "outcome": trajectory.outcome, "lr": trajectory.lr,
            "trajectory": str(trajectory.path), "onset_step": trajectory.onset_step(),
            "max_sharpness": float(sharp.max()) if len(sharp) else None,
            "final_sharpness": float(sharp.iloc[-1]) if len(sharp) else None,
            "threshold": trajectory.threshold, "final_loss": float(frame["loss"].dropna().iloc[-1]),
            "wall_time_s": trajectory.meta["wall_time_s"], "hvps": trajectory.meta["counters"]["hvps"]}


@main.command()
@click.argument("task_ids", nargs=-1)
@click.option("--suite", help="Measure every task of this suite (tiny, small, full, or a sweep family).")
@click.option("--backend", default="torch", show_default=True, type=click.Choice(["torch", "jax"]))
@click.option("--device", help="cpu or cuda (default: the task's device).")
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="EOSBENCH_DATA",
              help="Folder holding CIFAR-10 in torchvision's layout (or set EOSBENCH_DATA).")
@click.option("--force", is_flag=True, help="Re-measure even if the store already has the trajectory.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary per task instead of a table.")
@click.pass_context
def measure(ctx: click.Context, task_ids: tuple[str, ...], suite: str | None, backend: str, device: str | None,
            data_dir: Path | None, force: bool, as_json: bool) -> None:
    """Measure ground-truth trajectories (loss, sharpness, ...) and keep them in the store.

    A trajectory already in the store is reused unless --force. CIFAR tasks whose data folder is
    missing are skipped with a note.
    """
    from eosbench.measure import ensure_trajectory

    specs = _select(_catalog(ctx), task_ids, suite)
    store = _store(ctx)
    store.clean_partial()
    summaries, skipped = [], []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True, disable=as_json or not console.is_terminal) as progress:
        overall = progress.add_task("tasks", total=len(specs))
        for spec in specs:
            bar = progress.add_task(spec.id, total=spec.steps)
            try:
                trajectory, cached = ensure_trajectory(
                    spec, store, backend=backend, force=force, device=device, data_dir=data_dir,
                    on_step=lambda t, n, bar=bar: progress.update(bar, completed=t))
            except DataUnavailableError as exc:
                if not suite:
                    raise
                skipped.append({"task": spec.id, "reason": str(exc)})
                continue
            finally:
                progress.remove_task(bar)
                progress.advance(overall)
            summaries.append(_summary(spec, trajectory, cached))
    if as_json:
        click.echo(json.dumps({"tasks": summaries, "skipped": skipped}, indent=2))
        return
    table = Table(title="measured trajectories")
    for col in ("task", "outcome", "lr", "onset", "max S", "2/η-threshold", "final loss", "time", "HVPs"):
        table.add_column(col, justify="right" if col not in ("task", "outcome") else "left")
    for s in summaries:
        table.add_row(s["task"], s["outcome"], f"{s['lr']:.4g}", str(s["onset_step"] if s["onset_step"] is not None else "-"),
                      f"{s['max_sharpness']:.4g}" if s["max_sharpness"] is not None else "-", f"{s['threshold']:.4g}",
                      f"{s['final_loss']:.4g}", "cached" if s["cached"] else f"{s['wall_time_s']:.1f}s", str(s["hvps"]))
    out.print(table)
    for s in skipped:
        console.print(f"[yellow]skipped[/] {s['task']}: {s['reason']}", soft_wrap=True)


# -------------------------------------------------------------------------------------------- plot
@main.command()
@click.argument("task_id")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Image file (.png, .pdf, .svg).")
@click.option("--backend", default="torch", show_default=True, type=click.Choice(["torch", "jax"]))
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="EOSBENCH_DATA")
@click.pass_context
def plot(ctx: click.Context, task_id: str, output: Path, backend: str, data_dir: Path | None) -> None:
    """Draw a task's measured loss and sharpness, with the 2/η line (measures the task first if needed)."""
    from eosbench.measure import ensure_trajectory
    from eosbench.plotting import plot_trajectory

    spec = _catalog(ctx).get(task_id)
    trajectory, _ = ensure_trajectory(spec, _store(ctx), backend=backend, data_dir=data_dir)
    plot_trajectory(trajectory, output)
    console.print(f"wrote {output}")


if __name__ == "__main__":  # pragma: no cover
    main()
