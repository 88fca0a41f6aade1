"""DVC stage `ingest`: bring one benchmark scene from its source into data/scenes/<scene>/."""

from __future__ import annotations

import sys
from pathlib import Path

from splatbench.benchmark import scene_spec
from splatbench.cli_support import run_stage, stage_parser
from splatbench.ingest.pipeline import ingest_scene
from splatbench.params import load_params, section
from splatbench.stage_metrics import write_stage_metrics


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    args = parser.parse_args(argv)

    spec = scene_spec(section(load_params(args.params), "benchmark"), args.scene)
    result = ingest_scene(
        spec.source,
        Path("data/scenes") / spec.name,
        scene=spec.name,
        dataset=spec.dataset,
        image_dir=spec.image_dir,
        progress=sys.stderr.isatty(),
    )
    files = result.manifest["files"]
    # Ingest has no headline numbers: its record is a details file only (not a DVC metric).
    write_stage_metrics(
        spec.name,
        "ingest",
        {
            "scene": spec.name,
            "dataset": spec.dataset,
            "files": len(files),
            "images": sum(1 for f in files if "width" in f),
            "bytes": sum(int(f["size"]) for f in files),
            "seconds": round(result.seconds, 3),
        },
    )


if __name__ == "__main__":
    run_stage(main)
