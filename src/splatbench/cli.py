"""The `splatbench` command line.

Heavy libraries (pycolmap, torch) are imported inside the commands that need them, so
`splatbench --help` stays instant.
"""

from __future__ import annotations

import json
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Annotated

import typer

from splatbench import __version__
from splatbench.bench.compress_cli import compress_command
from splatbench.cli_support import exit_with_error
from splatbench.errors import SplatbenchError

app = typer.Typer(
    name="splatbench",
    help="Reproducible benchmark harness for 3D Gaussian Splatting, built on DVC pipelines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command("make-scene")
def make_scene(
    out: Annotated[Path, typer.Argument(help="Zip archive to write, e.g. data/sources/blocks.zip")],
    name: Annotated[str, typer.Option(help="Scene name.")] = "blocks",
    views: Annotated[int, typer.Option(help="Number of camera views.")] = 24,
    width: Annotated[int, typer.Option(help="Image width in pixels.")] = 320,
    height: Annotated[int, typer.Option(help="Image height in pixels.")] = 240,
    seed: Annotated[int, typer.Option(help="Seed: same seed, byte-identical archive.")] = 0,
) -> None:
    """Render the built-in synthetic scene (known cameras) into a source archive.

    The zip holds images/, ground_truth.json and LICENSE.txt; ingest it like a downloaded
    scene: `splatbench ingest file://OUT --scene NAME --dataset synthetic`.
    """
    from splatbench.scene.synthetic import SyntheticSceneConfig, write_scene_archive

    try:
        cfg = SyntheticSceneConfig(
            name=name, num_views=views, width=width, height=height, seed=seed
        )
        path = write_scene_archive(cfg, out)
    except SplatbenchError as err:
        exit_with_error(err)
    except ValueError as err:
        exit_with_error(SplatbenchError(str(err), fix="see `splatbench make-scene --help`"))
    typer.echo(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, {views} views)")


@app.command("sfm")
def sfm(
    scene_dir: Annotated[Path, typer.Argument(help="Ingested scene (has images/, manifest.json).")],
    out: Annotated[Path, typer.Argument(help="Output directory (sparse/0, images/, split.json).")],
    params: Annotated[
        Path | None, typer.Option(help="Read the sfm section from this params.yaml.")
    ] = None,
    downscale: Annotated[int, typer.Option(help="Downscale undistorted images by this.")] = 1,
    matcher: Annotated[
        str | None, typer.Option(help="auto | exhaustive | sequential | vocab_tree")
    ] = None,
    metrics: Annotated[
        Path | None, typer.Option(help="Write the SfM metrics JSON here (default: print).")
    ] = None,
) -> None:
    """Reconstruct a scene with pycolmap: features, matching, mapping, undistortion, split."""
    from splatbench.fsutil import atomic_write_json
    from splatbench.params import load_params, section
    from splatbench.scene.split import SplitConfig
    from splatbench.sfm.config import ResolutionConfig, SfmConfig
    from splatbench.sfm.pipeline import run_sfm

    try:
        sfm_params = section(load_params(params), "sfm") if params else {}
        if matcher:
            sfm_params["matcher"] = matcher
        result = run_sfm(
            scene_dir,
            out,
            SfmConfig.from_dict(sfm_params),
            SplitConfig(),
            ResolutionConfig(downscale=downscale),
            progress=sys.stderr.isatty(),
        )
    except SplatbenchError as err:
        exit_with_error(err)
    if metrics:
        atomic_write_json(metrics, result)
        typer.echo(f"wrote {metrics}")
    else:
        typer.echo(json.dumps(result, indent=2, sort_keys=True))


@app.command("add-scene")
def add_scene_command(
    source: Annotated[
        str, typer.Argument(help="A folder of photos, a .zip, s3://bucket/prefix/ or https://...")
    ],
    name: Annotated[str, typer.Option(help="Scene name (lowercase, digits, - or _).")],
    benchmark: Annotated[str, typer.Option(help="Benchmark to create or extend.")] = "custom",
    downscale: Annotated[
        int | None,
        typer.Option(help="Training resolution divisor [default: photos wider than 1600 px halve]"),
    ] = None,
    repo: Annotated[Path, typer.Option(help="Project root.")] = Path("."),
) -> None:
    """Add your own scene to conf/benchmark/BENCHMARK.yaml, ready for `dvc exp run`.

    A local folder or zip is copied to data/sources/NAME and tracked with `dvc add` (portable:
    queued experiments and remote jobs get it from DVC; `dvc push` uploads it).
    """
    import yaml

    from splatbench.add_scene import add_scene
    from splatbench.benchmark import protocol_note
    from splatbench.cloud.contract import compose_params
    from splatbench.fsutil import atomic_write_text

    repo = repo.resolve()
    try:
        added = add_scene(repo, source, name, benchmark, downscale=downscale)
    except SplatbenchError as err:
        exit_with_error(err)
    what = "created" if added.created else ("extended" if added.changed else "unchanged:")
    typer.echo(f"{what} {added.config.relative_to(repo)}: scene {added.name} <- {added.source} "
               f"(image_dir {added.image_dir}, downscale {added.downscale})")  # fmt: skip
    if added.copied is not None:
        rel = added.copied.relative_to(repo)
        typer.echo(
            f"tracked {rel} with DVC; commit: git add {rel}.dvc {added.config.relative_to(repo)}"
        )
    params = repo / "params.yaml"
    current = yaml.safe_load(params.read_text()) if params.is_file() else {}
    selected = (current.get("benchmark") or {}).get("name") == added.benchmark
    try:
        text = compose_params(repo, [f"benchmark={added.benchmark}"])
    except SplatbenchError as err:
        exit_with_error(err)
    if selected:
        atomic_write_text(params, text)
        typer.echo("re-composed params.yaml; next: dvc repro")
    else:
        typer.echo(f"next: dvc exp run -S benchmark={added.benchmark}")
    composed = yaml.safe_load(text)
    note = protocol_note(composed)
    if note:
        typer.echo(f"note: {note}", err=True)


def _register_commands() -> None:
    # Commands defined beside their library; their heavy imports happen inside them.
    from splatbench.cloud.ingest_job_cli import ingest_command
    from splatbench.cloud.remote_cli import remote_app
    from splatbench.hardware_cli import hardware_command
    from splatbench.metrics.weights_cli import weights_app
    from splatbench.report.diff_cli import diff_command
    from splatbench.sweep.cli import sweep_app

    app.command("ingest")(ingest_command)
    app.command("diff")(diff_command)
    app.add_typer(weights_app, name="weights")
    app.command("hardware")(hardware_command)
    app.add_typer(remote_app, name="remote")
    app.add_typer(sweep_app, name="sweep")


_register_commands()

bench_app = typer.Typer(
    help="Performance benchmarks: print figures (speed, memory) for the targets in the README.",
    no_args_is_help=True,
)
app.add_typer(bench_app, name="bench")
bench_app.command("compress")(compress_command)


@bench_app.command("render")
def bench_render(
    threads: Annotated[int, typer.Option(help="torch CPU threads.")] = 2,
    iters: Annotated[int, typer.Option(help="Timed iterations per workload.")] = 10,
    skip_reference: Annotated[
        bool, typer.Option(help="Skip the slow pure-torch reference workload.")
    ] = False,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the report as JSON here.")
    ] = None,
) -> None:
    """Forward+backward it/s and peak memory of the CPU rasterizer at fixed workloads.

    20k Gaussians at 160x120 (target >= 8 it/s on 2 cores) and 200k at 640x480 (target: runs
    within 4 GiB), plus the pure-torch reference for comparison.
    """
    from splatbench.bench.render import DEFAULT_WORKLOADS, format_table, run_render_bench
    from splatbench.fsutil import atomic_write_json

    workloads = tuple(
        w for w in DEFAULT_WORKLOADS if not (skip_reference and w.backend == "torch_reference")
    )
    report = run_render_bench(workloads, threads=threads, iters=iters)
    typer.echo(format_table(report))
    if json_out:
        atomic_write_json(json_out, report)


@app.command("info")
def info() -> None:
    """Versions of splatbench and its key dependencies, and the compute devices seen."""
    rows = {"splatbench": __version__, "python": platform.python_version()}
    for dist in ("torch", "pycolmap", "dvc", "hydra-core", "gsplat"):
        try:
            rows[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            rows[dist] = "not installed"
    try:
        import torch

        rows["cuda"] = (
            f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})"
            if torch.cuda.is_available()
            else "not available (CPU only)"
        )
        rows["cpu_threads"] = str(torch.get_num_threads())
    except ImportError:
        rows["cuda"] = "unknown (torch not installed)"
    width = max(map(len, rows))
    for key, value in rows.items():
        typer.echo(f"{key:<{width}}  {value}")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Reproducible benchmark harness for 3D Gaussian Splatting, built on DVC pipelines."""
