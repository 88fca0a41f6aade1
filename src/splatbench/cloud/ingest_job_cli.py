"""``splatbench ingest``: the S3 ingestion job, plus the original local-scene form.

Register in ``splatbench/cli.py`` (replacing the old ``ingest`` command, whose behaviour this
keeps when a positional SOURCE is given)::

    from splatbench.cloud.ingest_job_cli import ingest_command
    app.command("ingest")(ingest_command)

Job form (each option also read from the environment variable named in ``--help``)::

    splatbench ingest --dataset mipnerf360 --scene garden --bucket B --output-dir out \\
        --source-url https://host/360_v2.zip [--upload] [--force]

Local-scene form (unchanged)::

    splatbench ingest SOURCE --scene NAME --dataset NAME [--out DIR] [--image-dir images]
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from splatbench.cli_support import exit_with_error
from splatbench.errors import SplatbenchError


def ingest_command(
    source: Annotated[
        str | None,
        typer.Argument(
            help="Local-scene form only: a local path, file://... or synthetic://NAME?... "
            "ingested into data/scenes/SCENE (no S3). Omit for the S3 job."
        ),
    ] = None,
    dataset: Annotated[
        str | None, typer.Option(envvar="BENCH_DATASET", help="Dataset, e.g. mipnerf360.")
    ] = None,
    scene: Annotated[
        str | None, typer.Option(envvar="BENCH_SCENE", help="Scene, e.g. garden.")
    ] = None,
    bucket: Annotated[
        str | None, typer.Option(envvar="BENCHMARK_BUCKET", help="S3 bucket of the layout.")
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option(help="Local outputs: downloads/, manifests/, s3_dry_run/, logs/."),
    ] = None,
    source_url: Annotated[
        str | None,
        typer.Option(
            envvar="BENCH_SOURCE_URL",
            help="http(s)://, s3:// or local payload; required when no manifest exists yet "
            "(default: the manifest's recorded source).",
        ),
    ] = None,
    prefix: Annotated[
        str, typer.Option(envvar="BENCHMARK_PREFIX", help="Key prefix inside the bucket.")
    ] = "",
    region: Annotated[str | None, typer.Option(envvar="AWS_REGION", help="AWS region.")] = None,
    profile: Annotated[
        str | None, typer.Option(help="AWS profile (~/.aws/config); default: AWS_PROFILE.")
    ] = None,
    endpoint_url: Annotated[
        str | None,
        typer.Option(
            help="S3-compatible endpoint (SeaweedFS, MinIO); default: AWS_ENDPOINT_URL_S3 / "
            "AWS_ENDPOINT_URL, else AWS."
        ),
    ] = None,
    license_url: Annotated[str | None, typer.Option(help="License URL to record.")] = None,
    expected_image_dirs: Annotated[
        str,
        typer.Option(help="Comma-separated image folders the payload must have (first = main)."),
    ] = "images",
    upload: Annotated[
        bool, typer.Option("--upload", help="Publish to S3. Without it: dry run, no S3 calls.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a published manifest that differs.")
    ] = False,
    run_id: Annotated[
        str | None, typer.Option(help="Names the results/<run_id>/ log folder.")
    ] = None,
    print_iam_policy: Annotated[
        bool,
        typer.Option(
            "--print-iam-policy", help="Print the job's least-privilege IAM policy and exit."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run summary as JSON.")] = False,
    out: Annotated[
        Path | None,
        typer.Option(help="Local-scene form: scene directory [default: data/scenes/SCENE]."),
    ] = None,
    image_dir: Annotated[
        str, typer.Option(help="Local-scene form: image folder inside the payload.")
    ] = "images",
) -> None:
    """Ingest a scene: fetch, extract safely, hash, and publish to S3 (dry run by default).

    Dry run writes <output-dir>/s3_dry_run/<prefix>/... and makes no S3 call. With --upload the
    raw payload goes to s3://BUCKET/PREFIX/raw/DATASET/SCENE/, the manifest (last) to
    .../manifests/DATASET/SCENE.manifest.json, and the run log to .../results/RUN_ID/.
    Re-running is idempotent and resumes interrupted uploads.
    """
    try:
        if print_iam_policy:
            _print_policy(bucket, prefix)
            return
        if source is not None:
            _local_scene(source, scene, dataset, out, image_dir, license_url)
            return
        _job(
            dataset=dataset,
            scene=scene,
            bucket=bucket,
            output_dir=output_dir,
            source_url=source_url,
            prefix=prefix,
            region=region,
            profile=profile,
            endpoint_url=endpoint_url,
            license_url=license_url,
            expected_image_dirs=expected_image_dirs,
            upload=upload,
            force=force,
            run_id=run_id,
            as_json=as_json,
        )
    except SplatbenchError as err:
        exit_with_error(err)


def _require(value: str | Path | None, option: str, env: str | None = None) -> None:
    if value is None or value == "":
        where = f" or set {env}" if env else ""
        raise SplatbenchError(f"missing option {option}", fix=f"pass {option}{where}")


def _print_policy(bucket: str | None, prefix: str) -> None:
    from splatbench.cloud.iam import ingest_job_policy
    from splatbench.cloud.s3 import S3Layout, normalize_prefix

    _require(bucket, "--bucket", "BENCHMARK_BUCKET")
    assert bucket is not None
    policy = ingest_job_policy(S3Layout(bucket, normalize_prefix(prefix)))
    typer.echo(json.dumps(policy, indent=2))


def _local_scene(
    source: str,
    scene: str | None,
    dataset: str | None,
    out: Path | None,
    image_dir: str,
    license_url: str | None,
) -> None:
    from splatbench.ingest.pipeline import ingest_scene

    _require(scene, "--scene", "BENCH_SCENE")
    _require(dataset, "--dataset", "BENCH_DATASET")
    assert scene is not None and dataset is not None
    scene_dir = out or Path("data/scenes") / scene
    result = ingest_scene(
        source,
        scene_dir,
        scene=scene,
        dataset=dataset,
        image_dir=image_dir,
        license_url=license_url,
        progress=sys.stderr.isatty(),
    )
    state = "unchanged (same source)" if result.skipped else "ingested"
    typer.echo(f"{scene_dir}: {state}, {len(result.manifest['files'])} files")


def _job(
    *,
    dataset: str | None,
    scene: str | None,
    bucket: str | None,
    output_dir: Path | None,
    source_url: str | None,
    prefix: str,
    region: str | None,
    profile: str | None,
    endpoint_url: str | None,
    license_url: str | None,
    expected_image_dirs: str,
    upload: bool,
    force: bool,
    run_id: str | None,
    as_json: bool,
) -> None:
    from splatbench.cloud.ingest_job import IngestJobConfig, run_ingest_job
    from splatbench.cloud.s3 import S3Settings

    _require(dataset, "--dataset", "BENCH_DATASET")
    _require(scene, "--scene", "BENCH_SCENE")
    _require(bucket, "--bucket", "BENCHMARK_BUCKET")
    _require(output_dir, "--output-dir")
    assert dataset and scene and bucket and output_dir
    # Job logs go to stderr too (CloudWatch captures them on Batch/SageMaker).
    handler = logging.StreamHandler(sys.stderr)
    from splatbench.cloud.s3 import SecretScrubFilter

    handler.addFilter(SecretScrubFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logging.getLogger("splatbench").addHandler(handler)
    try:
        result = run_ingest_job(
            IngestJobConfig(
                dataset=dataset,
                scene=scene,
                bucket=bucket,
                output_dir=output_dir,
                source_url=source_url,
                prefix=prefix,
                license_url=license_url,
                expected_image_dirs=tuple(d.strip() for d in expected_image_dirs.split(",")),
                upload=upload,
                force=force,
                run_id=run_id,
                s3=S3Settings(endpoint_url=endpoint_url, region=region, profile=profile),
            )
        )
    finally:
        logging.getLogger("splatbench").removeHandler(handler)
    summary = result.summary()
    if as_json:
        typer.echo(json.dumps(summary, indent=2, sort_keys=True))
        return
    typer.echo(f"{dataset}/{scene}: {summary['files']} files, {summary['bytes']} bytes")
    typer.echo(f"manifest: {result.manifest_path}")
    if result.upload is None:
        typer.echo(f"dry run (nothing sent to S3): {result.dry_run_dir}")
    else:
        typer.echo(
            f"uploaded {result.upload['uploaded']}, already there {result.upload['skipped']}, "
            f"manifest {'published' if result.manifest_published else 'unchanged'}: "
            f"{result.s3_uris['manifest']}"
        )
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)


def _standalone() -> None:
    """``python -m splatbench.cloud.ingest_job_cli``: the command without the rest of the CLI."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(ingest_command)
    app()


if __name__ == "__main__":
    _standalone()
