"""``splatbench sweep``: list grids, run a grid through DVC's queue, rebuild its report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from splatbench.cli_support import exit_with_error
from splatbench.errors import SplatbenchError

sweep_app = typer.Typer(
    help="Parameter sweeps over DVC's experiment queue, with a report per sweep "
    "(grids: benchmarks/sweeps/*.yaml, reports: reports/sweeps/<name>/).",
    no_args_is_help=True,
)

RepoOpt = Annotated[Path, typer.Option("--repo", help="Project root (git + DVC repository).")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "-S", "--set-param", help="Extra override for every point, e.g. train.max_steps=600."
    ),
]


def _matches(root: Path, name: str, extra: list[str]):
    from splatbench.sweep.experiments import compose_point, load_experiments, match_points
    from splatbench.sweep.grid import expand, load_grid, parse_extra
    from splatbench.sweep.tables import METRICS

    root = root.resolve()  # Hydra wants an absolute conf directory
    grid = load_grid(root, name, metrics=list(METRICS))
    extra_t = parse_extra(extra, grid)
    points = [(p, compose_point(root, p)) for p in expand(grid, extra_t)]
    return grid, extra_t, match_points(points, load_experiments(root))


def _report(root: Path, grid, matches, extra) -> Path:
    from splatbench.sweep.report import build_tables, dvc_details_reader, write_report

    tables = build_tables(grid, matches, dvc_details_reader(root))
    out = write_report(root, grid, tables, extra)
    done = sum(1 for m in matches if m.experiment is not None)
    typer.echo(f"wrote {out / 'index.html'} ({done} of {len(matches)} points have results)")
    for m in matches:
        if m.experiment is None:
            typer.echo(f"  missing: point {m.point.index} ({m.point.label}): {m.status}")
    return out


@sweep_app.command("list")
def list_command(repo: RepoOpt = Path(".")) -> None:
    """List the named grids with their size and description."""
    from splatbench.sweep.grid import grid_files, load_grid
    from splatbench.sweep.tables import METRICS

    try:
        for path in grid_files(repo):
            grid = load_grid(repo, path.stem, metrics=list(METRICS))
            axes = " x ".join(f"{a.key}[{len(a.values)}]" for a in grid.axes)
            typer.echo(f"{grid.name:<12} {grid.size:>3} points  {axes}\n  {grid.description}")
    except SplatbenchError as err:
        exit_with_error(err)


@sweep_app.command("run")
def run_command(
    name: Annotated[str, typer.Argument(help="Grid name (benchmarks/sweeps/NAME.yaml).")],
    set_param: SetOpt = None,
    jobs: Annotated[
        int, typer.Option("-j", "--jobs", help="Queue workers (dvc queue start -j).")
    ] = 1,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be queued; queue nothing.")
    ] = False,
    repo: RepoOpt = Path("."),
) -> None:
    """Queue every point without results, run them with -j workers, wait, write the report.

    Points that already have an experiment with identical params (run here, by hand, or fetched
    with `splatbench remote fetch`) are not queued again.
    """
    from splatbench.sweep.experiments import experiment_name
    from splatbench.sweep.queue import queue_points, start_workers, to_queue, wait

    if jobs < 1:
        err = SplatbenchError(f"-j {jobs}: need at least one worker", fix="use -j 1 or more")
        exit_with_error(err)
    repo = repo.resolve()
    try:
        grid, extra, matches = _matches(repo, name, list(set_param or []))
        todo = to_queue(matches)
        pending = [m for m in matches if m.experiment is None and m not in todo]
        typer.echo(
            f"sweep {grid.name}: {len(matches)} points, {len(matches) - len(todo) - len(pending)}"
            f" with results, {len(pending)} already queued/running, {len(todo)} to queue"
        )
        for m in todo:
            overrides = " ".join(f"-S {o}" for o in m.point.overrides)
            typer.echo(f"  {experiment_name(grid.name, m)}: {overrides}")
        if dry_run:
            return
        queued = queue_points(repo, grid.name, todo)
        names = [q.name for q in queued] + [
            m.pending.name for m in pending if m.pending is not None and m.pending.name
        ]
        if names:
            start_workers(repo, jobs)
            status = wait(repo, names)
            failed = [n for n, s in status.items() if s == "Failed"]
            for n in failed:
                typer.echo(f"failed: {n} (see `dvc queue logs {n}`)", err=True)
        grid, extra, matches = _matches(repo, name, list(set_param or []))
        _report(repo, grid, matches, extra)
    except SplatbenchError as err:
        exit_with_error(err)


@sweep_app.command("report")
def report_command(
    name: Annotated[str, typer.Argument(help="Grid name (benchmarks/sweeps/NAME.yaml).")],
    set_param: SetOpt = None,
    repo: RepoOpt = Path("."),
) -> None:
    """Rebuild reports/sweeps/NAME/ from the experiments there are (runs nothing).

    Give the same -S as `sweep run` did: they are part of each point's params.
    """
    try:
        grid, extra, matches = _matches(repo, name, list(set_param or []))
        _report(repo, grid, matches, extra)
    except SplatbenchError as err:
        exit_with_error(err)
