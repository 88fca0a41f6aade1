"""DVC stage `sfm`: pycolmap reconstruction of one scene into data/sfm/<scene>/."""

from __future__ import annotations

import sys
from pathlib import Path

from splatbench.benchmark import scene_spec
from splatbench.cli_support import run_stage, stage_parser
from splatbench.params import load_params, section
from splatbench.scene.split import SplitConfig
from splatbench.sfm.config import ResolutionConfig, SfmConfig
from splatbench.sfm.pipeline import run_sfm
from splatbench.stage_metrics import write_stage_metrics


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    args = parser.parse_args(argv)

    params = load_params(args.params)
    spec = scene_spec(section(params, "benchmark"), args.scene)
    metrics = run_sfm(
        Path("data/scenes") / spec.name,
        Path("data/sfm") / spec.name,
        SfmConfig.from_dict(section(params, "sfm")),
        SplitConfig.from_dict(spec.split),
        ResolutionConfig(downscale=spec.downscale),
        progress=sys.stderr.isatty(),
    )
    write_stage_metrics(spec.name, "sfm", {"scene": spec.name, "dataset": spec.dataset, **metrics})


if __name__ == "__main__":
    run_stage(main)
