"""A small copy of this project's pipeline, for tests that run it for real (DVC, the job runner).

The copy holds what ``dvc repro`` needs and nothing it produces: no dvc.lock, metrics or data.
Its built-in scene is smaller and its training shorter. Those edits go into conf/, not
params.yaml, so that every later composition (``dvc exp run -S``, a remote job) keeps them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

SMALL_SOURCE = "synthetic://blocks?views=24&width=240&height=180&seed=0"
PIPELINE_FILES = (
    "dvc.yaml",
    "hardware.yaml",
    ".dvcignore",
    ".gitignore",
    "conf",
    "stages",
    "src",
    "scripts",
    "benchmarks",
    "containers",
    "pyproject.toml",
    "tools",  # npm lockfiles: the report stage depends on the viewer's, built or not
)
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "node_modules")


def copy_project(repo_root: Path, dst: Path, *, max_steps: int, source: str = SMALL_SOURCE) -> Path:
    """Copy the pipeline into ``dst`` (created), with the built-in scene at ``source`` and
    ``max_steps`` training steps; compose params.yaml and record this machine's hardware.yaml
    (as ``make demo`` does), both with this interpreter. Returns ``dst``; git is left to the
    caller."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in PIPELINE_FILES:
        src = repo_root / name
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=_IGNORE)
        else:
            shutil.copy2(src, dst / name)
    (dst / ".dvc").mkdir()
    for name in ("config", ".gitignore"):
        shutil.copy2(repo_root / ".dvc" / name, dst / ".dvc" / name)
    bench = dst / "conf" / "benchmark" / "synthetic.yaml"
    text, count = re.subn(r"synthetic://blocks\?[^\s\"']+", source, bench.read_text())
    assert count == 1, f"{bench}: expected one built-in scene source"
    bench.write_text(text)
    train = dst / "conf" / "train" / "synthetic.yaml"
    text, count = re.subn(r"\nmax_steps: \d+", f"\nmax_steps: {max_steps}", train.read_text())
    assert count == 1, f"{train}: expected one max_steps"
    train.write_text(text)
    bin_dir = Path(sys.executable).parent
    for args in (
        [sys.executable, "scripts/compose_params.py"],
        [str(bin_dir / "splatbench"), "hardware"],
    ):
        subprocess.run(args, cwd=dst, check=True, capture_output=True, text=True)
    return dst
