"""Build-on-first-use loader for the C++ rasterizer (``csrc/rasterize.cpp``).

The extension is compiled with :func:`torch.utils.cpp_extension.load` into torch's extension
cache (``$TORCH_EXTENSIONS_DIR``, default ``~/.cache/torch_extensions``); torch rebuilds it when
the source or flags change and serialises concurrent builds with a lock file. The loaded module
is the one piece of global state in :mod:`splatbench.render`.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from types import ModuleType

from splatbench.render.errors import RenderBackendError

SOURCE = Path(__file__).resolve().parent / "csrc" / "rasterize.cpp"
EXTENSION_NAME = "splatbench_rasterize_cpu"
# -O3 only: no -march=native, so a cache shared between machines never holds an illegal opcode.
CFLAGS = ["-O3", "-std=c++17", "-fno-math-errno"]

_lock = threading.Lock()
_module: ModuleType | None = None


def extension_cache_dir() -> Path:
    """Where torch keeps compiled extensions (``TORCH_EXTENSIONS_DIR`` overrides it)."""
    from torch.utils.cpp_extension import _get_build_directory

    return Path(_get_build_directory(EXTENSION_NAME, verbose=False))


def _compiler() -> str:
    return os.environ.get("CXX", "c++")


def _diagnose(exc: BaseException) -> RenderBackendError:
    """Turn a build failure into an error that names the compiler problem and the fix."""
    compiler = _compiler()
    text = str(exc)
    if shutil.which(compiler) is None:
        return RenderBackendError(
            f"cannot build the CPU rasterizer: C++ compiler {compiler!r} not found on PATH",
            fix="install g++ (Debian/Ubuntu: apt-get install g++) or set CXX to a C++17 compiler",
        )
    if "ninja" in text.lower() and shutil.which("ninja") is None:
        return RenderBackendError(
            "cannot build the CPU rasterizer: torch.utils.cpp_extension needs the 'ninja' build "
            "tool, which is not installed",
            fix="pip install ninja (into the same environment as torch)",
        )
    tail = "\n".join(text.strip().splitlines()[-25:])
    return RenderBackendError(
        f"cannot build the CPU rasterizer {SOURCE.name} with compiler {compiler!r}; "
        f"the build reported:\n{tail}",
        fix=(
            "check that the compiler supports C++17 and matches torch's ABI; the build files are "
            f"in {_safe_cache_dir()} (delete that folder to force a clean rebuild), or use "
            "backend='torch_reference'"
        ),
    )


def _safe_cache_dir() -> str:
    try:
        return str(extension_cache_dir())
    except Exception:  # the error message must not fail itself
        return "$TORCH_EXTENSIONS_DIR or ~/.cache/torch_extensions"


def load_extension(verbose: bool = False) -> ModuleType:
    """Return the compiled rasterizer, building it on first use (about a minute on 2 cores).

    Raises:
        RenderBackendError: the compiler or ninja is missing, or compilation failed.
    """
    global _module
    if _module is not None:
        return _module
    with _lock:
        if _module is None:
            from torch.utils import cpp_extension

            try:
                _module = cpp_extension.load(
                    name=EXTENSION_NAME,
                    sources=[str(SOURCE)],
                    extra_cflags=CFLAGS,
                    verbose=verbose,
                )
            except (RuntimeError, OSError, ImportError) as exc:
                raise _diagnose(exc) from exc
    return _module
