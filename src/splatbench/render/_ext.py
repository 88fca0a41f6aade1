"""Build-on-first-use loader for the C++ extension (``csrc/rasterize.cpp`` + ``csrc/geometry.cpp``).

One extension holds the tile rasterizer and the fused projection / SH kernels; its two
translation units compile in parallel under ninja (``geometry.cpp`` includes only ATen headers,
which keeps its share of the first-use build short).

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

CSRC = Path(__file__).resolve().parent / "csrc"
SOURCE = CSRC / "rasterize.cpp"  # holds the module definition
SOURCES = (SOURCE, CSRC / "geometry.cpp")
# torch's rebuild check hashes the sources only; the header is hashed in through the flags.
HEADERS = (CSRC / "geometry.h",)
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
        f"cannot build the CPU rasterizer ({_source_names()}) with compiler {compiler!r}; "
        f"the build reported:\n{tail}",
        fix=(
            "check that the compiler supports C++17 and matches torch's ABI; the build files are "
            f"in {_safe_cache_dir()} (delete that folder to force a clean rebuild), or use "
            "backend='torch_reference'"
        ),
    )


def _source_names() -> str:
    return ", ".join(p.name for p in SOURCES)


def _safe_cache_dir() -> str:
    try:
        return str(staged_build()[0])
    except Exception:  # the error message must not fail itself
        return "$TORCH_EXTENSIONS_DIR or ~/.cache/torch_extensions"


def _headers_tag() -> str:
    """A no-op define carrying the headers' hash, so editing a header triggers a rebuild."""
    import hashlib

    digest = hashlib.sha1(b"".join(h.read_bytes() for h in HEADERS)).hexdigest()[:12]
    return f"-DSPLATBENCH_HEADERS_{digest}"


def staged_build() -> tuple[Path, list[Path]]:
    """``(build directory, sources)``: a copy of the sources in a directory named by their content.

    torch's build files name the sources by absolute path, and its default build directory by
    the extension's name only. The same sources in another checkout (a SageMaker job's code
    channel, a test's project copy, another clone) would rebuild the extension (about a
    minute), and different sources would evict each other's build. Keyed by content, every
    checkout with identical sources shares one build and other versions keep their own.
    """
    import hashlib
    import tempfile

    files = sorted(p for p in CSRC.iterdir() if p.suffix in (".cpp", ".h"))
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    root = extension_cache_dir().parent
    build = root / f"{EXTENSION_NAME}-{digest.hexdigest()[:16]}"
    sources = build / "src"
    if not sources.is_dir():
        build.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".src-", dir=build))
        for path in files:
            shutil.copy2(path, tmp / path.name)
        try:
            os.replace(tmp, sources)
        except OSError:  # another process staged the same content first
            shutil.rmtree(tmp, ignore_errors=True)
    return build, [sources / s.name for s in SOURCES]


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
                build, sources = staged_build()
                _module = cpp_extension.load(
                    name=EXTENSION_NAME,
                    sources=[str(s) for s in sources],
                    build_directory=str(build),
                    extra_cflags=[*CFLAGS, _headers_tag()],
                    verbose=verbose,
                )
            except (RuntimeError, OSError, ImportError) as exc:
                raise _diagnose(exc) from exc
    return _module
