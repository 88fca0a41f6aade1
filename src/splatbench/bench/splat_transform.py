"""PlayCanvas ``splat-transform`` (npm), the reference tool for SOG and SPZ files.

splatbench writes both formats with its own code; this module provides the real reader and the
peer encoder they are checked and benchmarked against. The version is pinned by the committed
lockfile ``tools/splat-transform/package-lock.json`` (``@playcanvas/splat-transform`` 3.7.0,
whose SPZ path is Niantic's C++ library compiled to WebAssembly, ``@adobe/spz``).

:func:`ensure_splat_transform` installs it once with ``npm ci --ignore-scripts`` into a cache
directory keyed by the lockfile's hash (``$SPLATBENCH_TOOLS_DIR`` or
``~/.cache/splatbench/tools``), built aside and renamed into place, so concurrent or
interrupted installs never leave a half-installed tool. Needs ``node`` >= 18 and ``npm``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from splatbench.errors import SplatbenchError

VERSION = "3.7.0"
PACKAGE = "@playcanvas/splat-transform"
#: The committed npm project that pins the tool (package.json + package-lock.json).
TOOL_DIR = Path(__file__).resolve().parents[3] / "tools" / "splat-transform"
INSTALL_TIMEOUT_S = 600


class SplatTransformError(SplatbenchError):
    """splat-transform is unavailable (no npm, registry unreachable) or a conversion failed."""


def tools_root() -> Path:
    """Where downloaded tools live: ``$SPLATBENCH_TOOLS_DIR`` or ``~/.cache/splatbench/tools``."""
    env = os.environ.get("SPLATBENCH_TOOLS_DIR")
    return Path(env) if env else Path.home() / ".cache" / "splatbench" / "tools"


def _lock_key(project: Path) -> str:
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((project / name).read_bytes())
    return digest.hexdigest()[:16]


def install_dir(project: Path = TOOL_DIR) -> Path:
    return tools_root() / f"splat-transform-{VERSION}-{_lock_key(project)}"


def cli_path(root: Path) -> Path:
    return root / "node_modules" / ".bin" / "splat-transform"


def find_splat_transform(project: Path = TOOL_DIR) -> Path | None:
    """The installed CLI, or None."""
    cli = cli_path(install_dir(project))
    return cli if cli.is_file() else None


def ensure_splat_transform(project: Path = TOOL_DIR, timeout: float = INSTALL_TIMEOUT_S) -> Path:
    """The ``splat-transform`` CLI, installing it from npm on first use.

    Raises:
        SplatTransformError: no ``npm``/``node``, or ``npm ci`` failed (registry unreachable):
            the message carries npm's last output lines.
    """
    found = find_splat_transform(project)
    if found:
        return found
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise SplatTransformError(
            "splat-transform needs node and npm, which are not on PATH",
            fix="install Node.js >= 18 (e.g. apt-get install nodejs npm)",
        )
    final = install_dir(project)
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".install-", dir=final.parent) as tmp:
        work = Path(tmp) / "pkg"
        work.mkdir()
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(project / name, work / name)
        cmd = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
        try:
            proc = subprocess.run(
                cmd, cwd=work, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise SplatTransformError(
                f"`npm ci` for {PACKAGE}@{VERSION} did not finish in {timeout:.0f} s",
                fix="check that the npm registry is reachable (npm ping)",
            ) from exc
        if proc.returncode != 0 or not cli_path(work).is_file():
            tail = (proc.stdout + proc.stderr).strip()[-800:]
            raise SplatTransformError(
                f"`npm ci` for {PACKAGE}@{VERSION} failed (exit {proc.returncode}): {tail}",
                fix="check that the npm registry is reachable (npm ping), or set "
                "SPLATBENCH_TOOLS_DIR to a writable directory",
            )
        try:
            work.rename(final)
        except OSError:
            if not cli_path(final).is_file():  # not a concurrent install that won the race
                raise
    return cli_path(final)


def run_splat_transform(
    cli: Path, args: Sequence[str | Path], *, timeout: float = 3600
) -> subprocess.CompletedProcess[str]:
    """Run ``splat-transform -w ARGS`` (overwriting outputs); raise on a non-zero exit.

    Raises:
        SplatTransformError: the tool rejected the input or failed; the message has its output.
    """
    cmd = [str(cli), "-w", "--no-tty", *map(str, args)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise SplatTransformError(
            f"splat-transform {' '.join(map(str, args))} did not finish in {timeout:.0f} s"
        ) from exc
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip()[-1500:]
        raise SplatTransformError(
            f"splat-transform {' '.join(map(str, args))} failed (exit {proc.returncode}): {tail}"
        )
    return proc
