"""DVC stage `export`: write one scene's trained splats in the viewer formats (PlayCanvas SOG,
Niantic SPZ) to data/compressed/<scene>/export/, their decodes to .../export_decoded/, and
metrics/<scene>/export.json (headline) and details/export.json."""

from __future__ import annotations

from pathlib import Path

from splatbench.cli_support import run_stage, stage_parser
from splatbench.compress.export import export_viewer_formats
from splatbench.params import load_params, section
from splatbench.stage_metrics import write_stage_metrics


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    args = parser.parse_args(argv)

    out = Path("data/compressed") / args.scene
    # export/ holds exactly the shipped files (counted as each format's size); the decodes
    # that the evaluate stage renders sit beside it.
    metrics = export_viewer_formats(
        Path("data/splats") / args.scene / "point_cloud.ply",
        out / "export",
        section(load_params(args.params), "export"),
        decoded_dir=out / "export_decoded",
    )
    write_stage_metrics(args.scene, "export", {"scene": args.scene, **metrics})


if __name__ == "__main__":
    run_stage(main)
