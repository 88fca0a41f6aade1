"""Python steps of ``benchmarks/gpu/validate.sh`` (one subcommand per step, JSON out).

    python benchmarks/gpu/validate.py probe   --out probe.json
    python benchmarks/gpu/validate.py train   --sfm data/sfm/blocks --backend gsplat \\
        --strategy default --out run.json [--params-out run.pt] [--checkpoint-dir D] [--steps N]
    python benchmarks/gpu/validate.py compare a.pt b.pt --out spread.json
    python benchmarks/gpu/validate.py itps    --backends torch,gsplat --out itps.json
    python benchmarks/gpu/validate.py summary DIR --out DIR/summary.json

Every subcommand also runs on a CPU machine with ``--backend torch`` / ``--backends torch``
(that is how they are tested here); validate.sh runs them with gsplat on CUDA.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml

REPO = Path(__file__).resolve().parents[2]


def _write(path: Path, doc: dict[str, Any]) -> None:
    from splatbench.fsutil import atomic_write_json

    atomic_write_json(path, doc)
    print(json.dumps(doc, indent=2, sort_keys=True, default=str)[:4000])


def probe(args: argparse.Namespace) -> int:
    """Load (or compile) gsplat's kernels and render one Gaussian; time it."""
    from splatbench.hardware import detect
    from splatbench.render import gsplat_verdict

    t0 = time.perf_counter()
    verdict = gsplat_verdict()
    doc = {
        "gsplat_usable": verdict.reason is None,
        "reason": verdict.reason,
        "kernel_setup_seconds": round(verdict.seconds, 3),
        "wall_seconds": round(time.perf_counter() - t0, 3),
        "hardware": detect().as_dict(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    _write(args.out, doc)
    return 0 if verdict.reason is None or args.allow_cpu else 1


def train(args: argparse.Namespace) -> int:
    """Train the built-in scene with the pipeline's params (backend and strategy overridden)."""
    import dataclasses

    from splatbench.params import load_params
    from splatbench.train import train_scene
    from splatbench.train.config import configs_from_params, strategy_config_from_dict

    params = load_params(args.params)
    train_cfg, strategy_cfg, early_cfg = configs_from_params(params)
    overrides: dict[str, Any] = {"backend": args.backend}
    if args.steps:
        overrides["max_steps"] = args.steps
    train_cfg = dataclasses.replace(train_cfg, **overrides)
    if args.strategy != strategy_cfg.name:  # the option's own config group file
        conf = yaml.safe_load((REPO / "conf" / "strategy" / f"{args.strategy}.yaml").read_text())
        strategy_cfg = strategy_config_from_dict(conf)
    out_dir = args.out.parent / f"{args.out.stem}_splats"
    t0 = time.perf_counter()
    metrics = train_scene(
        args.sfm, out_dir, train_cfg, strategy_cfg, early_cfg,
        checkpoint_dir=args.checkpoint_dir,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    if args.params_out:
        from splatbench.gaussians import read_ply

        splats = read_ply(out_dir / "point_cloud.ply")
        torch.save({k: v.detach().cpu() for k, v in splats.items()}, args.params_out)
    doc = {
        "strategy": strategy_cfg.name,
        "steps": metrics["steps"],
        "seconds": metrics["seconds"],
        "wall_seconds": round(wall, 3),
        "its_per_second": round(metrics["steps"] / metrics["seconds"], 2)
        if metrics["seconds"]
        else None,
        "train_psnr": metrics["train_psnr"],
        "num_gaussians": metrics["num_gaussians"],
        "backend": metrics["backend"],
        "device_name": metrics["device_name"],
        "backend_setup_seconds": metrics["backend_setup_seconds"],
        "deterministic": metrics["deterministic"],
        "resumed_from_step": metrics["resumed_from_step"],
        "peak_memory_mb": metrics["peak_memory_mb"],
        "warnings": metrics["warnings"],
    }
    _write(args.out, doc)
    return 0


def compare(args: argparse.Namespace) -> int:
    """Run-to-run spread of two trained models: per-tensor max abs difference, count change."""
    a = torch.load(args.a, weights_only=True)
    b = torch.load(args.b, weights_only=True)
    doc: dict[str, Any] = {"a": str(args.a), "b": str(args.b)}
    doc["num_gaussians"] = [len(a["means"]), len(b["means"])]
    same_shape = all(a[k].shape == b[k].shape for k in a)
    doc["same_count"] = same_shape
    if same_shape:
        doc["max_abs_diff"] = {k: float((a[k] - b[k]).abs().max()) for k in a}
        doc["bit_identical"] = all(torch.equal(a[k], b[k]) for k in a)
    else:
        doc["bit_identical"] = False
    for key in ("psnr_a", "psnr_b"):
        doc[key] = None
    if args.json_a and args.json_b:
        pa = json.loads(Path(args.json_a).read_text())["train_psnr"]
        pb = json.loads(Path(args.json_b).read_text())["train_psnr"]
        doc.update(psnr_a=pa, psnr_b=pb, psnr_diff=round(pb - pa, 4))
    _write(args.out, doc)
    return 0


def itps(args: argparse.Namespace) -> int:
    """Forward+backward it/s of each backend at the render benchmark's workloads."""
    from splatbench.bench.render import Workload, run_workload

    torch.set_num_threads(args.threads)
    rows = []
    for backend in args.backends.split(","):
        device = "cuda" if backend == "gsplat" else "cpu"
        for n, w, h in ((20_000, 160, 120), (200_000, 640, 480)):
            work = Workload(f"{n // 1000}k@{w}x{h}", n, w, h, backend=backend, device=device)
            row = run_workload(work, iters=args.iters, warmup=2, pixel_sigma=1.5, sh_degree=3,
                               seed=0)  # fmt: skip
            rows.append({k: row[k] for k in ("name", "backend", "device", "its_per_s",
                                             "median_s", "peak_rss_gib")})  # fmt: skip
            print(f"{row['name']:<14}{backend:<8}{row['its_per_s']:>10.1f} it/s")
    by_name: dict[str, dict[str, float]] = {}
    for r in rows:
        by_name.setdefault(r["name"], {})[r["backend"]] = r["its_per_s"]
    speedup = {
        name: round(v["gsplat"] / v["torch"], 1)
        for name, v in by_name.items()
        if "gsplat" in v and "torch" in v
    }
    _write(args.out, {"threads": args.threads, "results": rows, "gsplat_speedup": speedup})
    return 0


def summary(args: argparse.Namespace) -> int:
    """Collect every step's JSON in DIR into one summary (missing steps are listed)."""
    out: dict[str, Any] = {"steps": {}, "missing": []}
    for name in ("probe", "parity", "train_default", "train_default_rerun", "spread_rerun",
                 "train_mcmc", "train_resumed", "spread_resume", "itps", "timings"):  # fmt: skip
        path = args.dir / f"{name}.json"
        if path.is_file():
            out["steps"][name] = json.loads(path.read_text())
        else:
            out["missing"].append(name)
    steps = out["steps"]
    figures = {}
    if "train_default" in steps:
        figures["gsplat_default_its_per_s"] = steps["train_default"].get("its_per_second")
        figures["gsplat_default_train_psnr"] = steps["train_default"].get("train_psnr")
    if "train_mcmc" in steps:
        figures["gsplat_mcmc_train_psnr"] = steps["train_mcmc"].get("train_psnr")
    for key in ("spread_rerun", "spread_resume"):
        if key in steps:
            diffs = steps[key].get("max_abs_diff") or {}
            figures[f"{key}_max_abs_param_diff"] = max(diffs.values()) if diffs else None
            figures[f"{key}_psnr_diff"] = steps[key].get("psnr_diff")
    if "itps" in steps:
        figures["gsplat_speedup_vs_cpu"] = steps["itps"].get("gsplat_speedup")
    out["figures"] = {k: v for k, v in figures.items()
                      if not (isinstance(v, float) and math.isnan(v))}  # fmt: skip
    _write(args.out, out)
    return 0 if not out["missing"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("probe")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--allow-cpu", action="store_true", help="exit 0 without gsplat (tests)")
    p = sub.add_parser("train")
    p.add_argument("--sfm", type=Path, default=REPO / "data" / "sfm" / "blocks")
    p.add_argument("--params", type=Path, default=REPO / "params.yaml")
    p.add_argument("--backend", default="gsplat")
    p.add_argument("--strategy", choices=("default", "mcmc"), default="default")
    p.add_argument("--steps", type=int, default=0, help="override train.max_steps (0: keep)")
    p.add_argument("--checkpoint-dir", type=Path)
    p.add_argument("--params-out", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("compare")
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    p.add_argument("--json-a")
    p.add_argument("--json-b")
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("itps")
    p.add_argument("--backends", default="torch,gsplat")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("summary")
    p.add_argument("dir", type=Path)
    p.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    return {"probe": probe, "train": train, "compare": compare, "itps": itps,
            "summary": summary}[args.cmd](args)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
