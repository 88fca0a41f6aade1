"""DVC stage `compress`: encode one scene's trained splats into data/compressed/<scene>/."""

from __future__ import annotations

import argparse
from pathlib import Path

from splatbench.cli_support import run_stage
from splatbench.compress import compress_splats
from splatbench.fsutil import atomic_write_json
from splatbench.params import load_params, section


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scene", required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)

    out = Path("data/compressed") / args.scene
    # The decoded PLY sits beside, not inside, model/: model/ is exactly what is shipped and
    # counted as the compressed size.
    metrics = compress_splats(
        Path("data/splats") / args.scene / "point_cloud.ply",
        out / "model",
        section(load_params(args.params), "compress"),
        decoded_ply=out / "decoded.ply",
    )
    metrics_path = Path("metrics") / args.scene / "compress.json"
    atomic_write_json(metrics_path, {"scene": args.scene, **metrics})


if __name__ == "__main__":
    run_stage(main)
