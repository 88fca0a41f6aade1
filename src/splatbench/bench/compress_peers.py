"""``splatbench bench compress --peers``: our codec against the viewer formats' reference tool.

One trained PLY is encoded by

- our codec (``splatbench-sog``) at the presets of ``conf/compress/`` (``small``, ``default``,
  ``hq``),
- our viewer exports (PlayCanvas SOG and SPZ, ``conf/export/default.yaml``),
- the peers: ``@playcanvas/splat-transform`` 3.7.0's SPZ writer (Niantic's library compiled to
  WebAssembly) and its SOG writer with ``-g cpu`` (k-means on the CPU: about 13 minutes for 30k
  Gaussians on 2 cores, so its output is cached under the tools directory keyed by the input's
  sha256, the tool version and the arguments; ``--peer-sog cache`` only uses the cache,
  ``skip`` leaves it out),

every file is decoded by splatbench's readers, and every decode is rendered on the same views
with the evaluator of the evaluate stage: the scene's test views when there is an SfM directory
(quality against ground truth; drops against the input PLY), else orbit views whose targets are
renders of the input model (fidelity: PSNR against the uncompressed model). Sizes are the
shipped files' bytes; encode times are wall times (peers: the ``splat-transform`` process,
including Node start-up).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from splatbench.errors import ConfigError, SplatbenchError
from splatbench.fsutil import atomic_write_bytes, atomic_write_json, atomic_write_text, sha256_file

DEFAULT_PRESETS = ("small", "default", "hq")
PEER_SOG_MODES = ("run", "cache", "skip")
#: Targets of issue 11 (demo scene): at a PSNR drop <= SOG_DROP_DB ours is smaller than the
#: PlayCanvas SOG peer; at the SPZ peer's drop ours is at least SPZ_RATIO times smaller.
SOG_DROP_DB = 0.05
SHORT = {"sog": "PlayCanvas SOG", "spz": "SPZ"}
SPZ_RATIO = 1.5


@dataclass
class CodecRun:
    """One encoded model and how it decodes.

    Attributes:
        name: table label.
        kind: ``input`` (the PLY), ``ours`` (our codec), ``export`` (our SOG/SPZ writer) or
            ``peer`` (splat-transform).
        bytes: size of the shipped file(s).
        encode_seconds: wall time of the encode (None: not measured, e.g. the input).
        note: how it was produced (settings, cache, command).
        num_gaussians: Gaussians in the decode.
        quality: ``psnr``, ``ssim``, ``lpips`` of the decode (None: not evaluated).
    """

    name: str
    kind: str
    bytes: int
    encode_seconds: float | None
    note: str
    num_gaussians: int
    quality: dict[str, float | None] = field(default_factory=dict)
    ply: str = ""


def load_compress_preset(conf_dir: Path, name: str) -> dict[str, Any]:
    """``conf/compress/<name>.yaml`` resolved as Hydra does for a group option whose defaults
    list names other options of the group (``defaults: [default, _self_]``)."""
    path = Path(conf_dir) / "compress" / f"{name}.yaml"
    if not path.is_file():
        options = sorted(p.stem for p in (Path(conf_dir) / "compress").glob("*.yaml"))
        raise ConfigError(f"no compress preset {name!r} ({path})", fix=f"use one of {options}")
    doc = yaml.safe_load(path.read_text()) or {}
    merged: dict[str, Any] = {}
    for item in doc.pop("defaults", None) or []:
        if item != "_self_":
            merged.update(load_compress_preset(conf_dir, str(item)))
    merged.update(doc)
    return merged


def load_export_config(conf_dir: Path) -> dict[str, Any]:
    path = Path(conf_dir) / "export" / "default.yaml"
    return yaml.safe_load(path.read_text()) if path.is_file() else {}


# --- views -----------------------------------------------------------------------------------


def orbit_views(splats: Mapping[str, torch.Tensor], count: int, width: int, height: int) -> Any:
    """``count`` cameras on a circle around the model looking at its median, each with the
    render of the model itself as target (8-bit, as a photograph): for fidelity without
    ground truth."""
    from splatbench.evaluate.scene import render_view
    from splatbench.gaussians.views import SceneViews
    from splatbench.render.synthetic import look_at_viewmat

    means = splats["means"].detach().float().cpu()
    centre = means.median(0).values
    spread = (means - centre).abs().quantile(0.9, dim=0)
    radius = 2.5 * float(spread.max().clamp_min(1e-3))
    focal = 0.9 * width
    K = torch.tensor([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]])
    names, Ks, viewmats, images = [], [], [], []
    for i in range(count):
        a = 2 * math.pi * i / count
        eye = centre + radius * torch.tensor([math.cos(a), -0.35, math.sin(a)])
        view = look_at_viewmat(eye, centre)
        target = render_view(
            splats, view, K, width, height, background=torch.zeros(3), backend="torch"
        )
        names.append(f"orbit_{i:02d}")
        Ks.append(K)
        viewmats.append(view)
        images.append((target * 255).round().to(torch.uint8))
    return SceneViews(names, torch.stack(Ks), torch.stack(viewmats), images)


# --- peers -----------------------------------------------------------------------------------


def _peer_cache_dir(ply_sha: str, args: Sequence[str]) -> Path:
    from splatbench.bench.splat_transform import VERSION, tools_root

    key = hashlib.sha256(json.dumps([ply_sha, VERSION, list(args)]).encode()).hexdigest()[:24]
    return tools_root() / "peer-cache" / key


def run_peer(
    ply: Path, ply_sha: str, out_name: str, args: Sequence[str], work: Path, *, cache: str
) -> tuple[Path, float, str] | None:
    """Encode ``ply`` with splat-transform to ``out_name`` (``args`` before the input, e.g.
    ``-g cpu``). ``cache``: ``off`` (always run), ``run`` (use the cache, else run and store),
    ``cache`` (only the cache). Returns the file, the measured encode seconds and a note; None
    when ``cache == "cache"`` and nothing is cached."""
    from splatbench.bench.splat_transform import (
        VERSION,
        ensure_splat_transform,
        run_splat_transform,
    )

    cached = _peer_cache_dir(ply_sha, [*args, out_name])
    if cache in ("run", "cache") and (cached / "meta.json").is_file():
        meta = json.loads((cached / "meta.json").read_text())
        return cached / out_name, float(meta["seconds"]), f"cached run of {meta['command']}"
    if cache == "cache":
        return None
    cli = ensure_splat_transform()
    out = work / out_name
    t0 = time.perf_counter()
    run_splat_transform(cli, [*args, ply, out], timeout=6 * 3600)
    seconds = time.perf_counter() - t0
    command = f"splat-transform {VERSION} {' '.join([*args, 'IN.ply', out_name])}"
    if cache == "run":
        cached.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(cached / out_name, out.read_bytes())
        atomic_write_json(
            cached / "meta.json", {"seconds": seconds, "command": command, "input_sha256": ply_sha}
        )
    return out, seconds, command


# --- the benchmark ---------------------------------------------------------------------------


def run_compress_peers(
    ply: Path,
    *,
    sfm_dir: Path | None = None,
    split: str = "test",
    conf_dir: Path = Path("conf"),
    presets: Sequence[str] = DEFAULT_PRESETS,
    peers: bool = True,
    peer_sog: str = "run",
    orbit: int = 4,
    orbit_size: tuple[int, int] = (320, 240),
    eval_params: Mapping[str, Any] | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Run the comparison and return its report (see the module docstring).

    Args:
        ply: the trained model (3DGS PLY).
        sfm_dir: ``data/sfm/<scene>`` for ground-truth views; None: orbit views (fidelity).
        split: ``test`` (held-out views) or ``train``.
        conf_dir: where ``compress/<preset>.yaml`` and ``export/default.yaml`` are.
        presets: our codec's presets to run.
        peers: run splat-transform (installs it from npm on first use).
        peer_sog: ``run`` | ``cache`` | ``skip`` for the slow PlayCanvas SOG peer.
        orbit, orbit_size: orbit views when there is no ``sfm_dir``.
        eval_params: the ``eval`` params section (metric convention); None: preset ``3dgs``.
        progress: callable taking a status line, or None.
    """
    from splatbench.compress import compress_splats
    from splatbench.compress.export import FORMATS, export_viewer_formats
    from splatbench.compress.playcanvas_sog import decode_sog
    from splatbench.compress.spz import decode_spz
    from splatbench.evaluate import ModelInput, eval_config_from_params, evaluate_model
    from splatbench.evaluate.scene import resolve_device
    from splatbench.gaussians import load_views
    from splatbench.gaussians.ply import read_ply, write_ply

    if peer_sog not in PEER_SOG_MODES:
        raise ConfigError(f"--peer-sog {peer_sog!r} is not one of {list(PEER_SOG_MODES)}")
    say = progress or (lambda _msg: None)
    ply = Path(ply)
    if not ply.is_file():
        raise SplatbenchError(f"{ply}: no such PLY", fix="train a model first (make demo)")
    ply_sha = sha256_file(ply)
    splats = {k: v.detach() for k, v in read_ply(ply).items()}
    n_input = int(splats["means"].shape[0])
    cfg, convention = eval_config_from_params(eval_params or {"preset": "3dgs"}, None)
    backend, device = resolve_device(cfg.render_backend)
    if sfm_dir is not None:
        views = load_views(Path(sfm_dir), split)
        mode = f"{split} views of {sfm_dir} (ground truth)"
    else:
        say(f"rendering {orbit} orbit views of the input as targets")
        views = orbit_views(splats, orbit, *orbit_size)
        mode = (
            f"{orbit} orbit views at {orbit_size[0]}x{orbit_size[1]}, targets rendered from "
            "the input model (fidelity, no ground truth)"
        )

    runs: list[CodecRun] = [
        CodecRun("input PLY", "input", ply.stat().st_size, None, str(ply), n_input, ply=str(ply))
    ]
    with tempfile.TemporaryDirectory(prefix="splatbench-peers-") as tmp:
        work = Path(tmp)
        for preset in presets:
            say(f"ours: compress={preset}")
            settings = load_compress_preset(conf_dir, preset)
            dec = work / f"ours_{preset}.ply"
            m = compress_splats(ply, work / f"ours_{preset}", settings, decoded_ply=dec)
            runs.append(
                CodecRun(
                    f"ours codec, {preset}",
                    "ours",
                    m["bytes"],
                    m["encode_seconds"],
                    f"conf/compress/{preset}.yaml",
                    m["num_gaussians"],
                    ply=str(dec),
                )
            )
        say("ours: SOG and SPZ exports")
        export = export_viewer_formats(
            ply, work / "export", load_export_config(conf_dir), decoded_dir=work / "export_dec"
        )
        for fmt, (model, _, dec_name) in FORMATS.items():
            if model in export["formats"]:
                f = export["formats"][model]
                runs.append(
                    CodecRun(
                        f"ours {SHORT[fmt]} export",
                        "export",
                        f["bytes"],
                        f["encode_seconds"],
                        "conf/export/default.yaml",
                        f["num_gaussians"],
                        ply=str(work / "export_dec" / dec_name),
                    )
                )
        if peers:
            jobs = [("spz", "scene.spz", [], "off")]
            if peer_sog != "skip":
                jobs.append(("sog", "scene.sog", ["-g", "cpu"], peer_sog))
            for fmt, out_name, args, cache in jobs:
                say(
                    f"peer: splat-transform {' '.join(args)} -> {out_name}"
                    + (" (slow; cached after the first run)" if fmt == "sog" else "")
                )
                got = run_peer(ply, ply_sha, out_name, args, work, cache=cache)
                if got is None:
                    say(f"peer {out_name}: not in the cache; left out (--peer-sog run makes it)")
                    continue
                path, seconds, note = got
                decoded = (
                    decode_spz(path.read_bytes(), str(path)) if fmt == "spz" else decode_sog(path)
                )
                dec = work / f"peer_{fmt}.ply"
                write_ply(dec, decoded)
                runs.append(
                    CodecRun(
                        f"peer {SHORT[fmt]} (splat-transform{' -g cpu' * (fmt == 'sog')})",
                        "peer",
                        path.stat().st_size,
                        seconds,
                        note,
                        int(decoded["means"].shape[0]),
                        ply=str(dec),
                    )
                )
        for run in runs:
            say(f"evaluating {run.name}")
            entry, _ = evaluate_model(
                ModelInput(run.name, Path(run.ply)),
                views,
                cfg,
                convention,
                backend=backend,
                device=device,
                comparison_indices=[],
            )
            run.quality = {k: entry[k] for k in ("psnr", "ssim", "lpips")}
            run.ply = run.ply if run.kind == "input" else ""
    return _report(runs, ply, ply_sha, mode, convention.describe(), sfm_dir is not None)


def _report(
    runs: list[CodecRun], ply: Path, sha: str, mode: str, convention: Any, ground_truth: bool
) -> dict[str, Any]:
    base = runs[0]
    rows = []
    for r in runs:
        row = asdict(r)
        row["megabytes"] = r.bytes / 1e6
        row["ratio"] = base.bytes / r.bytes if r.bytes else None
        for key in ("psnr", "ssim", "lpips"):
            value, ref = r.quality.get(key), base.quality.get(key)
            row[f"{key}_drop"] = (
                ref - value if ground_truth and value is not None and ref is not None else None
            )
        if row["lpips_drop"] is not None:  # LPIPS: lower is better, report the increase
            row["lpips_drop"] = -row["lpips_drop"]
        rows.append(row)
    return {
        "input": {
            "ply": str(ply),
            "sha256": sha,
            "bytes": base.bytes,
            "num_gaussians": base.num_gaussians,
        },
        "quality_measured_on": mode,
        "ground_truth": ground_truth,
        "convention": convention,
        "rows": rows,
        "targets": check_targets(rows) if ground_truth else None,
        "device": "cpu" if not torch.cuda.is_available() else torch.cuda.get_device_name(0),
        "threads": torch.get_num_threads(),
    }


def check_targets(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Issue 11's targets against the peers present: for each peer, the smallest of our codec's
    runs that reaches the required quality, and whether it meets the size bound."""
    ours = [r for r in rows if r["kind"] == "ours" and r["psnr_drop"] is not None]
    out: dict[str, Any] = {}
    for peer in (r for r in rows if r["kind"] == "peer" and r["psnr_drop"] is not None):
        is_spz = "SPZ" in peer["name"]
        max_drop = peer["psnr_drop"] if is_spz else SOG_DROP_DB
        max_bytes = peer["bytes"] / SPZ_RATIO if is_spz else peer["bytes"]
        fits = [r for r in ours if r["psnr_drop"] <= max_drop + 1e-9]
        best = min(fits, key=lambda r: r["bytes"]) if fits else None
        out[peer["name"]] = {
            "rule": (
                f"PSNR drop <= {max_drop:.3f} dB (the peer's) and size <= peer / "
                f"{SPZ_RATIO} = {max_bytes / 1e6:.4f} MB"
                if is_spz
                else f"PSNR drop <= {SOG_DROP_DB} dB and size < peer = {max_bytes / 1e6:.4f} MB"
            ),
            "ours": best["name"] if best else None,
            "ours_bytes": best["bytes"] if best else None,
            "ours_drop": best["psnr_drop"] if best else None,
            "met": bool(
                best and (best["bytes"] <= max_bytes if is_spz else best["bytes"] < max_bytes)
            ),
            "pareto_dominated": any(
                r["bytes"] < peer["bytes"] and r["psnr_drop"] <= peer["psnr_drop"] for r in ours
            ),
        }
    return out


# --- output ----------------------------------------------------------------------------------


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(report: Mapping[str, Any]) -> str:
    """The side-by-side table as markdown (printed by the command, kept in the JSON's dir)."""
    gt = report["ground_truth"]
    head = ["codec", "size MB", "ratio", "PSNR dB", "SSIM", "LPIPS"]
    head += ["PSNR drop dB", "SSIM drop", "LPIPS incr."] if gt else []
    head += ["Gaussians", "encode s"]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for r in report["rows"]:
        q = r["quality"]
        cells = [
            r["name"],
            f"{r['megabytes']:.4f}",
            _fmt(r["ratio"], ".1f") + "x",
            _fmt(q.get("psnr"), ".3f"),
            _fmt(q.get("ssim"), ".4f"),
            _fmt(q.get("lpips"), ".4f"),
        ]
        if gt:
            cells += [
                _fmt(r["psnr_drop"], "+.3f"),
                _fmt(r["ssim_drop"], "+.4f"),
                _fmt(r["lpips_drop"], "+.4f"),
            ]
        enc = _fmt(r["encode_seconds"], ".1f")
        if r["kind"] == "peer" and r["note"].startswith("cached"):
            enc += " (cached)"
        cells += [f"{r['num_gaussians']:,}", enc]
        lines.append("| " + " | ".join(cells) + " |")
    out = "\n".join(lines) + "\n"
    out += f"\nQuality measured on {report['quality_measured_on']}; convention "
    out += f"'{report['convention'].get('name')}'.\n"
    for peer, t in (report.get("targets") or {}).items():
        verdict = "MET" if t["met"] else "MISSED"
        ours = (
            f"{t['ours']}: {t['ours_bytes'] / 1e6:.4f} MB at drop {t['ours_drop']:+.3f} dB"
            if t["ours"]
            else "no run of ours reaches the quality"
        )
        out += f"- target vs {peer}: {t['rule']} -> {ours} -> {verdict}"
        out += f"; Pareto-dominated by ours: {'yes' if t['pareto_dominated'] else 'no'}\n"
    return out


def write_outputs(report: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """``peers.json``, ``peers.csv``, ``peers.md`` and ``quality_vs_size.png`` in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "peers.json", report)
    cols = [
        "name",
        "kind",
        "bytes",
        "megabytes",
        "ratio",
        "num_gaussians",
        "psnr",
        "ssim",
        "lpips",
        "psnr_drop",
        "ssim_drop",
        "lpips_drop",
        "encode_seconds",
        "note",
    ]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols)
    writer.writeheader()
    for r in report["rows"]:
        writer.writerow({**{k: r.get(k) for k in cols}, **r["quality"]})
    atomic_write_text(out_dir / "peers.csv", buf.getvalue())
    atomic_write_text(out_dir / "peers.md", format_table(report))
    plot = out_dir / "quality_vs_size.png"
    plot_quality_vs_size(report, plot)
    return [out_dir / "peers.json", out_dir / "peers.csv", out_dir / "peers.md", plot]


def plot_quality_vs_size(report: Mapping[str, Any], path: Path) -> None:
    from splatbench.report.plots import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    style = {
        "input": ("k", "o"),
        "ours": ("tab:blue", "s"),
        "export": ("tab:green", "^"),
        "peer": ("tab:red", "D"),
    }
    ours = sorted(
        (r for r in report["rows"] if r["kind"] == "ours" and r["quality"]["psnr"]),
        key=lambda r: r["bytes"],
    )
    if len(ours) > 1:
        ax.plot(
            [r["megabytes"] for r in ours],
            [r["quality"]["psnr"] for r in ours],
            "-",
            color="tab:blue",
            alpha=0.5,
            linewidth=1,
        )
    for i, r in enumerate(report["rows"]):
        if r["quality"].get("psnr") is None:
            continue
        color, marker = style.get(r["kind"], ("grey", "o"))
        ax.plot(r["megabytes"], r["quality"]["psnr"], marker, color=color, markersize=7)
        ax.annotate(
            r["name"],
            (r["megabytes"], r["quality"]["psnr"]),
            fontsize=6.5,
            xytext=(4, -3 + 7 * (i % 3 - 1)),
            textcoords="offset points",
        )
    from matplotlib.ticker import FuncFormatter

    ax.set_xscale("log")
    plain = FuncFormatter(lambda v, _pos: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.tick_params(axis="x", which="minor", labelsize=7)
    handles = [
        ax.plot([], [], m, color=c, label=label)[0]
        for label, (c, m) in zip(
            ("input", "our codec", "our SOG/SPZ exports", "splat-transform"),
            style.values(),
            strict=True,
        )
    ]
    ax.legend(handles=handles, fontsize=7, loc="lower right")
    ax.set_xlabel("size (MB, log scale)")
    ylabel = "PSNR dB (test views)" if report["ground_truth"] else "PSNR dB vs input render"
    ax.set_ylabel(ylabel)
    ax.set_title(
        f"Quality vs size: {Path(report['input']['ply']).name}, "
        f"{report['input']['num_gaussians']:,} Gaussians",
        fontsize=9,
    )
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
