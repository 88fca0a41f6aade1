"""``splatbench add-scene``: bring your own scene into a benchmark config that runs at once.

A local folder of photos or a local archive is copied under ``data/sources/<name>`` and tracked
with ``dvc add``: the benchmark then names it by a repo-relative path, so the project stays
portable. A path outside the repo would break on another machine, and an untracked copy would be
missing from the temporary workspaces of ``dvc exp run --queue`` and from remote jobs, which see
only git-tracked and DVC-tracked files (``dvc push`` sends the photos to the DVC remote).
``s3://`` and ``https://`` sources are referenced as they are (the ingest stage fetches them).

The benchmark file ``conf/benchmark/<benchmark>.yaml`` is created or extended (comments kept,
written atomically). A benchmark without ``conf/train/<benchmark>.yaml`` trains with
train/default, which the command says.
"""

from __future__ import annotations

import io
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from splatbench.errors import ConfigError, SourceError
from splatbench.fsutil import atomic_write_text
from splatbench.ingest.images import IMAGE_SUFFIXES

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
SOURCES_DIR = Path("data/sources")
REMOTE_SCHEMES = ("s3://", "https://", "http://")
# 3DGS's own rule: images wider than 1.6K pixels are downscaled for training.
MAX_WIDTH = 1600


@dataclass(frozen=True)
class AddedScene:
    """What ``add-scene`` did."""

    name: str
    benchmark: str
    source: str  # as written into the benchmark config
    image_dir: str
    downscale: int
    config: Path
    created: bool  # the benchmark file is new
    changed: bool  # False: the scene was already there with this source
    copied: Path | None  # data/sources/<name>[.zip] when a local source was copied


def check_name(name: str, what: str) -> str:
    """Scene and benchmark names become directory names and Hydra option names."""
    if not NAME.match(name):
        raise ConfigError(
            f"{what} name {name!r} must be lowercase letters, digits, - or _ (start with a "
            "letter or digit, at most 64 characters)",
            fix=f"e.g. --{'name' if what == 'scene' else 'benchmark'} my_garden",
        )
    return name


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _downscale_for(image: Path | bytes) -> int:
    """The power of two that brings the width to at most MAX_WIDTH."""
    from PIL import Image

    with Image.open(io.BytesIO(image) if isinstance(image, bytes) else image) as im:
        width = im.size[0]
    factor = 1
    while width / factor > MAX_WIDTH:
        factor *= 2
    return factor


def _copy_folder(folder: Path, dest: Path) -> tuple[str, int]:
    """Copy a folder of photos (flat, or with an images/ subfolder) to ``dest``."""
    if (folder / "images").is_dir():
        images = _images_in(folder / "images")
        layout = "images"
    else:
        images = _images_in(folder)
        layout = ""
    if len(images) < 3:
        raise SourceError(
            f"{folder} holds {len(images)} photos ({', '.join(sorted(IMAGE_SUFFIXES))}) "
            f"{'in images/' if layout else 'at its top level'}; structure from motion needs "
            "at least 3 overlapping views (dozens in practice)",
            fix="point SOURCE at the folder of photos (or a folder with an images/ subfolder)",
        )
    staging = dest.with_name(f".{dest.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "images").mkdir(parents=True)
    for img in images:
        shutil.copy2(img, staging / "images" / img.name)
    for extra in folder.iterdir():  # licence files travel with the photos (into the manifest)
        if extra.is_file() and extra.name.lower().startswith(("license", "licence", "copying")):
            shutil.copy2(extra, staging / extra.name)
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)
    return "images", _downscale_for(images[0])


def _zip_layout(archive: Path) -> tuple[str, int]:
    """image_dir inside a zip: the photos' folder, at the root or in one top-level folder."""
    try:
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if Path(n).suffix.lower() in IMAGE_SUFFIXES]
            if len(names) < 3:
                raise SourceError(
                    f"{archive} holds {len(names)} photos; structure from motion needs at least 3",
                    fix="zip the folder of photos",
                )
            first = sorted(names)[0]
            factor = _downscale_for(zf.read(first))
    except zipfile.BadZipFile as exc:
        raise SourceError(f"{archive} is not a valid zip file ({exc})", fix="re-create it") from exc
    parents = {str(Path(n).parent) for n in names}
    if len(parents) != 1:
        raise SourceError(
            f"{archive}: photos lie in several folders ({', '.join(sorted(parents))})",
            fix="zip one folder of photos",
        )
    parent = Path(parents.pop())
    # the ingest stage looks for image_dir at the root or inside a single top-level folder
    image_dir = parent.name if len(parent.parts) <= 2 and parent.name else "."
    if len(parent.parts) > 2:
        raise SourceError(
            f"{archive}: photos are nested too deep ({parent})",
            fix="zip the folder of photos itself",
        )
    return image_dir, factor


def stage_source(root: Path, source: str, name: str) -> tuple[str, str, int, Path | None]:
    """Make SOURCE usable by the pipeline: (source for the config, image_dir, downscale, copy)."""
    if source.startswith(REMOTE_SCHEMES):
        from splatbench.ingest.sources import resolve_source

        resolve_source(source)  # validates the URL (bucket, host) with the ingest's own rules
        return source, "images", 1, None
    if "://" in source and not source.startswith("file://"):
        raise SourceError(
            f"source {source!r}: unsupported scheme",
            fix="use a folder, a .zip, s3://bucket/prefix/ or https://host/file.zip",
        )
    path = Path(source.removeprefix("file://")).expanduser()
    if not path.exists():
        raise SourceError(f"source {path} does not exist", fix="check the path")
    dest_dir = root / SOURCES_DIR
    dest_dir.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        dest = dest_dir / name
        if path.resolve() != dest.resolve():
            image_dir, factor = _copy_folder(path, dest)
        else:
            image_dir, factor = "images", _downscale_for(_images_in(dest / "images")[0])
    elif path.suffix.lower() == ".zip":
        dest = dest_dir / f"{name}.zip"
        image_dir, factor = _zip_layout(path)
        if path.resolve() != dest.resolve():
            shutil.copy2(path, dest)
    else:
        raise SourceError(
            f"source {path} is neither a folder nor a .zip",
            fix="give a folder of photos or a .zip of one",
        )
    return dest.relative_to(root).as_posix(), image_dir, factor, dest


def dvc_track(root: Path, path: Path) -> None:
    """``dvc add`` the copied source (DVC's Python API) so queued and remote runs get it."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        repo.add([str(path.resolve())])


def _yaml():
    from ruamel.yaml import YAML

    y = YAML()  # round trip: the benchmark file's comments survive
    y.indent(mapping=2, sequence=4, offset=2)
    return y


NEW_BENCHMARK = """\
# Scenes added with `splatbench add-scene` (photos under data/sources/, tracked with DVC; or
# s3:// / https:// sources). Run it: `dvc exp run -S benchmark={name}`.
# No conf/train/{name}.yaml: training uses train/default (the 3DGS paper's 30k-step protocol).
name: {name}
dataset: {name}
description: Your own scenes (splatbench add-scene)
scenes: []
# Settings shared by every scene; scene_settings.<scene> overrides them.
scene_defaults:
  source: null
  image_dir: images
  downscale: 1
scene_settings: {{}}
# Every 8th view (sorted by name) is a test view, as in the 3DGS papers.
split:
  rule: every_nth
  every: 8
  offset: 0
reference: null
"""


def add_scene_to_config(
    config: Path, benchmark: str, name: str, entry: dict[str, Any]
) -> tuple[bool, bool]:
    """Create or extend the benchmark file; returns (created, changed).

    Raises ConfigError when the scene exists with another source.
    """
    y = _yaml()
    created = not config.is_file()
    text = NEW_BENCHMARK.format(name=benchmark) if created else config.read_text(encoding="utf-8")
    doc = y.load(text)
    scenes = doc.setdefault("scenes", [])
    settings = doc.get("scene_settings")
    if settings is None:
        doc["scene_settings"] = settings = {}
    if name in scenes:
        old = dict(settings.get(name) or {})
        if old == entry:
            return created, False
        raise ConfigError(
            f"{config}: scene {name!r} is already there with {old}",
            fix=f"pick another --name, or remove {name} from scenes and scene_settings first",
        )
    scenes.append(name)
    settings[name] = entry
    buf = io.StringIO()
    y.dump(doc, buf)
    atomic_write_text(config, buf.getvalue())
    return created, True


def add_scene(
    root: Path, source: str, name: str, benchmark: str = "custom", *, downscale: int | None = None
) -> AddedScene:
    """Copy/track the source, then write the benchmark config. Validates everything first."""
    check_name(name, "scene")
    check_name(benchmark, "benchmark")
    config = root / "conf/benchmark" / f"{benchmark}.yaml"
    if config.is_file():  # fail before copying anything over an existing scene's photos
        doc = _yaml().load(config.read_text(encoding="utf-8")) or {}
        old = ((doc.get("scene_settings") or {}).get(name) or {}).get("source")
        expected = {source, (SOURCES_DIR / name).as_posix(), f"{SOURCES_DIR / name}.zip"}
        if name in (doc.get("scenes") or []) and old not in expected:
            raise ConfigError(
                f"{config}: scene {name!r} is already there with source {old!r}",
                fix=f"pick another --name, or remove {name} from scenes and scene_settings",
            )
    if downscale is not None and downscale < 1:
        raise ConfigError(f"--downscale {downscale} must be >= 1", fix="use 1, 2, 4, ...")
    ref, image_dir, factor, copied = stage_source(root, source, name)
    entry: dict[str, Any] = {"source": ref, "image_dir": image_dir}
    entry["downscale"] = downscale or factor
    created, changed = add_scene_to_config(config, benchmark, name, entry)
    if copied is not None:
        dvc_track(root, copied)
    return AddedScene(
        name, benchmark, ref, image_dir, entry["downscale"], config, created, changed, copied
    )
