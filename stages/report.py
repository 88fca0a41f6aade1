"""DVC stage `report`: aggregate every scene's metrics into reports/ (summary.csv, summary.md,
costs.csv, plots/, images/, index.html)."""

from __future__ import annotations

import sys
from pathlib import Path

from splatbench.benchmark import scene_names
from splatbench.cli_support import run_stage, stage_parser
from splatbench.params import load_params, section
from splatbench.report import ReportInputs, build_report, report_config_from_dict


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__, scene=False)
    parser.add_argument("--out", type=Path, default=Path("reports"))
    args = parser.parse_args(argv)

    params = load_params(args.params)
    benchmark = section(params, "benchmark")
    cfg = report_config_from_dict(params.get("report"))
    result = build_report(
        ReportInputs(
            metrics_dir=Path("metrics"),
            scenes=scene_names(benchmark),
            title=f"splatbench report: {benchmark.get('name')}",
            dataset=str(benchmark.get("dataset") or benchmark.get("name")),
        ),
        cfg,
        args.out,
    )
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {len(result.files)} files to {args.out}/", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
