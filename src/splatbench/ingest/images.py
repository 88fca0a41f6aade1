"""Find a scene's images and check that every one of them decodes."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageFile

from splatbench.errors import ImageError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})


@dataclass(frozen=True)
class ImageInfo:
    """A decoded image: ``path`` relative to the image directory (posix), size in pixels."""

    path: str
    width: int
    height: int


def find_images(image_dir: Path) -> list[Path]:
    """Image files (png/jpg/jpeg, any case) under ``image_dir``, recursively, sorted.

    Hidden files are skipped: macOS zips carry ``._IMG_0001.JPG`` resource forks that are not
    images, and nothing legitimate in a capture starts with a dot.
    """
    image_dir = Path(image_dir)
    found = []
    for path in image_dir.rglob("*"):
        rel = path.relative_to(image_dir)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            found.append(path)
    return sorted(found, key=lambda p: p.relative_to(image_dir).as_posix())


@contextlib.contextmanager
def _strict_decoding() -> Iterator[None]:
    """Make Pillow refuse truncated files even if the process set LOAD_TRUNCATED_IMAGES.

    That flag is global; with it set, ``load()`` silently pads a truncated image with grey.
    """
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            # A decompression-bomb-sized image should fail loudly, not just warn.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def check_image(path: Path) -> tuple[int, int]:
    """Fully decode ``path``; return ``(width, height)``. Raises on any decoding problem."""
    # verify() reads every chunk and checks PNG CRCs (catching damage load() tolerates, such as
    # a missing IEND); it leaves the image unusable, so the file is opened again to decode.
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        im.load()
        return int(im.width), int(im.height)


def verify_images(
    paths: Sequence[Path],
    image_dir: Path,
    on_image: Callable[[Path], None] | None = None,
    where: str | None = None,
) -> list[ImageInfo]:
    """Decode every image; return their sizes in the order given.

    ``where`` names the images' origin in errors (e.g. the source URI) when ``image_dir`` is a
    temporary directory the user never sees.

    Raises:
        ImageError: listing every file that failed, each with its reason.
    """
    infos: list[ImageInfo] = []
    failures: list[str] = []
    with _strict_decoding():
        for path in paths:
            rel = Path(path).relative_to(image_dir).as_posix()
            try:
                width, height = check_image(path)
            # Pillow raises many exception types for bad data; report every one of them.
            except Exception as exc:
                # Pillow's messages repeat the (possibly temporary) absolute path; drop it.
                reason = (str(exc) or type(exc).__name__).replace(f" '{path}'", "")
                failures.append(f"  {rel}: {reason}")
            else:
                infos.append(ImageInfo(rel, width, height))
            if on_image is not None:
                on_image(path)
    if failures:
        raise ImageError(
            f"{len(failures)} of {len(paths)} images in {where or image_dir} cannot be decoded:\n"
            + "\n".join(failures),
            fix="replace or remove these files in the source and ingest again",
        )
    return infos
