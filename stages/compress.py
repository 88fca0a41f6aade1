"""DVC stage `compress`: encode one scene's trained splats into data/compressed/<scene>/."""

from __future__ import annotations

from pathlib import Path

from splatbench.cli_support import run_stage, stage_parser
from splatbench.compress import compress_splats
from splatbench.params import load_params, section
from splatbench.stage_metrics import write_stage_metrics


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
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
    write_stage_metrics(args.scene, "compress", {"scene": args.scene, **metrics})


if __name__ == "__main__":
    run_stage(main)
