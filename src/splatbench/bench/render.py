"""Forward+backward throughput and peak memory of the CPU rendering backends.

Usage: ``splatbench bench render [--threads 2] [--iters 10] [--json out.json]``
or, from code, ``run_render_bench(...) -> dict``.

Workloads (seeded, see :func:`splatbench.render.synthetic.random_scene`): Gaussians fill one
camera's frustum at depths 2-6, 1-sigma sizes log-normal around ``pixel_sigma`` pixels (most a
few pixels wide, like a trained splat), opacities sigmoid(1.5 * normal), SH degree 3. One
iteration = ``rasterize`` + ``loss.backward()`` with the strategy's ``retain_grad`` on means2d.
Peak memory is the process's peak resident set (VmHWM) during the workload, reset before it
through /proc/self/clear_refs where the kernel allows, so it includes torch itself.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from splatbench.render import rasterize
from splatbench.render.synthetic import random_scene


@dataclass(frozen=True)
class Workload:
    """One benchmark point: n Gaussians rendered at width x height by one camera."""

    name: str
    n: int
    width: int
    height: int
    backend: str = "torch"
    target_its: float | None = None  # iterations/s to reach (None: no target)
    max_peak_gib: float | None = None  # peak RSS ceiling (None: no ceiling)
    device: str = "cpu"  # "cuda" for the gsplat backend


DEFAULT_WORKLOADS = (
    Workload("20k@160x120", 20_000, 160, 120, target_its=8.0),
    Workload("200k@640x480", 200_000, 640, 480, max_peak_gib=4.0),
    # The dense oracle is O(pixels x Gaussians): compared with the fast path on a small scene.
    Workload("2k@80x60", 2_000, 80, 60),
    Workload("2k@80x60", 2_000, 80, 60, backend="torch_reference"),
)


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not permitted."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes() -> int | None:
    hwm = _status_kib("VmHWM")
    if hwm is not None:
        return hwm * 1024
    try:  # non-Linux fallback: psutil's current RSS (a lower bound on the peak)
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        return None


def run_workload(
    w: Workload, *, iters: int, warmup: int, pixel_sigma: float, sh_degree: int, seed: int
) -> dict[str, Any]:
    """Time ``iters`` forward+backward iterations of one workload."""
    scene = random_scene(
        w.n, w.width, w.height, sh_degree=sh_degree, pixel_sigma=pixel_sigma, seed=seed
    )
    dev = torch.device(w.device)
    params = {k: v.to(dev).clone().requires_grad_(True) for k, v in scene.tensors().items()}
    viewmats, Ks = scene.viewmats.to(dev), scene.Ks.to(dev)
    cuda = dev.type == "cuda"
    peak_reset = _reset_peak_rss()
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
    info: dict[str, Any] = {}

    def step() -> None:
        nonlocal info
        img, alpha, info = rasterize(
            params["means"], params["quats"], params["scales"], params["opacities"],
            params["colors"], viewmats, Ks, w.width, w.height,
            sh_degree=sh_degree, backend=w.backend,  # type: ignore[arg-type]
        )  # fmt: skip
        info["means2d"].retain_grad()
        (img.mean() + 0.1 * alpha.mean()).backward()
        for p in params.values():
            p.grad = None
        if cuda:
            torch.cuda.synchronize(dev)  # time the kernels, not their launch

    for _ in range(warmup):
        step()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated(dev) if cuda else _peak_rss_bytes()
    med = statistics.median(times)
    result: dict[str, Any] = {
        **asdict(w),
        "iters": iters,
        "median_s": med,
        "min_s": min(times),
        "its_per_s": 1.0 / med,
        "peak_rss_bytes": peak,
        "peak_rss_gib": None if peak is None else peak / 2**30,
        "peak_rss_scope": "cuda_max_memory_allocated"
        if cuda
        else ("workload" if peak_reset else "process"),
        "visible_gaussians": int((info["radii"] > 0).all(-1).sum()),
        "tile_intersections": (
            None if info.get("flatten_ids") is None else int(info["flatten_ids"].numel())
        ),
    }
    result["meets_target"] = (w.target_its is None or result["its_per_s"] >= w.target_its) and (
        w.max_peak_gib is None or (peak is not None and result["peak_rss_gib"] <= w.max_peak_gib)
    )
    return result


def run_render_bench(
    workloads: tuple[Workload, ...] = DEFAULT_WORKLOADS,
    *,
    threads: int = 2,
    iters: int = 10,
    warmup: int = 2,
    pixel_sigma: float = 1.5,
    sh_degree: int = 3,
    seed: int = 0,
    reference_iters: int = 3,
) -> dict[str, Any]:
    """Run the render benchmark; returns the settings, machine facts and one row per workload."""
    torch.set_num_threads(threads)
    rows = []
    for w in workloads:
        n_it = reference_iters if w.backend == "torch_reference" else iters
        rows.append(run_workload(w, iters=n_it, warmup=1 if w.backend == "torch_reference"
                                 else warmup, pixel_sigma=pixel_sigma, sh_degree=sh_degree,
                                 seed=seed))  # fmt: skip
    return {
        "benchmark": "render",
        "measure": "forward+backward iterations/s (median), peak RSS (VmHWM)",
        "threads": threads,
        "pixel_sigma": pixel_sigma,
        "sh_degree": sh_degree,
        "seed": seed,
        "torch": torch.__version__,
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor(),
            "loadavg": _loadavg(),
        },
        "results": rows,
    }


def _loadavg() -> list[float] | None:
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def format_table(report: dict[str, Any]) -> str:
    """A small fixed-width table of the results."""
    head = (
        f"{'workload':<14}{'backend':<17}{'it/s':>8}{'best it/s':>11}{'ms/it':>9}{'peak GiB':>10}"
        "  target"
    )
    lines = [head, "-" * len(head)]
    for r in report["results"]:
        target = []
        if r["target_its"] is not None:
            target.append(f">= {r['target_its']:g} it/s")
        if r["max_peak_gib"] is not None:
            target.append(f"<= {r['max_peak_gib']:g} GiB")
        verdict = "" if not target else (" ok" if r["meets_target"] else " MISSED")
        peak = "n/a" if r["peak_rss_gib"] is None else f"{r['peak_rss_gib']:.2f}"
        lines.append(
            f"{r['name']:<14}{r['backend']:<17}{r['its_per_s']:>8.2f}{1 / r['min_s']:>11.2f}"
            f"{r['median_s'] * 1e3:>9.1f}"
            f"{peak:>10}  {', '.join(target)}{verdict}"
        )
    load = report["machine"]["loadavg"]
    lines.append(
        f"threads={report['threads']} pixel_sigma={report['pixel_sigma']} "
        f"sh_degree={report['sh_degree']} torch={report['torch']} "
        f"load={'n/a' if load is None else ', '.join(f'{x:.1f}' for x in load)}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--reference-iters", type=int, default=3)
    parser.add_argument("--pixel-sigma", type=float, default=1.5)
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    args = parser.parse_args(argv)
    workloads = tuple(
        w for w in DEFAULT_WORKLOADS if not (args.skip_reference and w.backend == "torch_reference")
    )
    report = run_render_bench(
        workloads,
        threads=args.threads,
        iters=args.iters,
        reference_iters=args.reference_iters,
        pixel_sigma=args.pixel_sigma,
    )
    print(format_table(report))
    if args.json:
        tmp = args.json.with_suffix(args.json.suffix + ".tmp")
        tmp.write_text(json.dumps(report, indent=2))
        tmp.replace(args.json)
    return 0 if all(r["meets_target"] for r in report["results"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
