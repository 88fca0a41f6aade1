"""DVC stage `train`: fit Gaussian splats to one scene's SfM output into data/splats/<scene>/."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

from splatbench.benchmark import protocol_note
from splatbench.cli_support import run_stage, stage_parser
from splatbench.fsutil import sha256_file
from splatbench.hardware import check_hardware
from splatbench.params import load_params
from splatbench.stage_metrics import write_stage_metrics
from splatbench.train.config import configs_from_params
from splatbench.train.interrupt import INTERRUPTED_EXIT_CODE, StopOnSignal, TrainingInterrupted
from splatbench.train.scene import train_scene

# SageMaker jobs set this to /opt/ml/checkpoints, which it syncs to S3 and restores on restart.
CHECKPOINT_ROOT_ENV = "SPLATBENCH_CHECKPOINT_DIR"
DEFAULT_CHECKPOINT_ROOT = Path(".splatbench/checkpoints")


def checkpoint_dir_for(root: Path, scene: str, params: dict, sfm_dir: Path) -> Path:
    """One checkpoint directory per (scene, training config, SfM model).

    DVC deletes a stage's outputs before running it, so checkpoints live outside them; keying
    the directory by what the run depends on means a resumed run only ever finds its own
    checkpoints, while a sweep over other settings starts fresh instead of tripping over them.
    """
    key = {s: params.get(s) for s in ("train", "strategy", "early_stop")}
    key["sfm_images_bin"] = sha256_file(sfm_dir / "sparse" / "0" / "images.bin")
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return root / scene / digest


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    args = parser.parse_args(argv)

    params = load_params(args.params)
    train_cfg, strategy_cfg, early_stop_cfg = configs_from_params(params)
    check_hardware(train_cfg.backend)  # `auto` must mean what hardware.yaml (a DVC param) says
    # A benchmark without conf/train/<name>.yaml trains with train/default: say so up front.
    protocol = protocol_note(params)
    if protocol:
        print(f"warning: {protocol}", file=sys.stderr, flush=True)
    sfm_dir = Path("data/sfm") / args.scene
    root = Path(os.environ.get(CHECKPOINT_ROOT_ENV) or DEFAULT_CHECKPOINT_ROOT)
    ckpt_dir = checkpoint_dir_for(root, args.scene, params, sfm_dir)
    # SIGTERM (SageMaker stop / spot interruption): checkpoint at once, exit 143; a rerun resumes.
    try:
        with StopOnSignal() as stop:
            metrics = train_scene(
                sfm_dir,
                Path("data/splats") / args.scene,
                train_cfg,
                strategy_cfg,
                early_stop_cfg,
                checkpoint_dir=ckpt_dir,
                live_dir=Path("dvclive") / args.scene,
                progress=sys.stderr.isatty(),
                should_stop=stop,
            )
    except TrainingInterrupted as exc:
        print(f"{exc}; checkpoints in {ckpt_dir}", file=sys.stderr, flush=True)
        sys.exit(INTERRUPTED_EXIT_CODE)
    train_warnings = list(metrics.get("warnings", []))
    if protocol:  # recorded with the run (report, sweep report), printed above already
        metrics["warnings"] = [protocol, *train_warnings]
    write_stage_metrics(args.scene, "train", {"scene": args.scene, **metrics})
    if metrics.get("resumed_from_step") is not None:  # an interrupted run (spot, SIGTERM, kill)
        print(f"train: resumed from the checkpoint at step {metrics['resumed_from_step']}",
              file=sys.stderr)  # fmt: skip
    for warning in train_warnings:
        print(f"warning: {warning}", file=sys.stderr)
    # The run finished and its outputs are in place: its checkpoints are no longer needed.
    shutil.rmtree(ckpt_dir, ignore_errors=True)


if __name__ == "__main__":
    run_stage(main)
