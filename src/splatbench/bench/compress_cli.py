"""The ``splatbench bench compress`` command (registered in :mod:`splatbench.cli`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from splatbench.errors import SplatbenchError


def _default_views(ply: Path) -> Path | None:
    """``data/sfm/<scene>`` for ``data/splats/<scene>/point_cloud.ply``, when it exists (as
    given: a relative PLY path gives a relative SfM path, so reports carry no local paths)."""
    ply = Path(ply)
    if ply.resolve().parent.parent.name == "splats":
        sfm = ply.parent.parent.parent / "sfm" / ply.parent.name
        if (sfm / "split.json").is_file():
            return sfm
    return None


def compress_command(
    ply: Annotated[Path, typer.Argument(help="Trained model (3DGS PLY) to encode.")] = Path(
        "data/splats/blocks/point_cloud.ply"
    ),
    peers: Annotated[
        bool,
        typer.Option(
            "--peers/--no-peers",
            help="Also encode with @playcanvas/splat-transform 3.7.0 (SPZ, and SOG with -g cpu); "
            "installed from npm on first use.",
        ),
    ] = False,
    views: Annotated[
        Path | None,
        typer.Option(
            help="SfM directory whose views measure quality [default: data/sfm/<scene> for "
            "data/splats/<scene>/point_cloud.ply; else orbit views rendered from the input]"
        ),
    ] = None,
    split: Annotated[str, typer.Option(help="Views of --views to use: test | train.")] = "test",
    orbit: Annotated[
        int, typer.Option(help="Orbit views (fidelity vs the input) when there are no views.")
    ] = 4,
    preset: Annotated[
        list[str] | None,
        typer.Option(help="Our codec's presets (conf/compress/<preset>.yaml); repeatable."),
    ] = None,
    peer_sog: Annotated[
        str,
        typer.Option(
            help="PlayCanvas SOG peer (about 13 min per 30k Gaussians on 2 cores): run (use the "
            "cached output for this input if any, else run and cache) | cache (cache only) | skip"
        ),
    ] = "run",
    out: Annotated[
        Path | None,
        typer.Option(
            help="Output directory [default: benchmarks/perf/results/compress_peers/"
            "<scene or PLY stem>]"
        ),
    ] = None,
    params: Annotated[
        Path, typer.Option(help="params.yaml whose eval section sets the metric convention.")
    ] = Path("params.yaml"),
    conf: Annotated[Path, typer.Option(help="Hydra config directory (presets).")] = Path("conf"),
    threads: Annotated[int, typer.Option(help="torch CPU threads.")] = 2,
) -> None:
    """Size, ratio, PSNR/SSIM/LPIPS drop and encode time of our codec, our SOG/SPZ exports and
    (with --peers) splat-transform's SOG and SPZ, on one trained PLY, side by side.

    Writes peers.json, peers.csv, peers.md and quality_vs_size.png to --out.
    """
    import torch

    from splatbench.bench.compress_peers import (
        DEFAULT_PRESETS,
        format_table,
        run_compress_peers,
        write_outputs,
    )
    from splatbench.params import load_params

    torch.set_num_threads(threads)
    try:
        sfm = views if views is not None else _default_views(ply)
        eval_params = {}
        if params.is_file():
            eval_params = load_params(params).get("eval") or {}
        name = ply.resolve().parent.name if _default_views(ply) else ply.stem
        out_dir = out or Path("benchmarks/perf/results/compress_peers") / name
        report = run_compress_peers(
            ply,
            sfm_dir=sfm,
            split=split,
            conf_dir=conf,
            presets=tuple(preset or DEFAULT_PRESETS),
            peers=peers,
            peer_sog=peer_sog,
            orbit=orbit,
            eval_params=eval_params,
            progress=lambda msg: print(f"  {msg}", file=sys.stderr, flush=True),
        )
        files = write_outputs(report, out_dir)
    except SplatbenchError as err:
        from splatbench.cli_support import report_error

        if os.environ.get("SPLATBENCH_DEBUG"):
            raise
        report_error(err)
        raise typer.Exit(code=2) from None
    typer.echo(format_table(report))
    typer.echo("wrote " + ", ".join(str(p) for p in files))
