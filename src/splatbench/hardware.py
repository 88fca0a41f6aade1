"""The machine a pipeline ran on, as a DVC input: ``hardware.yaml``.

``train.backend`` and ``eval.render_backend`` default to ``auto``, which becomes ``gsplat``
(CUDA) or ``torch`` (CPU) at run time. Params alone therefore say ``auto`` on every machine,
and DVC would consider CPU results up to date on a GPU box (and the reverse). ``hardware.yaml``
records what ``auto`` resolves to; the train and evaluate stages list it as a params file, so:

* moving the pipeline to other hardware and running ``splatbench hardware`` (``make demo`` and
  the container entrypoint do) changes the file, and ``dvc repro`` re-runs train and evaluate;
* on one machine the file stays byte-identical, so a second ``dvc repro`` runs nothing;
* the file is committed with the results it produced, so results fetched from another machine
  (``dvc pull`` of a SageMaker experiment, say) come with the hardware.yaml that made them and
  ``dvc status`` is clean, with no always-changed stage;
* a stage whose ``auto`` would resolve differently from the file refuses to run (with the fix)
  instead of recording results under the wrong hardware.

Only the backend and the device kind are recorded, not the GPU or CPU model: those do not change
which code runs, and keying results on them would re-train on every developer's machine. The
model names go into train.json / eval.json (:func:`device_name`).
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from splatbench.errors import ConfigError
from splatbench.fsutil import atomic_write_text

HARDWARE_FILE = Path("hardware.yaml")
SECTION = "hardware"
_HEADER = """\
# Written by `splatbench hardware` (make demo and the container entrypoint run it): what the
# `auto` backend (train.backend, eval.render_backend) resolves to on the machine that ran the
# pipeline. The train and evaluate stages list it as DVC params, so moving to other hardware
# re-runs them. Commit it with the results it produced; never edit it by hand.
"""


@dataclass(frozen=True)
class Hardware:
    """What ``auto`` means on a machine: ``auto_backend`` ``torch`` | ``gsplat`` and the device
    kind it renders on, ``cpu`` | ``cuda``."""

    auto_backend: str
    device: str

    def as_dict(self) -> dict[str, str]:
        return {"auto_backend": self.auto_backend, "device": self.device}


def detect() -> Hardware:
    """This machine's :class:`Hardware` (probes gsplat's kernels once per process)."""
    from splatbench.render import resolve_backend

    backend = resolve_backend("auto")
    return Hardware(backend, "cuda" if backend == "gsplat" else "cpu")


def render_yaml(hw: Hardware) -> str:
    return _HEADER + yaml.safe_dump({SECTION: hw.as_dict()}, sort_keys=False)


def read_hardware(path: Path = HARDWARE_FILE) -> Hardware:
    """Read ``path``.

    Raises:
        ConfigError: the file is missing or malformed (naming it and the command that writes it).
    """
    path = Path(path)
    fix = "run `splatbench hardware` in the project root to write it (then commit it)"
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} not found: the train and evaluate stages need it to know "
                          "what backend `auto` means here", fix=fix) from None  # fmt: skip
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})", fix=fix) from exc
    section = doc.get(SECTION) if isinstance(doc, dict) else None
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: no '{SECTION}' mapping", fix=fix)
    backend, device = section.get("auto_backend"), section.get("device")
    if backend not in ("torch", "gsplat") or device not in ("cpu", "cuda"):
        raise ConfigError(
            f"{path}: {SECTION}.auto_backend={backend!r}, {SECTION}.device={device!r}; expected "
            "torch/cpu or gsplat/cuda",
            fix=fix,
        )
    return Hardware(backend, device)


def write_hardware(path: Path = HARDWARE_FILE, hw: Hardware | None = None) -> tuple[Hardware, bool]:
    """Write this machine's hardware (or ``hw``) to ``path``; returns it and whether the file
    changed. An unchanged file is not rewritten (its bytes, which DVC hashes, stay the same)."""
    path = Path(path)
    hw = hw or detect()
    text = render_yaml(hw)
    try:
        if path.read_text(encoding="utf-8") == text:
            return hw, False
    except OSError:
        pass
    atomic_write_text(path, text)
    return hw, True


def check_hardware(requested: str, path: Path = HARDWARE_FILE, here: Hardware | None = None) -> str:
    """The concrete backend for a stage whose config asks for ``requested``.

    For ``auto`` the recorded hardware must be what ``auto`` resolves to here: otherwise the
    results would be recorded under hardware that did not produce them. Explicit backends need
    no file.

    Raises:
        ConfigError: the file is missing, or records other hardware than this machine's.
    """
    if requested != "auto":
        return requested
    recorded = read_hardware(path)
    here = here or detect()
    if recorded != here:
        raise ConfigError(
            f"{path} records backend `auto` = {recorded.auto_backend} on {recorded.device}, "
            f"but on this machine `auto` is {here.auto_backend} on {here.device}",
            fix=f"run `splatbench hardware` to record this machine (dvc repro then re-runs "
            f"train and evaluate here), or set train.backend / eval.render_backend to "
            f"{recorded.auto_backend} explicitly to reproduce the recorded run",
        )
    return here.auto_backend


def device_name(device: torch.device | str) -> str:
    """Human-readable device: the GPU model (``NVIDIA A10G``) or the CPU model, core count and
    torch threads."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model} ({os.cpu_count()} logical CPUs, torch threads {torch.get_num_threads()})"


def describe(device: torch.device | str) -> dict[str, Any]:
    """Device facts for metrics files: kind, model name, and for CUDA the capability."""
    device = torch.device(device)
    out: dict[str, Any] = {"type": device.type, "name": device_name(device)}
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        out["capability"] = f"{major}.{minor}"
        out["cuda"] = torch.version.cuda
    return out
