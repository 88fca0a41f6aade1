"""DVC stage `evaluate`: metrics of one scene's models on its test views.

Reads data/sfm/<scene>/ and data/splats/<scene>/point_cloud.ply (and, with --compressed, the
decoded compressed model); writes metrics/<scene>/eval.json (test-view PSNR/SSIM/LPIPS of the
trained and compressed models), the full record in metrics/<scene>/details/eval.json, and
comparison images under data/eval/<scene>/.
"""

from __future__ import annotations

from pathlib import Path

from splatbench.benchmark import scene_spec
from splatbench.cli_support import run_stage, stage_parser
from splatbench.evaluate import ModelInput, eval_config_from_params, evaluate_scene, parse_model_arg
from splatbench.hardware import check_hardware
from splatbench.params import load_params, section
from splatbench.stage_metrics import write_stage_metrics


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument(
        "--compressed",
        type=Path,
        default=None,
        help="decoded PLY of the compressed model (its directory's other files are its "
        "storage); omit when the pipeline has no compress stage",
    )
    parser.add_argument(
        "--compressed-dir",
        type=Path,
        default=None,
        help="directory of the compressed files whose total size is the compressed model's "
        "storage [default: the directory of --compressed]",
    )
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME=PLY:STORAGE",
        help="another model to evaluate (repeatable): its name in eval.json, the PLY to render "
        "and the file or directory whose size is its storage, e.g. "
        "spz=data/compressed/S/export_decoded/spz.ply:data/compressed/S/export/scene.spz",
    )
    args = parser.parse_args(argv)

    params = load_params(args.params)
    spec = scene_spec(section(params, "benchmark"), args.scene)
    cfg, convention = eval_config_from_params(
        section(params, "eval"),
        params.get("train") if isinstance(params.get("train"), dict) else None,
    )
    check_hardware(cfg.render_backend)  # `auto` must mean what hardware.yaml says
    models = [ModelInput("trained", Path("data/splats") / spec.name / "point_cloud.ply")]
    if args.compressed is not None:
        storage = args.compressed_dir or args.compressed.parent
        models.append(ModelInput("compressed", args.compressed, storage_dir=storage))
    extra = [parse_model_arg(text) for text in args.model]
    # An export left out of export.formats has no decoded PLY: say so rather than fail.
    skipped = [m for m in extra if not m.ply.is_file()]
    models += [m for m in extra if m.ply.is_file()]
    doc = evaluate_scene(
        Path("data/sfm") / spec.name,
        models,
        cfg,
        convention,
        comparisons_dir=Path("data/eval") / spec.name,
    )
    doc["warnings"] += [
        f"{m.name}: not evaluated, {m.ply} does not exist (left out of export.formats?)"
        for m in skipped
    ]
    write_stage_metrics(spec.name, "eval", {"scene": spec.name, "dataset": spec.dataset, **doc})


if __name__ == "__main__":
    run_stage(main)
