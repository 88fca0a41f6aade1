"""``splatbench diff``: the workspace's metrics against a git revision, as a table.

Register in ``splatbench/cli.py`` with::

    from splatbench.report.diff_cli import diff_command
    app.command("diff")(diff_command)

Also runnable without the CLI: ``python -m splatbench.report.diff_cli [REV] [--md] ...``.
Exit codes: 0 no regression (or not asked to fail), 1 a regression with ``--fail-on-regression``,
2 a user error (not a repository, unknown revision, bad thresholds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from splatbench.errors import SplatbenchError

EXIT_REGRESSION = 1


def _thresholds(params_file: Path):
    from splatbench.params import load_params
    from splatbench.report.config import report_config_from_dict

    if not params_file.is_file():
        # Defaults rather than an error: a repository may run the diff before it has params.
        return report_config_from_dict(None).regression
    return report_config_from_dict(load_params(params_file).get("report")).regression


def diff_command(
    rev: Annotated[
        str, typer.Argument(help="Git revision to compare the workspace against.")
    ] = "main",
    fail_on_regression: Annotated[
        bool,
        typer.Option(
            "--fail-on-regression",
            help="Exit 1 when a metric regressed beyond its "
            "threshold (report.regression in params.yaml).",
        ),
    ] = False,
    md: Annotated[
        bool, typer.Option("--md", help="Print GitHub markdown (for a PR comment).")
    ] = False,
    repo: Annotated[Path, typer.Option(help="Project root (git + DVC repository).")] = Path("."),
    params: Annotated[
        Path | None,
        typer.Option(help="params.yaml with report.regression [default: REPO/params.yaml]."),
    ] = None,
) -> None:
    """Compare every metric against REV (default main) and flag regressions.

    Uses `dvc metrics diff` (DVC's Python API) for the values of both sides: the headline files
    metrics/<scene>/<stage>.json. With --md it leads with a per-scene headline table (test-view
    quality of the trained and compressed models, Gaussians, MB, train time, steps, stop
    reason) and the verdict, then training warnings; every metric is folded below. Regressions
    are judged on test-view quality, size and training time (report.regression).
    """
    from splatbench.cli_support import exit_with_error
    from splatbench.report.diff import (
        changed_scenes,
        classify,
        dvc_metrics_diff,
        markdown_diff,
        text_diff,
        training_warnings,
    )

    try:
        rules = _thresholds(params if params is not None else repo / "params.yaml")
        result = dvc_metrics_diff(repo, rev)
    except SplatbenchError as err:
        exit_with_error(err)
    changes = classify(result.get("diff") or {}, rules)
    for rev_name, errors in (result.get("errors") or {}).items():
        for path, err in errors.items() if isinstance(errors, dict) else []:
            typer.echo(f"warning: {rev_name}: cannot read {path}: {err}", err=True)
    warnings = training_warnings(repo, changed_scenes(changes))
    out = markdown_diff(changes, rev, rules, warnings) if md else text_diff(changes, rev, warnings)
    typer.echo(out, nl=False)
    if fail_on_regression and any(c.status == "regression" for c in changes):
        raise typer.Exit(code=EXIT_REGRESSION)


def main() -> None:
    """Entry point for ``python -m splatbench.report.diff_cli``."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(diff_command)
    app()


if __name__ == "__main__":
    main()
