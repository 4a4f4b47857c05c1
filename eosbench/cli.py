"""The ``eosbench`` command line: a thin layer over the library.

Every command that does work prints a table (or ``--json`` for scripts); errors caused by input are one
paragraph on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from eosbench.catalog import Catalog
from eosbench.errors import DataUnavailableError, EosbenchError
from eosbench.spec import TaskSpec, spec_hash
from eosbench.store import Store

console = Console(stderr=True)
out = Console(width=None if sys.stdout.isatty() else 160)  # tables stay readable in logs and pipes


class _Group(click.Group):
    """Turns :class:`EosbenchError` into a one-paragraph message and exit code 2, and any other failure
    (a fault: a disk, a process, a bug) into one line and exit code 1; ``EOSBENCH_DEBUG=1`` shows the
    traceback instead."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EosbenchError as exc:
            # escaped: messages hold brackets (pip install 'eosbench[jax]') that rich would read as markup
            console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            sys.exit(2)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            console.print("[bold red]interrupted[/]: finished units are kept in the store; rerun to resume",
                          highlight=False)
            sys.exit(130)
        except Exception as exc:  # noqa: BLE001 - a fault, reported in one line rather than a traceback
            if os.environ.get("EOSBENCH_DEBUG"):
                raise
            text = " ".join(str(exc).split()) or "(no message)"
            console.print(f"[bold red]error:[/] {escape(type(exc).__name__)}: {escape(text)} (an unexpected "
                          "failure; finished work is kept in the store. EOSBENCH_DEBUG=1 shows the traceback)",
                          highlight=False, soft_wrap=True)
            sys.exit(1)


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


def _task_ids(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    """Task ids given repeated or comma-separated (``--tasks a,b --tasks c``); a task file that exists is
    taken whole, whatever its name holds."""
    return tuple(part.strip() for value in values
                 for part in ([value] if Path(value).exists() else value.split(",")) if part.strip())


def _select(catalog: Catalog, task_ids: tuple[str, ...], suite: str | None,
            device: str | None = None) -> list[TaskSpec]:
    """The named tasks and suite members, moved to ``device`` when given (the device is part of a task's
    identity: a trajectory measured on a GPU is stored apart from the CPU one)."""
    specs = [catalog.get(t) for t in task_ids]
    if suite:
        specs += catalog.suite(suite)
    if not specs:
        raise EosbenchError("Name at least one task (eosbench tasks list shows them) or a suite with --suite.")
    if device is None:
        return specs
    from eosbench.backends.torch import resolve_device

    resolve_device(device)  # a clear error now, rather than in every task, when the device is missing
    return [spec.model_copy(update={"device": device}) for spec in specs]


_THREADS_OPTION = click.option(
    "--threads", type=click.IntRange(min=1), envvar="EOSBENCH_THREADS",
    help="Compute threads per unit, torch's and the BLAS/OpenMP pools' (or set EOSBENCH_THREADS). Default: "
         "the cores other work leaves free, shared among the units running at once (1 each when units run "
         "side by side), at least 1.")


def _use_threads(threads: int | None, units: int = 1) -> int:
    """Fix the thread count of this run: export ``--threads`` as EOSBENCH_THREADS (so every unit and its
    process sees it) and apply the chosen count to this process, which measures in-process."""
    from eosbench.executors import THREADS_ENV, apply_threads, choose_threads

    if threads is not None:
        os.environ[THREADS_ENV] = str(threads)
    chosen = choose_threads(units)
    apply_threads(chosen)
    return chosen


class _Reporter:
    """The progress of a run, fed by the runner's ``on_event``.

    Accepts a plain message (``on_event("finished 3/25 units")``) and a structured event
    (``on_event(message, kind=..., task=..., predictor=..., track=..., status=..., seconds=..., done=...,
    total=..., step=..., steps=...)``). In a terminal: a bar over the units with an ETA, and a bar per task
    being measured (steps and ETA). Otherwise (a log, CI, nohup): one plain line per finished unit or
    measurement, flushed at once, and nothing for step events.
    """

    def __init__(self, live: bool, quiet: bool = False, stream=None):
        import time

        self.live, self.quiet, self.stream = live and not quiet, quiet, stream or sys.stderr
        self.started = time.perf_counter()
        self.progress: Progress | None = None
        self.units = self.steps = None
        self.step_task: str | None = None

    def __enter__(self) -> "_Reporter":
        if self.live:
            from rich.progress import TimeRemainingColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                     console=console, transient=True)
            self.progress.start()
            self.units = self.progress.add_task("starting", total=None)
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()

    def _log(self, line: str) -> None:
        import time

        print(f"[{time.perf_counter() - self.started:7.1f}s] {line}", file=self.stream, flush=True)

    def __call__(self, message: str, **info) -> None:
        if self.quiet:
            return
        kind = info.get("kind") or _kind_of(message)
        done, total = info.get("done"), info.get("total")
        if done is None:
            done, total = _counts_in(message)
        if kind == "step":
            self._step(info)
            return
        if self.progress is None:
            if kind in ("unit", "measured"):
                self._log(_unit_line(message, info))
            elif kind == "stage":
                self._log(message)
            return
        if kind == "measured" and self.steps is not None:
            self.progress.remove_task(self.steps)
            self.steps = self.step_task = None
        if done is not None and total:
            label = "measured tasks" if kind == "measured" else "units"
            what = f" · last: {info['task']}" if info.get("task") else ""
            self.progress.update(self.units, total=total, completed=done, description=f"{label}{what}")
        elif kind == "stage":
            self.progress.update(self.units, description=message)

    def _step(self, info: dict) -> None:
        if self.progress is None or info.get("steps") is None:
            return
        task = str(info.get("task", "measuring"))
        if self.step_task != task:
            if self.steps is not None:
                self.progress.remove_task(self.steps)
            self.steps, self.step_task = self.progress.add_task(f"measuring {task}", total=info["steps"]), task
        self.progress.update(self.steps, completed=info.get("step", 0))


def _kind_of(message: str) -> str:
    if message.startswith("finished "):
        return "unit"
    if message.startswith("measured "):
        return "measured"
    return "stage"


def _counts_in(message: str) -> tuple[int | None, int | None]:
    """(done, total) from a message such as "finished 3/25 units"."""
    import re

    match = re.search(r"(\d+)/(\d+)", message)
    return (int(match[1]), int(match[2])) if match else (None, None)


def _unit_line(message: str, info: dict) -> str:
    """One log line for a finished unit: its count, task, predictor, track, status and seconds."""
    if not info.get("task"):
        return message
    done = f"{info['done']}/{info['total']} " if info.get("done") is not None else ""
    who = " ".join(str(info[k]) for k in ("predictor", "track") if info.get(k))
    seconds = f" {info['seconds']:.1f}s" if isinstance(info.get("seconds"), (int, float)) else ""
    verb = "measured" if info.get("kind") == "measured" else "finished"
    return f"{verb} {done}{info['task']}{' · ' + who if who else ''}: {info.get('status', 'ok')}{seconds}"


_DEVICE_OPTION = click.option("--device", type=click.Choice(["cpu", "cuda"]),
                              help="Run every task on this device (default: the task's own, cpu for every "
                                   "standard task). cuda runs in the task's dtype with TF32 off.")


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
    out.print("suites: " + ", ".join(f"{n} ({_suite_size(catalog, n)})" for n in catalog.suites), highlight=False)
    for name, err in catalog.broken.items():
        console.print(f"[red]broken task file[/] {escape(name)}: {escape(str(err))}", highlight=False,
                      soft_wrap=True)


def _suite_size(catalog: Catalog, name: str) -> str:
    """How many tasks a suite holds, or why it cannot be used (one of its task files is broken)."""
    try:
        return str(len(catalog.suite(name)))
    except EosbenchError:
        return "broken: it names a broken or unknown task"


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

        out.print(yaml.safe_dump(payload, sort_keys=False), highlight=False, markup=False)


# ----------------------------------------------------------------------------------------- measure
def _summary(spec: TaskSpec, trajectory, cached: bool) -> dict:
    sharp = trajectory.series("sharpness")
    return {"task": spec.id, "cached": cached, "outcome": trajectory.outcome, "lr": trajectory.lr,
            "trajectory": str(trajectory.path), "onset_step": trajectory.onset_step(),
            "max_sharpness": float(sharp.max()) if len(sharp) else None,
            "final_sharpness": float(sharp.iloc[-1]) if len(sharp) else None,
            "threshold": trajectory.threshold, "final_loss": float(trajectory.series("loss").iloc[-1]),
            "wall_time_s": trajectory.meta["wall_time_s"], "hvps": trajectory.meta["counters"]["hvps"]}


@main.command()
@click.argument("task_ids", nargs=-1, callback=_task_ids)
@click.option("--suite", help="Measure every task of this suite (tiny, small, full, or a sweep family).")
@click.option("--backend", default="torch", show_default=True, type=click.Choice(["torch", "jax"]))
@_DEVICE_OPTION
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="EOSBENCH_DATA",
              help="Folder holding CIFAR-10 in torchvision's layout (or set EOSBENCH_DATA).")
@click.option("--force", is_flag=True, help="Re-measure even if the store already has the trajectory.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary per task instead of a table.")
@_THREADS_OPTION
@click.pass_context
def measure(ctx: click.Context, task_ids: tuple[str, ...], suite: str | None, backend: str, device: str | None,
            data_dir: Path | None, force: bool, as_json: bool, threads: int | None) -> None:
    """Measure ground-truth trajectories (loss, sharpness, ...) and keep them in the store.

    A trajectory already in the store is reused unless --force. CIFAR tasks whose data folder is
    missing are skipped with a note.
    """
    from eosbench.measure import ensure_trajectory

    from rich.progress import TimeRemainingColumn

    specs = _select(_catalog(ctx), task_ids, suite, device)
    store = _store(ctx)
    store.clean_partial()
    _use_threads(threads)
    summaries, skipped = [], []
    log = _Reporter(live=False, quiet=as_json or console.is_terminal)  # a line per task in logs and pipes
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=True,
                  disable=as_json or not console.is_terminal) as progress:
        overall = progress.add_task("tasks", total=len(specs))
        for done, spec in enumerate(specs, start=1):
            bar = progress.add_task(spec.id, total=spec.steps)
            try:
                trajectory, cached = ensure_trajectory(
                    spec, store, backend=backend, force=force, data_dir=data_dir,
                    on_step=lambda t, n, bar=bar: progress.update(bar, completed=t))
            except DataUnavailableError as exc:
                if not suite:
                    raise
                skipped.append({"task": spec.id, "reason": str(exc)})
                log("", kind="measured", task=spec.id, status="skipped (data unavailable)", done=done,
                    total=len(specs))
                continue
            finally:
                progress.remove_task(bar)
                progress.advance(overall)
            summaries.append(_summary(spec, trajectory, cached))
            log("", kind="measured", task=spec.id, status="cached" if cached else trajectory.outcome,
                seconds=None if cached else trajectory.meta.get("wall_time_s"), done=done, total=len(specs))
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
        console.print(f"[yellow]skipped[/] {s['task']}: {escape(s['reason'])}", soft_wrap=True)


# --------------------------------------------------------------------------------- import-trajectory
def _checkpoint_option(values: tuple[str, ...]) -> dict[int, Path]:
    out = {}
    for value in values:
        step, sep, file = value.partition("=")
        if not sep or not step.strip().isdigit() or not file:
            raise EosbenchError(f"--checkpoint {value!r}: write STEP=FILE, e.g. 0=theta0.npy.")
        out[int(step)] = Path(file)
    return out


@main.command("import-trajectory")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", required=True, type=click.Choice(["cohen", "central-flows"]),
              help="cohen: an output folder of Cohen et al.'s edge-of-stability code; central-flows: a data.hdf5 "
                   "of the central-flows code (or its folder).")
@click.option("--task", "task_id", required=True,
              help="The task the run is of (an id or a task YAML file): its model, data, loss, η and steps.")
@click.option("--checkpoint", "checkpoints", multiple=True, metavar="STEP=FILE",
              help="θ at STEP as one flat vector in the model's layout (.npy, or a torch tensor / state dict); "
                   "0=FILE lets the trajectory track be scored (repeatable).")
@click.option("--eig-freq", type=click.IntRange(min=1), help="cohen: the run's --eig_freq (inferred when unambiguous).")
@click.option("--process", default="discrete", show_default=True, help="central-flows: the group to read.")
@click.option("--loss-tolerance", type=float, default=1e-4, show_default=True,
              help="Largest relative difference between the file's loss and the task's loss at each checkpoint.")
@click.option("--force", is_flag=True, help="Replace a trajectory of the task already in the store.")
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="EOSBENCH_DATA", help="CIFAR-10 folder.")
@click.option("--json", "as_json", is_flag=True, help="Print what was imported as JSON.")
@click.pass_context
def import_trajectory_cmd(ctx: click.Context, path: Path, fmt: str, task_id: str, checkpoints: tuple[str, ...],
                          eig_freq: int | None, process: str, loss_tolerance: float, force: bool,
                          data_dir: Path | None, as_json: bool) -> None:
    """Import a run measured elsewhere as TASK's ground truth, for eosbench run to score against.

    Checkpoints decide what can be scored: the trajectory track needs θ0 (--checkpoint 0=FILE), a forecast
    starts only at a checkpointed step; each checkpoint must reproduce the file's loss (docs/scoring.md).
    """
    from eosbench.importers import import_trajectory

    spec = _catalog(ctx).get(task_id)
    store = _store(ctx)
    trajectory = import_trajectory(spec, fmt, path, store=store, checkpoints=_checkpoint_option(checkpoints),
                                   eig_freq=eig_freq, process=process, loss_tolerance=loss_tolerance, force=force,
                                   data_dir=data_dir)
    info = trajectory.meta["imported"]
    summary = {"task": spec.id, "format": fmt, "stored": str(trajectory.path), "outcome": trajectory.outcome,
               "last_step": trajectory.meta["last_step"], "lr": trajectory.lr, "onset_step": trajectory.onset_step(),
               "files": info["files"], "checkpoints": sorted(int(s) for s in info["checkpoints"]),
               "scorable": info["scorable"]}
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    out.print(f"imported {escape(str(path))} ({fmt}) as the ground truth of {escape(spec.id)}: steps 0..{summary['last_step']}, "
              f"{trajectory.outcome}, onset {summary['onset_step']}; stored in {escape(summary['stored'])}", highlight=False)
    tracks = "trajectory, forecast" if info["scorable"]["trajectory"] else "forecast only"
    out.print(f"scorable: {tracks} (forecast origins at checkpoints {info['scorable']['forecast_origins'] or 'none'}); "
              f"{escape(info['scorable']['note'])}", highlight=False)


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
    console.print(f"wrote {escape(str(output))}", highlight=False)


# -------------------------------------------------------------------------------------------- parity
@main.command()
@click.argument("task_id")
@click.option("--steps", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also measure the first STEPS steps on both backends and compare them step for step.")
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="EOSBENCH_DATA")
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
@click.pass_context
def parity(ctx: click.Context, task_id: str, steps: int, data_dir: Path | None, as_json: bool) -> None:
    """Compare the torch and JAX backends on a task and print the largest relative differences.

    At θ0: loss, gradient, a Hessian-vector product, a third-derivative product and the top-3 eigenvalues;
    with --steps, every measured series of the two runs, step for step (nothing is stored).
    """
    from eosbench import parity as par

    spec = _catalog(ctx).get(task_id)
    rows = [{"quantity": name, "max_rel_diff": value, "step": 0}
            for name, value in par.oracle_parity(spec, data_dir=data_dir).items() if name != "eigs"]
    if steps:
        short = spec.model_copy(update={"steps": min(steps, spec.steps)})
        diffs = par.measured_parity(short, data_dir=data_dir)
        for column in diffs.columns:
            series = diffs[column].dropna()
            if len(series):
                rows.append({"quantity": f"run: {column}", "max_rel_diff": float(series.max()),
                             "step": int(series.idxmax())})
    if as_json:
        click.echo(json.dumps({"task": spec.id, "steps": steps, "differences": rows}, indent=2))
        return
    table = Table(title=f"torch vs JAX on {spec.id} ({spec.dtype})")
    for col in ("quantity", "max relative difference", "at step"):
        table.add_column(col, justify="left" if col == "quantity" else "right")
    for row in rows:
        table.add_row(row["quantity"], f"{row['max_rel_diff']:.2e}", str(row["step"]))
    out.print(table)


# ------------------------------------------------------------------------------------- predictors
def _registry(plugins: tuple[str, ...] = (), warn: bool = False):
    """The registry with ``--plugin`` files; with ``warn``, one line per plugin file that failed to load
    (its predictors are missing; every other predictor still runs)."""
    from eosbench.registry import Registry

    registry = Registry(plugins=list(plugins))
    if warn:
        for key, err in registry.broken.items():
            if any(key == str(p) or key.startswith(f"{p}:") for p in registry.plugin_files):
                console.print(f"[yellow]warning:[/] {escape(err)}", highlight=False, soft_wrap=True)
    return registry


@main.group()
def predictors() -> None:
    """List and inspect the theories eosbench can run."""


@predictors.command("list")
@click.option("--plugin", "plugins", multiple=True, type=click.Path(), help="Also load predictors from this .py file.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def predictors_list(plugins: tuple[str, ...], as_json: bool) -> None:
    """List predictors with their version, tracks and where they came from."""
    from eosbench.registry import describe

    registry = _registry(plugins)
    rows = [describe(registry.refs[n]) for n in registry.names()]
    if as_json:
        click.echo(json.dumps({"predictors": rows, "shadowed": [describe(r) for r in registry.shadowed],
                               "broken": registry.broken}, indent=2))
        return
    table = Table(title="predictors")
    for col in ("name", "version", "tracks", "source"):
        table.add_column(col, no_wrap=True)
    table.add_column("paper", max_width=50, no_wrap=True, overflow="ellipsis")
    for r in rows:  # escaped: manifests and plugins are text from files, which rich would read as markup
        table.add_row(*(escape(str(v)) for v in (r["name"], r["version"], ", ".join(map(str, r.get("tracks") or [])),
                                                   r["source"], r.get("paper", ""))))
    out.print(table)
    if not rows:
        console.print("[yellow]no predictors found[/]: this installation has no baselines/ and no submissions/ "
                      "folder and no plugin registered under the 'eosbench.predictors' entry point; pass "
                      "--plugin FILE.py, or reinstall eosbench (a wheel ships the baselines).", highlight=False,
                      soft_wrap=True)
        sys.exit(1)
    for r in registry.shadowed:
        console.print(f"[yellow]shadowed[/] {escape(r.name)} from {r.source} ({escape(r.location)}): a built-in "
                      "of the same name wins", highlight=False, soft_wrap=True)
    for name, err in registry.broken.items():
        console.print(f"[red]broken[/] {escape(name)}: {escape(err)}", highlight=False, soft_wrap=True)


@predictors.command("show")
@click.argument("name")
@click.option("--plugin", "plugins", multiple=True, type=click.Path(), help="Also load predictors from this .py file.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def predictors_show(name: str, plugins: tuple[str, ...], as_json: bool) -> None:
    """Show a predictor's manifest, source and docstring (imports its code)."""
    from eosbench.registry import describe

    ref = _registry(plugins, warn=True).get(name)
    info = describe(ref, ref.load())
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        if key != "doc":
            out.print(f"[bold]{escape(str(key))}[/]: {escape(str(value))}", highlight=False)
    out.print(info["doc"], highlight=False, markup=False)


# -------------------------------------------------------------------------------------- run/score
def _print_held_out(record: dict) -> None:
    """Per track, the public score beside the held-out score (``run --held-out``)."""
    held = record.get("held_out")
    if not held:
        return
    table = Table(title=f"{escape(record['predictor']['name'])} · held out (seed {held['seed']}, {held['seed_source']})")
    for col in ("track", "public", "held out", "gap"):
        table.add_column(col, justify="left" if col == "track" else "right")
    for track, s in held["scores"].items():
        table.add_row(track + (" (accuracy)" if track == "phase" else ""),
                      *("-" if s[k] is None else f"{s[k]:+.3f}" for k in ("public", "held_out", "gap")))
    out.print(table)
    out.print("  " + "; ".join(f"{v['task']}: " + ", ".join(
        f"{k} {', '.join(f'{x:g}' for x in x_) if isinstance(x_, list) else format(x_, 'g')}"
        for k, x_ in v["drawn"].items()) for v in held["variants"].values()), highlight=False, markup=False)


def _print_record(record: dict) -> None:
    for track, result in record["tracks"].items():
        if track == "phase":
            table = Table(title=f"{record['predictor']['name']} · phase track")
            for col in ("family", "accuracy", "critical c error", "ρ max S", "measured", "predicted"):
                table.add_column(col)

            def num(value, spec):
                return "-" if value is None else format(value, spec)

            for fam, f in result["families"].items():
                m = f["metrics"]
                table.add_row(fam, num(m.get("phase_accuracy"), ".2f"), num(m.get("critical_c_error"), ".3f"),
                              num(m.get("max_sharpness_spearman"), ".2f"),
                              " ".join(f["measured"].get(t, "?") for t in f["values"]),
                              " ".join(f["predicted"].get(t, "·") for t in f["values"]))
            out.print(table)
            continue
        table = Table(title=f"{escape(record['predictor']['name'])} · {track} track")
        for col in ("task", "regime", "status", "score", "sharpness err (GF)", "loss err (GF)", "cost ×GD"):
            table.add_column(col, justify="left" if col in ("task", "regime", "status") else "right",
                             overflow="fold")

        def fmt(value):
            return "-" if value is None or (isinstance(value, float) and value != value) else f"{value:.3g}"

        def pair(t, key):
            return f"{fmt(t.get('metrics', {}).get(key))} ({fmt(t.get('reference', {}).get(key))})"

        for task, t in result["tasks"].items():
            status = t["status"] if t["status"] != "failed" else "[red]failed[/]"
            table.add_row(escape(task), t.get("regime") or "-", status, fmt(t.get("score")),
                          pair(t, "sharpness_error"), pair(t, "loss_error"), fmt(t.get("cost", {}).get("cost_ratio")))
        out.print(table)
        agg = result["aggregate"]
        regimes = ", ".join(f"{r} {v['score']:+.2f}±{v['spread']:.2f}" for r, v in agg["regimes"].items())
        out.print(f"  score by regime (bounded skill vs gradient flow in [-1, 1], higher is better): {regimes or '-'}\n"
                  f"  mean over regimes {fmt(agg['score'])}; coverage {agg['coverage']:.0%} of {agg['applicable']} "
                  f"applicable tasks; median cost {fmt(agg['cost_ratio'])}× the GD run (budget class "
                  f"{agg['budget_class'] or '-'}); see docs/scoring.md", highlight=False)
        for task, t in result["tasks"].items():
            if t["status"] in ("failed", "skipped") and t.get("error"):
                console.print(f"[red]{t['status']}[/] {escape(task)}: {escape(t['error'].splitlines()[0])}",
                              soft_wrap=True)


def _run_or_score(ctx: click.Context, predictors: tuple[str, ...], task_ids, suite, tracks, backend, plugins,
                  data_dir, as_json, publish, results_dir, *, cached_only: bool, force: bool = False,
                  budget: float | None = None, device: str | None = None, executor: str = "local", jobs: int = 1,
                  address: str | None = None, workers: int | None = None, threads: int | None = None,
                  held_out: bool = False, held_out_seed: int | None = None) -> list[dict]:
    from eosbench.executors import make_executor
    from eosbench.results import publish as publish_record
    from eosbench.runner import REFERENCE, RunContext, run_many

    registry = _registry(plugins, warn=True)
    refs = [registry.get(name) for name in predictors]
    catalog = _catalog(ctx)
    suite = suite or (None if task_ids else "tiny")
    specs = _select(catalog, task_ids, suite, device)
    _check_work(refs, specs, list(tracks))
    variants, drawn, seed_source = [], {}, None
    if held_out or held_out_seed is not None:
        from eosbench.heldout import draw, fresh_seed

        seed_source = "drawn" if held_out_seed is None else "command-line"
        held_out_seed = fresh_seed() if held_out_seed is None else held_out_seed
        variants, drawn = draw(specs, held_out_seed)
        if not variants:
            raise EosbenchError("--held-out: none of the selected tasks declares held_out ranges (a 'held_out' "
                                "section in its task file; see docs/scoring.md).")
        console.print(f"held out: {len(drawn)} variants ({len(variants)} tasks) drawn from seed {held_out_seed} "
                      f"({seed_source})", highlight=False)
    store = _store(ctx)
    store.clean_partial()
    _use_threads(threads)
    with _Reporter(live=console.is_terminal, quiet=as_json) as reporter:
        if executor == "local":  # here, with per-step progress; a Dask run measures on its workers
            _measure_first(_measured_specs(refs, specs + variants, list(tracks)), store, data_dir, reporter)
        pool = make_executor(executor, jobs=jobs, address=address, workers=workers, threads=threads)
        try:
            run_ctx = RunContext(store=store, catalog=catalog, backend=backend,
                                 data_dir=str(data_dir) if data_dir else None, force=force, cached_only=cached_only,
                                 budget_seconds=budget, executor=pool, on_event=reporter)
            if variants:
                from eosbench.heldout import run_held_out

                records = run_held_out(refs, specs, variants, drawn, run_ctx, seed=held_out_seed,
                                       seed_source=seed_source, tracks=list(tracks) or None, suite=suite or "custom",
                                       reference=registry.refs.get(REFERENCE))
            else:
                records = run_many(refs, specs, run_ctx, tracks=list(tracks) or None, suite=suite or "custom",
                                   reference=registry.refs.get(REFERENCE))
        finally:
            pool.close()
    for record in records:
        if publish:
            console.print(f"published {escape(str(publish_record(record, results_dir)))}", highlight=False)
        if not as_json:
            _print_record(record)
            _print_held_out(record)
        for note in _empty_tracks(record):
            console.print(f"[yellow]nothing scored[/] {escape(note)}", highlight=False, soft_wrap=True)
    if as_json:
        click.echo(json.dumps(records[0] if len(records) == 1 else records, indent=2, default=str))
    return records


def _check_work(refs, specs: list[TaskSpec], tracks: list[str]) -> None:
    """Say why a predictor will run nothing (a track it does not declare; the phase track without a sweep
    family among the tasks); an error when no predictor has anything to run."""
    has_family = any(spec.family is not None for spec in specs)
    notes, runnable = [], 0
    for ref in refs:
        declared = list(ref.tracks)
        missing = [t for t in tracks if t not in declared]
        wanted = [t for t in (tracks or declared) if t in declared]
        if missing:
            notes.append(f"{ref.name} does not take part in the {' or '.join(missing)} track "
                         f"(it declares {', '.join(declared)})")
        if "phase" in wanted and not has_family:
            notes.append(f"the phase track of {ref.name} needs members of a sweep family, and none of the "
                         "selected tasks is one (run a family, e.g. --suite uv-eos; eosbench tasks list shows "
                         "the families)")
            wanted.remove("phase")
        runnable += bool(wanted)
    if not runnable:
        raise EosbenchError("Nothing to run: " + "; ".join(notes) + ".")
    for note in notes:
        console.print(f"[yellow]note[/] {escape(note)}", highlight=False, soft_wrap=True)


def _measured_specs(refs, specs: list[TaskSpec], tracks: list[str]) -> list[TaskSpec]:
    """The tasks whose ground truth a run needs: all of them, or only sweep members when every predictor
    runs the phase track alone."""
    wanted = {t for ref in refs for t in (tracks or ref.tracks)}
    return specs if wanted - {"phase"} else [spec for spec in specs if spec.family is not None]


def _measure_first(specs: list[TaskSpec], store: Store, data_dir: Path | None, report: "_Reporter") -> None:
    """Measure the tasks the store lacks before the run, as the runner would (torch, same store entry), so
    the progress shows each task's steps and ETA. Tasks whose data is missing are left to the runner, which
    records them as skipped."""
    from eosbench.executors import apply_threads, choose_threads
    from eosbench.measure import ensure_trajectory

    todo = [spec for spec in {s.id: s for s in specs}.values() if store.load_trajectory(spec, "torch") is None]
    for done, spec in enumerate(todo, start=1):
        apply_threads(choose_threads(1))
        try:
            trajectory, _ = ensure_trajectory(
                spec, store, backend="torch", data_dir=data_dir,
                on_step=lambda t, n, s=spec: report("", kind="step", task=s.id, step=t, steps=s.steps))
        except DataUnavailableError:
            report("", kind="measured", task=spec.id, status="data unavailable", done=done, total=len(todo))
            continue
        report("", kind="measured", task=spec.id, status=trajectory.outcome,
               seconds=trajectory.meta.get("wall_time_s"), done=done, total=len(todo))


def _empty_tracks(record: dict) -> list[str]:
    """Why a track of a result record scored nothing, one sentence per such track."""
    notes = []
    name = record["predictor"]["name"]
    for track, result in record["tracks"].items():
        if track == "phase" and not result.get("families"):
            notes.append(f"{name} · phase track: the predictor made no claim on any member of the selected "
                         "families (every unit was not applicable), so no family is scored.")
        elif track != "phase":
            statuses = [t.get("status") for t in result.get("tasks", {}).values()]
            if statuses and "ok" not in statuses:
                counts = {s: statuses.count(s) for s in dict.fromkeys(statuses)}
                notes.append(f"{name} · {track} track: no task was scored ("
                             + ", ".join(f"{n} {s}" for s, n in counts.items()) + ").")
    return notes


_RUN_OPTIONS = [
    click.argument("predictors", nargs=-1, required=True),
    click.option("--suite", help="Suite to run (tiny, small, full, or a sweep family; default tiny)."),
    click.option("--tasks", "task_ids", multiple=True, callback=_task_ids,
                 help="Individual task ids or task files (repeatable, or comma-separated)."),
    click.option("--track", "tracks", multiple=True, type=click.Choice(["trajectory", "forecast", "phase"]),
                 help="Tracks to run (default: every track the predictor declares)."),
    click.option("--backend", type=click.Choice(["torch", "jax"]),
                 help="Oracle backend of the predictors (default: each one's first declared backend; the ground "
                      "truth is always measured with torch)."),
    click.option("--plugin", "plugins", multiple=True, type=click.Path(), help="Load predictors from this .py file."),
    click.option("--data-dir", type=click.Path(path_type=Path), envvar="EOSBENCH_DATA", help="CIFAR-10 folder."),
    click.option("--json", "as_json", is_flag=True,
                 help="Print the result record as JSON (a list of records for several predictors)."),
    click.option("--publish", is_flag=True, help="Write the result records into the leaderboard's results folder."),
    click.option("--results-dir", type=click.Path(path_type=Path), default=Path("leaderboard/results"),
                 show_default=True, help="Where --publish writes."),
]


def _with_run_options(fn):
    for option in reversed(_RUN_OPTIONS):
        fn = option(fn)
    return fn


@main.command("run")
@_with_run_options
@click.option("--force", is_flag=True, help="Re-run the predictor even if its predictions are stored.")
@click.option("--budget", type=float, help="Wall seconds per task and origin (default: the manifest's budget_seconds).")
@_DEVICE_OPTION
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local", show_default=True,
              help="local: this machine (--jobs at once); dask: every unit is a Dask task (see --address).")
@click.option("--jobs", type=int, default=min(2, os.cpu_count() or 1), show_default=True,
              help="Local executor: tasks predicted at once, each in its own process (with 1 thread unless --threads).")
@click.option("--address", help="Dask executor: a running scheduler, e.g. tcp://10.0.0.5:8786 "
                                "(default: start a LocalCluster on this machine).")
@click.option("--workers", type=int, help="Dask executor: worker processes of the LocalCluster (default: cores).")
@_THREADS_OPTION
@click.option("--held-out", is_flag=True,
              help="Also draw one unseen variant of each task from its held_out ranges, measure and score it, and "
                   "record the public score next to the held-out score (docs/scoring.md).")
@click.option("--held-out-seed", type=click.IntRange(min=0),
              help="The seed of the held-out draw (implies --held-out; default: drawn from the OS and recorded).")
@click.pass_context
def run_cmd(ctx, predictors, suite, task_ids, tracks, backend, plugins, data_dir, as_json, publish, results_dir,
            force, budget, device, executor, jobs, address, workers, threads, held_out, held_out_seed):
    """Run PREDICTORS on a suite: measure missing ground truth, predict, score, print a table.

    Each task runs in its own process under the predictor's budget: a crash, a hang, NaNs or wrong steps
    are recorded as a failure of that task and the run goes on. Predictions are cached in the store, so
    a killed run resumes where it stopped. With --executor dask, measuring a task and predicting a task
    are Dask tasks; results come back to this machine's store (see docs/scaling.md for clusters and GPUs).

    Each task's score is a bounded skill against gradient flow on the same problem, in [-1, 1] (higher is
    better; a failed task scores -1), averaged per regime of training; cost is the prediction's
    gradient-equivalents over the GD run's. Definitions: docs/scoring.md. Exit code 1 when every task failed.
    """
    records = _run_or_score(ctx, predictors, task_ids, suite, tracks, backend, plugins, data_dir, as_json, publish,
                            results_dir, cached_only=False, force=force, budget=budget, device=device,
                            executor=executor, jobs=jobs, address=address, workers=workers, threads=threads,
                            held_out=held_out, held_out_seed=held_out_seed)
    _exit_if_all_failed(records)


def _unit_statuses(records: list[dict]) -> list[str]:
    """The status of every (predictor, task, track) unit of the result records."""
    statuses = []
    for record in records:
        for result in record.get("tracks", {}).values():
            statuses += [t.get("status") for t in result.get("tasks", {}).values()]
            for family in result.get("families", {}).values():
                statuses += list(family.get("status", {}).values())
    return statuses


def _exit_if_all_failed(records: list[dict]) -> None:
    """Exit 1, saying so, when units ran and every one that applies failed (a run that produced nothing)."""
    statuses = [s for s in _unit_statuses(records) if s not in ("not-applicable", "skipped")]
    if statuses and all(s == "failed" for s in statuses):
        console.print(f"[bold red]error:[/] every task failed ({len(statuses)} of {len(statuses)}); see the "
                      "errors above", highlight=False)
        sys.exit(1)


@main.command("score")
@_with_run_options
@click.pass_context
def score_cmd(ctx, predictors, suite, task_ids, tracks, backend, plugins, data_dir, as_json, publish, results_dir):
    """Re-score PREDICTORS' stored predictions against the stored ground truth, running nothing new."""
    _run_or_score(ctx, predictors, task_ids, suite, tracks, backend, plugins, data_dir, as_json, publish,
                  results_dir, cached_only=True)


# -------------------------------------------------------------------------------- leaderboard
@main.group()
def leaderboard() -> None:
    """Build and serve the static leaderboard site from the published result files."""


@leaderboard.command("build")
@click.option("--results", type=click.Path(path_type=Path), default=Path("leaderboard/results"), show_default=True,
              help="Folder of published result files (<predictor>/<suite>@<version>.json).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("leaderboard/site"), show_default=True,
              help="Where the site is written (built beside it and swapped in when complete).")
@click.pass_context
def leaderboard_build(ctx: click.Context, results: Path, out: Path) -> None:
    """Rebuild the site from the validated result files, beside OUT, and swap it in (a failed build leaves OUT as it was).

    Task pages draw the measured curves and forecasts held in the store; tasks the store lacks say so.
    """
    try:
        from eosbench.site.build import build_site
    except ImportError as exc:
        raise EosbenchError(f"Building the site needs the 'site' extra ({exc.name} is not installed): "
                            "pip install -e '.[site]'.") from None
    report = build_site(results, out, store=_store(ctx))
    console.print(f"built {report.pages} pages into {escape(str(report.out))} in {report.seconds:.1f}s "
                  f"(curves for {report.tasks_with_curves} of {report.tasks} tasks from the store); "
                  f"open {escape(str(report.out / 'index.html'))}", highlight=False)


@leaderboard.command("serve")
@click.option("--site", type=click.Path(path_type=Path), default=Path("leaderboard/site"), show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
def leaderboard_serve(site: Path, port: int) -> None:
    """Serve a built site on http://127.0.0.1:PORT."""
    from eosbench.site.serve import serve

    serve(site, port)


# ------------------------------------------------------------------------------------- submit
@main.group()
def submit() -> None:
    """Scaffold and validate a theory for the leaderboard (see CONTRIBUTING.md)."""


@submit.command("new")
@click.argument("name")
@click.option("--dir", "submissions", type=click.Path(path_type=Path), default=Path("submissions"), show_default=True,
              help="Folder of submissions to create NAME in.")
def submit_new(name: str, submissions: Path) -> None:
    """Create submissions/NAME/: manifest, torch and JAX predictor templates, README."""
    from eosbench.submit import scaffold

    folder = scaffold(name, submissions)
    console.print(f"wrote {folder}/: fill in the TODOs of predictor.yaml and predictor.py, then run "
                  f"eosbench submit validate {folder}", highlight=False)


@submit.command("validate")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--suite", default="tiny", show_default=True, help="Suite to run the submission on.")
@click.option("--tasks", "task_ids", multiple=True, callback=_task_ids,
              help="Only these task ids (repeatable or comma-separated; quicker, for iterating).")
@click.option("--backend", type=click.Choice(["torch", "jax"]), help="Default: the manifest's first backend.")
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="EOSBENCH_DATA", help="CIFAR-10 folder.")
@click.pass_context
def submit_validate(ctx: click.Context, path: Path, suite: str, task_ids: tuple[str, ...], backend: str | None,
                    data_dir: Path | None) -> None:
    """Check the predictor folder PATH as a reviewer would and print a verdict to paste into the review.

    Runs it twice on the suite (or --tasks) and exits 1 unless every check passes.
    """
    from eosbench.submit import validate

    catalog = _catalog(ctx)
    specs = [catalog.get(t) for t in task_ids] if task_ids else catalog.suite(suite)
    store = _store(ctx)
    store.clean_partial()
    with console.status(f"validating {path} on {len(specs)} tasks (twice)", spinner="dots"):
        verdict = validate(path, specs, catalog=catalog, store=store, suite=suite if not task_ids else "custom",
                           backend=backend, data_dir=data_dir)
    click.echo(verdict.markdown())
    sys.exit(0 if verdict.passed else 1)


# ------------------------------------------------------------------------------ migrate
def _result_files(paths: tuple[Path, ...]) -> list[Path]:
    files = [f for p in paths for f in (sorted(p.glob("**/*.json")) if p.is_dir() else [p])]
    if not files:
        raise EosbenchError(f"No result files (*.json) in {', '.join(map(str, paths))}.")
    return files


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if a file would change.")
def migrate(paths: tuple[Path, ...], check: bool) -> None:
    """Bring result files (or folders of them; default leaderboard/results) to this eosbench's schema.

    Files of a version no migration starts from (e.g. newer than this eosbench) are refused, never
    mixed in: exit code 2.
    """
    from eosbench.migrate import migrate_file
    from eosbench.results import RESULT_SCHEMA_VERSION

    refused, pending = [], []
    for path in _result_files(paths or (Path("leaderboard/results"),)):
        try:
            done = migrate_file(path, write=not check)
        except EosbenchError as exc:
            refused.append(path)
            console.print(f"[red]refused[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            continue
        if done.changed:
            pending.append(path)
            verb = "would migrate" if check else "migrated"
            out.print(f"{verb} {escape(str(path))}: version {done.from_version} → {RESULT_SCHEMA_VERSION}",
                      highlight=False)
        else:
            out.print(f"up to date {escape(str(path))} (version {RESULT_SCHEMA_VERSION})", highlight=False)
    if refused:
        sys.exit(2)
    if check and pending:
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
