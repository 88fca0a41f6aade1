"""Training checkpoints: one ``torch.save`` file per checkpoint, written atomically.

A checkpoint holds everything the next step depends on, so that a resumed run continues where
the interrupted one was: parameters, Adam states, the strategy's running state, every RNG
state, the step, the early-stop state and the diagnostics so far. On the CPU (torch backend,
same thread count and software) the resumed run is bit-identical to an uninterrupted one; on
CUDA with gsplat it is not, because gsplat's backward pass accumulates gradients with atomic
adds in a run-dependent order. Files are ``ckpt_<steps>.pt`` (``steps`` = completed steps,
zero-padded so names sort by step); the newest ``keep`` files are kept.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from splatbench.errors import SplatbenchError
from splatbench.fsutil import atomic_write_bytes

CHECKPOINT_FORMAT_VERSION = 1
_NAME = re.compile(r"^ckpt_(\d{8})\.pt$")


class CheckpointError(SplatbenchError):
    """A checkpoint cannot be read or belongs to another run configuration."""


def checkpoint_path(directory: Path, steps: int) -> Path:
    return Path(directory) / f"ckpt_{steps:08d}.pt"


def list_checkpoints(directory: Path) -> list[Path]:
    """Checkpoint files in ``directory``, oldest first (ignores temporary files)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if _NAME.match(p.name) and p.is_file()]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))  # type: ignore[union-attr]


def latest_checkpoint(directory: Path | None) -> Path | None:
    if directory is None:
        return None
    found = list_checkpoints(directory)
    return found[-1] if found else None


def save_checkpoint(directory: Path, steps: int, payload: dict[str, Any], keep: int) -> Path:
    """Write ``payload`` as ``ckpt_<steps>.pt`` (temp file + rename), then delete all but the
    newest ``keep`` checkpoints. A crash mid-write leaves the previous checkpoints intact."""
    buf = io.BytesIO()
    torch.save({"format_version": CHECKPOINT_FORMAT_VERSION, **payload}, buf)
    path = checkpoint_path(directory, steps)
    atomic_write_bytes(path, buf.getvalue())
    for old in list_checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a checkpoint (``weights_only``: tensors and plain Python data only)."""
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises assorted types for truncated / foreign files
        raise CheckpointError(
            f"{path}: cannot read checkpoint ({type(exc).__name__}: {exc})",
            fix="delete this file to resume from an older checkpoint (or the whole checkpoint "
            "directory to start over)",
        ) from exc
    if not isinstance(data, dict) or data.get("format_version") != CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: not a splatbench checkpoint of format {CHECKPOINT_FORMAT_VERSION}",
            fix="delete the checkpoint directory to start the run over",
        )
    return data


def fingerprint(obj: Any) -> str:
    """Stable short hash of JSON-able data (the run's configs and scene identity)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# RNG states (as plain tensors / ints, so weights_only loading accepts them)
# ---------------------------------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": random.getstate(),
    }


def restore_cuda_rng(
    states: list[torch.Tensor] | None,
    device_count: int,
    set_state: Callable[[torch.Tensor, int], None],
) -> int:
    """Restore the saved per-GPU RNG states onto the GPUs this machine has; returns how many.

    ``torch.cuda.set_rng_state_all`` indexes a device per saved state and fails on a machine
    with fewer GPUs than the one that wrote the checkpoint (a spot restart may land on one).
    States beyond ``device_count`` are dropped: training uses one device, so only the first
    matters, and a resume on other hardware is not bit-identical anyway.
    """
    if not states or device_count <= 0:
        return 0
    n = min(len(states), device_count)
    for i in range(n):
        set_state(states[i].cpu(), i)
    return n


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") is not None and torch.cuda.is_available():
        restore_cuda_rng(
            state["cuda"],
            torch.cuda.device_count(),
            lambda s, i: torch.cuda.set_rng_state(s, device=i),
        )
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"],
         n["cached_gaussian"])
    )  # fmt: skip
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
