"""The built-in synthetic scene: textured boxes on a textured floor inside a textured drum.

The scene is rendered by vectorised numpy ray casting from cameras on an orbit around the objects,
so the ground-truth cameras are known exactly. It is built to be easy for SfM (every surface
carries a distinct region of a real photograph, there is depth variation and vertical baseline)
and fair to 3D Gaussian Splatting (Lambertian: the only shading is a fixed per-surface factor from
a fixed light direction, so a surface point has the same colour in every view).

Geometry (world frame, z up, metres are arbitrary units):

* a square floor ``z = 0`` covering the drum,
* a drum: a vertical cylinder of radius ``BACKDROP_RADIUS`` and height ``BACKDROP_HEIGHT`` with a
  ceiling disk, seen from inside, so every ray hits a textured surface,
* ``num_boxes`` boxes standing on the floor near the origin, with seeded sizes, positions and yaw.

Textures are tiles cut from photographs that scikit-image ships in its wheel (no download). Each
surface gets a different tile, so no image content appears twice in the scene and feature
matches are unambiguous. ``LICENSE.txt`` in the scene archive names every photograph used.

Camera convention is :mod:`splatbench.scene.cameras` (COLMAP): the centre of pixel ``(row i,
column j)`` is at ``u = j + 0.5, v = i + 0.5``. With supersampling ``k`` the renderer shoots rays
through ``u = (j_k + 0.5) / k`` for the ``k x k`` sub-pixels and box-averages them, so the
average sample position of an output pixel is exactly its centre.
"""

from __future__ import annotations

import functools
import io
import math
import re
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from splatbench.errors import ConfigError
from splatbench.fsutil import atomic_write_bytes
from splatbench.scene.cameras import (
    GROUND_TRUTH_FILENAME,
    PinholeCamera,
    look_at,
    write_ground_truth,
)

# --- fixed scene layout -------------------------------------------------------------------------
BACKDROP_RADIUS = 8.0  # drum radius; cameras orbit well inside it
BACKDROP_HEIGHT = 6.0  # drum height; the ceiling disk closes it
LAYOUT_RADIUS = 1.9  # box centres lie within this radius of the origin
BOX_HALF_SIZE_RANGE = (0.35, 0.65)  # half width / half depth of a box
BOX_HEIGHT_RANGE = (0.5, 2.2)
BOX_GAP = 0.25  # minimum clearance between two boxes' bounding circles
MIN_ORBIT_CLEARANCE = 1.0  # cameras keep this distance from content and from the drum
WALL_TILES = 10  # photo tiles around the drum
FLOOR_TILES = 6  # floor is a FLOOR_TILES x FLOOR_TILES mosaic (small cells: less blur up close)
MAX_BOXES = 6
TILE_PX = 160  # photos are cut into a grid of disjoint tiles of about this many pixels
NUM_TILES = 80  # most textured tiles kept; floor + wall + ceiling + 5 faces per box need 77
BACKGROUND_RGB = (127.0, 127.0, 127.0)  # only for rays that escape (never, for valid configs)
# A fixed light direction gives a view-independent per-surface brightness (Lambertian), so faces
# of a box differ in brightness as in a photo, but no surface changes colour between views.
LIGHT_DIR = np.array([0.45, 0.3, 0.84]) / np.linalg.norm([0.45, 0.3, 0.84])
AMBIENT = 0.6
DIFFUSE = 0.4
PNG_COMPRESS_LEVEL = 6
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
ZIP_FILE_MODE = 0o100644  # regular file, rw-r--r--
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_EPS = 1e-9


# --- configuration ------------------------------------------------------------------------------
@dataclass(frozen=True)
class SyntheticSceneConfig:
    """Everything that determines the synthetic scene; equal configs give byte-identical output.

    Attributes:
        name: scene name (letters, digits, ``_ . -``), recorded in ground truth.
        num_views: number of cameras on the orbit.
        width, height: output image size in pixels.
        seed: seeds box layout and texture assignment.
        supersample: render at ``k x`` resolution and box-downsample (antialiasing).
        fov_deg: horizontal field of view in degrees (square pixels, ``fx == fy``).
        orbit_radius: horizontal distance of the cameras from the scene centre.
        elevations_deg: camera elevations above the horizontal plane through the scene centre,
            used in turn (view ``i`` uses ``elevations_deg[i % len]``); two or more values give
            SfM vertical baseline. The default 20/30 keeps neighbouring views similar enough for
            SIFT (15/35 lost views at low resolution) while the camera centres are not coplanar.
        num_boxes: number of boxes on the floor.
    """

    name: str = "blocks"
    num_views: int = 24
    width: int = 320
    height: int = 240
    seed: int = 0
    supersample: int = 2
    fov_deg: float = 60.0
    orbit_radius: float = 5.0
    elevations_deg: tuple[float, ...] = (20.0, 30.0)
    num_boxes: int = 5

    def __post_init__(self) -> None:
        _validate_config(self)

    @classmethod
    def small(cls, **overrides: Any) -> SyntheticSceneConfig:
        """The smallest config verified to register fully in pycolmap: 24 views at 240 x 180.

        Fewer views fail: with 12 views (30 degree azimuth steps plus the elevation change)
        SIFT matches between neighbours are too few for COLMAP to register every image.
        """
        return cls(**{"num_views": 24, "width": 240, "height": 180, **overrides})


def _bad(param: str, value: Any, why: str, fix: str) -> ConfigError:
    return ConfigError(f"synthetic scene: {param}={value!r} is invalid: {why}", fix=fix)


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _check_int(param: str, value: Any, lo: int, hi: int) -> None:
    if not _is_int(value) or not lo <= value <= hi:
        raise _bad(param, value, f"must be an integer in [{lo}, {hi}]", f"set {param} in range")


def _check_real(param: str, value: Any, lo: float, hi: float) -> None:
    if not _is_real(value) or not math.isfinite(value) or not lo < value < hi:
        raise _bad(param, value, f"must be a number in ({lo}, {hi})", f"set {param} in range")


def _validate_config(cfg: SyntheticSceneConfig) -> None:
    """Raise :class:`ConfigError` naming the first invalid parameter."""
    if not isinstance(cfg.name, str) or not _NAME_RE.match(cfg.name):
        raise _bad(
            "name",
            cfg.name,
            "must be a non-empty name of letters, digits, '_', '.', '-'",
            "use a name such as 'blocks'",
        )
    _check_int("num_views", cfg.num_views, 2, 1000)
    _check_int("width", cfg.width, 16, 8192)
    _check_int("height", cfg.height, 16, 8192)
    _check_int("seed", cfg.seed, 0, 2**32 - 1)
    _check_int("supersample", cfg.supersample, 1, 8)
    _check_int("num_boxes", cfg.num_boxes, 1, MAX_BOXES)
    _check_real("fov_deg", cfg.fov_deg, 10.0, 120.0)
    lo = content_radius_bound() + MIN_ORBIT_CLEARANCE
    hi = BACKDROP_RADIUS - MIN_ORBIT_CLEARANCE
    if not _is_real(cfg.orbit_radius) or not lo <= cfg.orbit_radius <= hi:
        raise _bad(
            "orbit_radius",
            cfg.orbit_radius,
            f"cameras must stay clear of the boxes and the backdrop: [{lo:.2f}, {hi:.2f}]",
            f"set orbit_radius between {lo:.2f} and {hi:.2f}",
        )
    elev = cfg.elevations_deg
    if not isinstance(elev, tuple) or not elev:
        raise _bad(
            "elevations_deg",
            elev,
            "must be a non-empty tuple of degrees",
            "e.g. elevations_deg=(20.0, 30.0)",
        )
    for e in elev:
        if not _is_real(e) or not math.isfinite(e) or not 5.0 <= e <= 75.0:
            raise _bad(
                "elevations_deg",
                elev,
                f"element {e!r} is outside [5, 75] degrees "
                "(cameras must be above the floor and not look straight down)",
                "use elevations between 5 and 75 degrees",
            )


def content_radius_bound() -> float:
    """Upper bound on the horizontal distance of any box point from the origin."""
    return LAYOUT_RADIUS + math.sqrt(2.0) * BOX_HALF_SIZE_RANGE[1]


# --- scene description --------------------------------------------------------------------------
@dataclass(frozen=True)
class Box:
    """An upright box standing on the floor.

    Attributes:
        center_xy: ``[2]`` centre of its footprint.
        half: ``[3]`` half sizes along its local x, y, z (z is vertical; it spans ``[0, 2 hz]``).
        yaw: rotation about world z in radians (local -> world).
    """

    center_xy: tuple[float, float]
    half: tuple[float, float, float]
    yaw: float

    @property
    def center(self) -> np.ndarray:
        """``[3]`` box centre in world coordinates."""
        return np.array([self.center_xy[0], self.center_xy[1], self.half[2]])

    def rotation(self) -> np.ndarray:
        """``[3, 3]`` local-to-world rotation."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])

    def corners(self) -> np.ndarray:
        """``[8, 3]`` world coordinates of the corners."""
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
        return self.center + (signs * np.asarray(self.half)) @ self.rotation().T


def layout_boxes(cfg: SyntheticSceneConfig) -> list[Box]:
    """Seeded, non-overlapping box layout (rejection sampling, deterministic from ``cfg.seed``)."""
    rng = np.random.default_rng([cfg.seed, 1])  # stream 1: geometry
    boxes: list[Box] = []
    heights = np.linspace(*BOX_HEIGHT_RANGE, cfg.num_boxes)
    rng.shuffle(heights)  # spread heights evenly so there is always depth and height variety
    for k in range(cfg.num_boxes):
        for _ in range(10_000):
            hx, hy = rng.uniform(*BOX_HALF_SIZE_RANGE, size=2)
            r = LAYOUT_RADIUS * math.sqrt(rng.uniform(0.0, 1.0))
            phi = rng.uniform(0.0, 2.0 * math.pi)
            xy = (r * math.cos(phi), r * math.sin(phi))
            rad = math.hypot(hx, hy)
            if all(
                math.dist(xy, b.center_xy) >= rad + math.hypot(b.half[0], b.half[1]) + BOX_GAP
                for b in boxes
            ):
                yaw = rng.uniform(0.0, math.pi / 2)
                boxes.append(
                    Box(
                        (float(xy[0]), float(xy[1])),
                        (float(hx), float(hy), float(heights[k]) / 2),
                        float(yaw),
                    )
                )
                break
        else:  # pragma: no cover - MAX_BOXES fit easily in the layout disk
            raise RuntimeError("could not place synthetic boxes")
    return boxes


def scene_bounds(boxes: list[Box]) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned ``([3] min, [3] max)`` of the object content (boxes; floor from z = 0)."""
    pts = np.concatenate([b.corners() for b in boxes])
    return pts.min(axis=0), pts.max(axis=0)


def make_cameras(cfg: SyntheticSceneConfig, target: np.ndarray) -> list[PinholeCamera]:
    """Cameras on a circular orbit around ``target`` ``[3]``, all looking at it.

    View ``i`` is at azimuth ``360 i / num_views`` degrees, elevation
    ``elevations_deg[i % len(elevations_deg)]``, horizontal distance ``orbit_radius``.
    """
    f = (cfg.width / 2.0) / math.tan(math.radians(cfg.fov_deg) / 2.0)
    cams = []
    for i in range(cfg.num_views):
        az = 2.0 * math.pi * i / cfg.num_views
        el = math.radians(cfg.elevations_deg[i % len(cfg.elevations_deg)])
        eye = target + np.array(
            [
                cfg.orbit_radius * math.cos(az),
                cfg.orbit_radius * math.sin(az),
                cfg.orbit_radius * math.tan(el),
            ]
        )
        R, t = look_at(eye, target, np.array([0.0, 0.0, 1.0]))
        cams.append(
            PinholeCamera(
                image=f"view_{i:03d}.png",
                width=cfg.width,
                height=cfg.height,
                fx=f,
                fy=f,
                cx=cfg.width / 2.0,
                cy=cfg.height / 2.0,
                R=R,
                t=t,
            )
        )
    return cams


# --- textures -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Photo:
    """A photograph bundled with scikit-image and what its documentation says about it."""

    loader: str  # attribute of skimage.data
    title: str
    origin: str
    license: str
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)  # applied to grayscale photos only


# Provenance and license as stated in the docstrings of the scikit-image loaders
# (skimage.data.<loader>.__doc__); the wheel's data/README.txt carries no per-image notes.
PHOTOS: tuple[Photo, ...] = (
    Photo(
        "astronaut",
        "Astronaut Eileen Collins",
        "NASA Great Images database, https://flic.kr/p/r9qvLn",
        "No known copyright restrictions, released into the public domain.",
    ),
    Photo(
        "coffee",
        "Coffee cup (courtesy of Pikolo Espresso Bar)",
        "photograph by Rachel Michetti",
        "No copyright restrictions. CC0 by the photographer (Rachel Michetti).",
    ),
    Photo(
        "chelsea",
        "Chelsea the cat",
        "photograph by Stefan van der Walt",
        "No copyright restrictions. CC0 by the photographer (Stefan van der Walt).",
    ),
    Photo(
        "rocket",
        "Launch photo of DSCOVR on Falcon 9 by SpaceX",
        "SpaceX Photos, https://www.flickr.com/photos/spacexphotos/16511594820/in/photostream/",
        "Captured by SpaceX and released in the public domain (http://arstechnica.com/"
        "tech-policy/2015/03/elon-musk-puts-spacex-photos-into-the-public-domain/).",
    ),
    Photo(
        "immunohistochemistry",
        "Immunohistochemical (IHC) staining with hematoxylin counterstaining",
        "acquired at the Center for Microscopy And Molecular Imaging (CMMI)",
        "No known copyright restrictions.",
    ),
    Photo(
        "hubble_deep_field",
        "Hubble eXtreme Deep Field",
        "HubbleSite, http://hubblesite.org/newscenter/archive/releases/2012/37/image/a/",
        "Captured by NASA and may be freely used in the public domain (http://www.nasa.gov/"
        "audience/formedia/features/MP_Photo_Guidelines.html).",
    ),
    Photo(
        "camera",
        "Gray-level 'camera' image",
        "photograph by Lav Varshney",
        "No copyright restrictions. CC0 by the photographer (Lav Varshney).",
        tint=(0.95, 0.85, 0.7),
    ),
    Photo(
        "coins",
        "Greek coins from Pompeii",
        "Brooklyn Museum Collection, "
        "https://www.brooklynmuseum.org/opencollection/archives/image/51611",
        "No known copyright restrictions.",
        tint=(0.75, 0.85, 1.0),
    ),
    Photo(
        "grass",
        "Grass",
        "DeviantArt, https://www.deviantart.com/linolafett/art/Grass-01-434853879 "
        "(cropped and converted to grayscale by scikit-image)",
        "Creative Commons CC0 License.",
        tint=(0.7, 1.0, 0.6),
    ),
    Photo(
        "gravel",
        "Gravel",
        "CC0Textures, https://cc0textures.com/view.php?tex=Gravel04 "
        "(rescaled, cropped and converted to grayscale by scikit-image)",
        "Creative Commons CC0 License.",
        tint=(0.9, 0.9, 0.8),
    ),
    Photo(
        "text",
        "Gray-level 'text' image (hand-written symbols on paper)",
        "Wikipedia, https://en.wikipedia.org/wiki/File:Corner.png",
        "No known copyright restrictions, released into the public domain.",
        tint=(1.0, 0.95, 0.8),
    ),
)


@functools.cache
def load_photo(loader: str) -> np.ndarray:
    """``[H, W, 3]`` uint8 photo from ``skimage.data``, cropped and contrast-stretched.

    Grayscale photos are tinted so that surfaces also differ in colour. The 1st-99th percentile
    stretch lifts dark photos (Hubble) to a useful contrast for SIFT.
    """
    import skimage.data  # deferred: importing skimage costs about a second

    img = np.asarray(getattr(skimage.data, loader)()).astype(np.float64)
    lo, hi = np.percentile(img, [1.0, 99.0])
    img = np.clip((img - lo) * (255.0 / max(hi - lo, 1.0)), 0.0, 255.0)
    if img.ndim == 2:
        tint = next(p.tint for p in PHOTOS if p.loader == loader)
        img = img[..., None] * np.asarray(tint)
    out = np.round(img).astype(np.uint8)
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class Tile:
    """One cell of a photo cut into a grid of ``TILE_PX``-sized cells: ``pixels [h, w, 3]``."""

    loader: str
    row: int
    col: int
    score: float  # mean absolute intensity gradient, a proxy for how many features it yields
    pixels: np.ndarray


def _texture_score(img: np.ndarray) -> float:
    g = img.astype(np.float64).mean(axis=2)
    return float(np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean())


@functools.lru_cache(maxsize=1)
def texture_tiles() -> tuple[Tile, ...]:
    """The ``NUM_TILES`` most textured grid cells of all photos, in a fixed order.

    Cells are disjoint, so no image content is used twice; weak cells (empty sky, blurred
    background) are dropped because SIFT finds little on them.
    """
    tiles = []
    for p in PHOTOS:
        img = load_photo(p.loader)
        rows = max(1, round(img.shape[0] / TILE_PX))
        cols = max(1, round(img.shape[1] / TILE_PX))
        h, w = img.shape[0] // rows, img.shape[1] // cols
        for r in range(rows):
            for c in range(cols):
                px = img[r * h : (r + 1) * h, c * w : (c + 1) * w]
                tiles.append(Tile(p.loader, r, c, _texture_score(px), px))
    # Stable sort with a full key: the selection does not depend on float ties.
    tiles.sort(key=lambda t: (-round(t.score, 6), t.loader, t.row, t.col))
    return tuple(tiles[:NUM_TILES])


def resize_rgb(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """``[H, W, 3]`` uint8 -> ``[height, width, 3]`` uint8, Lanczos (antialiased when shrinking)."""
    if img.shape[1] == width and img.shape[0] == height:
        return np.ascontiguousarray(img)
    pil = Image.fromarray(np.ascontiguousarray(img)).resize(
        (width, height), Image.Resampling.LANCZOS
    )
    return np.asarray(pil)


@dataclass
class TextureAtlas:
    """All surface textures flattened into one array, so shading is one vectorised gather.

    Attributes:
        texels: ``[N, 3]`` uint8 texels of every texture, row-major, concatenated (uint8 keeps
            the random-access gathers cache-friendly).
        offset, width, height: ``[S]`` int64 per texture.
    """

    texels: np.ndarray
    offset: np.ndarray
    width: np.ndarray
    height: np.ndarray

    @classmethod
    def build(cls, textures: list[np.ndarray]) -> TextureAtlas:
        sizes = [t.shape[0] * t.shape[1] for t in textures]
        offset = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        texels = np.concatenate([t.reshape(-1, 3) for t in textures]).astype(np.uint8)
        return cls(
            texels=texels,
            offset=offset,
            width=np.array([t.shape[1] for t in textures], dtype=np.int64),
            height=np.array([t.shape[0] for t in textures], dtype=np.int64),
        )

    def sample(self, tex: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Bilinear lookup: ``[N]`` texture ids, ``[N]`` u, v in ``[0, 1]`` -> ``[N, 3]`` float.

        ``u`` runs left to right, ``v`` top to bottom; texel centres are at ``(k + 0.5) / size``
        and lookups clamp at the texture border (no wrap, so no bleeding between textures).
        """
        w, h, off = self.width[tex], self.height[tex], self.offset[tex]
        x = np.clip(u * w - 0.5, 0.0, w - 1.0)
        y = np.clip(v * h - 0.5, 0.0, h - 1.0)
        x0 = np.floor(x).astype(np.int64)
        y0 = np.floor(y).astype(np.int64)
        x1 = np.minimum(x0 + 1, w - 1)
        y1 = np.minimum(y0 + 1, h - 1)
        ax = (x - x0)[:, None]
        ay = (y - y0)[:, None]

        def at(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
            return self.texels[off + yy * w + xx].astype(np.float32)

        top = at(y0, x0) * (1.0 - ax) + at(y0, x1) * ax
        bot = at(y1, x0) * (1.0 - ax) + at(y1, x1) * ax
        return top * (1.0 - ay) + bot * ay


# --- surfaces -----------------------------------------------------------------------------------
# Surface ids: 0 floor, 1 drum wall, 2 ceiling, 3 + 6 b + f for face f of box b.
# Box faces f = 2 * axis + (sign > 0): 0 -x, 1 +x, 2 -y, 3 +y, 4 bottom, 5 top (local frame).
FLOOR, WALL, CEILING, FIRST_BOX_SURFACE = 0, 1, 2, 3
_UP = np.array([0.0, 0.0, 1.0])


def _face_axes(face: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local ``(normal, right, down)`` unit vectors of a box face, as seen from outside.

    Right/down are chosen so a photo reads unmirrored and upright on side faces.
    """
    axis, sign = divmod(face, 2)
    n = np.zeros(3)
    n[axis] = 1.0 if sign else -1.0
    if axis < 2:
        right, down = np.cross(_UP, n), -_UP
    elif sign:  # top face, seen from above: image top towards local +y
        right, down = np.array([1.0, 0.0, 0.0]), np.array([0.0, -1.0, 0.0])
    else:
        right, down = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    return n, right, down


def _shade(normal_world: np.ndarray) -> float:
    return AMBIENT + DIFFUSE * max(0.0, float(normal_world @ LIGHT_DIR))


@dataclass
class SceneModel:
    """Geometry plus per-surface texture ids and shading, everything the ray caster needs."""

    boxes: list[Box]
    atlas: TextureAtlas
    surface_texture: np.ndarray  # [S] int64 texture id per surface
    surface_shade: np.ndarray  # [S] float32 brightness factor per surface
    photos_used: tuple[str, ...] = field(default_factory=tuple)


def _density(cfg: SyntheticSceneConfig) -> float:
    """Texels per world unit: about one texel per supersampled pixel at the orbit distance.

    Textures finer than this only alias; they are shrunk (antialiased) once, up front.
    """
    f = (cfg.width / 2.0) / math.tan(math.radians(cfg.fov_deg) / 2.0)
    return f * cfg.supersample / cfg.orbit_radius


def build_scene_model(cfg: SyntheticSceneConfig) -> SceneModel:
    """Lay out the boxes and assign a distinct photo tile to every visible surface."""
    boxes = layout_boxes(cfg)
    rng = np.random.default_rng([cfg.seed, 2])  # stream 2: texture assignment
    pool = texture_tiles()
    tiles = iter(pool[i] for i in rng.permutation(len(pool)))
    used: set[str] = set()

    def take() -> np.ndarray:
        tile = next(tiles)
        used.add(tile.loader)
        return tile.pixels

    dens = _density(cfg)
    textures: list[np.ndarray] = []
    surf_tex: list[int] = []
    surf_shade: list[float] = []

    def add(tex: np.ndarray, normal: np.ndarray) -> None:
        surf_tex.append(len(textures))
        textures.append(tex)
        surf_shade.append(_shade(normal))

    # Floor: a mosaic of tiles, each cell at a common size (upsampling small tiles is harmless).
    cell_units = 2.0 * BACKDROP_RADIUS / FLOOR_TILES
    cells = [take() for _ in range(FLOOR_TILES * FLOOR_TILES)]
    c = int(min(math.ceil(cell_units * dens), max(max(t.shape[:2]) for t in cells)))
    rows = [
        np.concatenate(
            [resize_rgb(cells[r * FLOOR_TILES + k], c, c) for k in range(FLOOR_TILES)], axis=1
        )
        for r in range(FLOOR_TILES)
    ]
    add(np.concatenate(rows, axis=0), _UP)

    # Drum wall: a panorama of tiles; normals vary around the drum, so its shading is baked
    # per texel column (still view-independent).
    wall_w_units = 2.0 * math.pi * BACKDROP_RADIUS / WALL_TILES
    panels = [take() for _ in range(WALL_TILES)]
    ph = int(min(math.ceil(BACKDROP_HEIGHT * dens), max(p.shape[0] for p in panels)))
    pw = max(2, round(ph * wall_w_units / BACKDROP_HEIGHT))
    pano = np.concatenate([resize_rgb(p, pw, ph) for p in panels], axis=1).astype(np.float64)
    # Texture column k sits at angle phi = 2 pi (1 - (k + 0.5) / W): see _hit_wall.
    phi = 2.0 * math.pi * (1.0 - (np.arange(pano.shape[1]) + 0.5) / pano.shape[1])
    inward = -np.stack([np.cos(phi), np.sin(phi), np.zeros_like(phi)], axis=1)
    col_shade = AMBIENT + DIFFUSE * np.maximum(0.0, inward @ LIGHT_DIR)
    pano = np.round(np.clip(pano * col_shade[None, :, None], 0, 255)).astype(np.uint8)
    surf_tex.append(len(textures))
    textures.append(pano)
    surf_shade.append(1.0)

    # Ceiling disk, seen from below.
    ceil_tile = take()
    cs = int(min(math.ceil(2.0 * BACKDROP_RADIUS * dens), max(ceil_tile.shape[:2])))
    add(resize_rgb(ceil_tile, cs, cs), -_UP)

    # Boxes: five visible faces get a tile each, rotated by a seeded multiple of 90 degrees.
    flat = np.full((1, 1, 3), 110, dtype=np.uint8)
    for box in boxes:
        rot = box.rotation()
        for face in range(6):
            n, right, down = _face_axes(face)
            if face == 4:  # bottom: stands on the floor, never visible
                add(flat, rot @ n)
                continue
            tile = np.rot90(take(), k=int(rng.integers(4)))
            w_units = 2.0 * float(np.abs(right) @ np.asarray(box.half))
            h_units = 2.0 * float(np.abs(down) @ np.asarray(box.half))
            tw = int(min(math.ceil(w_units * dens), tile.shape[1]))
            th = int(min(math.ceil(h_units * dens), tile.shape[0]))
            add(resize_rgb(tile, max(tw, 2), max(th, 2)), rot @ n)

    return SceneModel(
        boxes=boxes,
        atlas=TextureAtlas.build(textures),
        surface_texture=np.array(surf_tex, dtype=np.int64),
        surface_shade=np.array(surf_shade, dtype=np.float32),
        photos_used=tuple(p.loader for p in PHOTOS if p.loader in used),
    )


# --- ray casting --------------------------------------------------------------------------------
def camera_rays(cam: PinholeCamera, supersample: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """World-space rays through sub-pixel centres.

    Returns ``(origin [3], directions [H*k, W*k, 3])`` (directions not normalised: camera-z
    component 1, so the ray parameter is depth). Sub-pixel ``(a, b)`` of the ``k x``-upsampled
    grid is at ``u = (b + 0.5) / k, v = (a + 0.5) / k`` in output-pixel coordinates; for ``k = 1``
    that is pixel centre ``(j + 0.5, i + 0.5)``.
    """
    k = supersample
    u = (np.arange(cam.width * k) + 0.5) / k
    v = (np.arange(cam.height * k) + 0.5) / k
    xc = (u - cam.cx) / cam.fx  # [W k]
    yc = (v - cam.cy) / cam.fy  # [H k]
    # d_world = R^T d_cam, written out per component (elementwise: no BLAS summation order).
    R = np.asarray(cam.R, dtype=np.float64)
    d = (
        xc[None, :, None] * R[0][None, None, :]
        + yc[:, None, None] * R[1][None, None, :]
        + R[2][None, None, :]
    )
    return cam.center, d


@dataclass
class Hits:
    """Nearest hit per ray, all ``[N]``: depth ``t`` (inf = miss), surface id (-1), u, v."""

    t: np.ndarray
    surface: np.ndarray
    u: np.ndarray
    v: np.ndarray

    @classmethod
    def empty(cls, n: int) -> Hits:
        return cls(np.full(n, np.inf), np.full(n, -1, dtype=np.int64), np.zeros(n), np.zeros(n))

    def merge(self, t: np.ndarray, surface: np.ndarray | int, u: np.ndarray, v: np.ndarray) -> None:
        """Keep the candidate where it is nearer (``t`` is inf where the candidate misses)."""
        closer = t < self.t
        self.t = np.where(closer, t, self.t)
        self.surface = np.where(closer, surface, self.surface)
        self.u = np.where(closer, u, self.u)
        self.v = np.where(closer, v, self.v)

    def merge_at(
        self, idx: np.ndarray, t: np.ndarray, surface: np.ndarray, u: np.ndarray, v: np.ndarray
    ) -> None:
        """:meth:`merge` for a candidate covering only the rays ``idx`` (``[M]`` arrays)."""
        closer = t < self.t[idx]
        sel = idx[closer]
        self.t[sel] = t[closer]
        self.surface[sel] = surface[closer]
        self.u[sel] = u[closer]
        self.v[sel] = v[closer]


def _hit_plane_z(o: np.ndarray, d: np.ndarray, z: float, facing_up: bool) -> np.ndarray:
    """``[N]`` depth where rays hit the plane at height ``z`` from its visible side, else inf."""
    dz = d[:, 2]
    ok = dz < -_EPS if facing_up else dz > _EPS
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (z - o[2]) / dz
    return np.where(ok & (t > _EPS), t, np.inf)


def _hit_floor(o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Floor ``z = 0`` over ``[-R, R]^2``: ``([N] t, u, v)``, image top towards +y."""
    t = _hit_plane_z(o, d, 0.0, facing_up=True)
    x = o[0] + np.where(np.isfinite(t), t, 0.0) * d[:, 0]
    y = o[1] + np.where(np.isfinite(t), t, 0.0) * d[:, 1]
    r = BACKDROP_RADIUS
    t = np.where((np.abs(x) <= r) & (np.abs(y) <= r), t, np.inf)
    return t, (x + r) / (2 * r), (r - y) / (2 * r)


def _hit_ceiling(o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ceiling disk at the drum top, seen from below: ``([N] t, u, v)``."""
    t = _hit_plane_z(o, d, BACKDROP_HEIGHT, facing_up=False)
    x = o[0] + np.where(np.isfinite(t), t, 0.0) * d[:, 0]
    y = o[1] + np.where(np.isfinite(t), t, 0.0) * d[:, 1]
    r = BACKDROP_RADIUS
    t = np.where(x * x + y * y <= r * r, t, np.inf)
    return t, (x + r) / (2 * r), (y + r) / (2 * r)


def _hit_wall(o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drum wall from inside: ``([N] t, u, v)``; ``u = 1 - phi / 2 pi`` reads unmirrored."""
    a = d[:, 0] ** 2 + d[:, 1] ** 2
    b = 2.0 * (o[0] * d[:, 0] + o[1] * d[:, 1])
    c = o[0] ** 2 + o[1] ** 2 - BACKDROP_RADIUS**2  # < 0: origin inside the drum
    disc = np.maximum(b * b - 4.0 * a * c, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (-b + np.sqrt(disc)) / (2.0 * a)
    t = np.where(a > _EPS, t, np.inf)
    z = o[2] + np.where(np.isfinite(t), t, 0.0) * d[:, 2]
    t = np.where((z >= 0.0) & (z <= BACKDROP_HEIGHT) & (t > _EPS), t, np.inf)
    x = o[0] + np.where(np.isfinite(t), t, 0.0) * d[:, 0]
    y = o[1] + np.where(np.isfinite(t), t, 0.0) * d[:, 1]
    phi = np.mod(np.arctan2(y, x), 2.0 * math.pi)
    return t, 1.0 - phi / (2.0 * math.pi), (BACKDROP_HEIGHT - z) / BACKDROP_HEIGHT


def _box_candidates(o: np.ndarray, d: np.ndarray, box: Box) -> np.ndarray:
    """Indices of rays that pass within the box's bounding sphere (cheap pre-test)."""
    w = box.center - o
    radius2 = float(np.sum(np.square(box.half)))
    proj = d[:, 0] * w[0] + d[:, 1] * w[1] + d[:, 2] * w[2]
    dd = d[:, 0] ** 2 + d[:, 1] ** 2 + d[:, 2] ** 2
    dist2 = float(w @ w) - proj * proj / dd
    return np.flatnonzero((dist2 <= radius2 * (1.0 + 1e-9)) & (proj > -math.sqrt(radius2) * 2))


def _hit_box(
    o: np.ndarray, d: np.ndarray, box: Box
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Slab test against an oriented box: ``([N] t, face, u, v)``; the camera is outside it."""
    rot = box.rotation()
    ol = rot.T @ (o - box.center)  # [3] origin in the box frame
    dl = d[:, 0:1] * rot[0] + d[:, 1:2] * rot[1] + d[:, 2:3] * rot[2]  # [N, 3]: rot.T @ d_i
    h = np.asarray(box.half)
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (-h - ol) / dl
        t2 = (h - ol) / dl
    # Rays parallel to a slab: inside it -> no constraint, outside -> miss.
    par = np.abs(dl) < _EPS
    inside = np.abs(ol) <= h
    tlo = np.where(par, np.where(inside, -np.inf, np.inf), np.minimum(t1, t2))
    thi = np.where(par, np.where(inside, np.inf, -np.inf), np.maximum(t1, t2))
    axis = np.argmax(tlo, axis=1)
    rows = np.arange(len(d))
    tn = tlo[rows, axis]
    tf = thi.min(axis=1)
    hit = (tn <= tf) & (tn > _EPS)
    t = np.where(hit, tn, np.inf)
    # The entered face is the one facing the ray: -axis side when the ray travels towards +axis.
    face = 2 * axis + (dl[rows, axis] < 0)
    p = ol + np.where(hit, tn, 0.0)[:, None] * dl  # [N, 3] local hit point
    u = np.zeros(len(t))
    v = np.zeros(len(t))
    for f in range(6):
        m = face == f
        if not m.any():
            continue
        _, right, down = _face_axes(f)
        ext_r = float(np.abs(right) @ h)
        ext_d = float(np.abs(down) @ h)
        u[m] = 0.5 + (p[m] @ right) / (2.0 * ext_r)
        v[m] = 0.5 + (p[m] @ down) / (2.0 * ext_d)
    return t, face, u, v


def cast_rays(model: SceneModel, origin: np.ndarray, dirs: np.ndarray) -> Hits:
    """Nearest surface hit for rays from one ``origin [3]`` along ``dirs [N, 3]``."""
    o = np.asarray(origin, dtype=np.float64)
    hits = Hits.empty(len(dirs))
    t, u, v = _hit_floor(o, dirs)
    hits.merge(t, FLOOR, u, v)
    t, u, v = _hit_wall(o, dirs)
    hits.merge(t, WALL, u, v)
    t, u, v = _hit_ceiling(o, dirs)
    hits.merge(t, CEILING, u, v)
    for b, box in enumerate(model.boxes):
        idx = _box_candidates(o, dirs, box)  # boxes cover a small part of a view
        if idx.size:
            t, face, u, v = _hit_box(o, dirs[idx], box)
            hits.merge_at(idx, t, FIRST_BOX_SURFACE + 6 * b + face, u, v)
    return hits


def shade_hits(model: SceneModel, hits: Hits) -> np.ndarray:
    """``[N, 3]`` float colours (0..255) of the hit surfaces; misses get ``BACKGROUND_RGB``."""
    hit = hits.surface >= 0
    s = np.where(hit, hits.surface, 0)
    rgb = model.atlas.sample(
        model.surface_texture[s], np.clip(hits.u, 0.0, 1.0), np.clip(hits.v, 0.0, 1.0)
    )
    rgb = rgb * model.surface_shade[s][:, None]
    return np.where(hit[:, None], rgb, np.asarray(BACKGROUND_RGB, dtype=np.float32))


def render_view(model: SceneModel, cam: PinholeCamera, supersample: int) -> np.ndarray:
    """Render one view: ``[H, W, 3]`` uint8, ``k x k`` supersampled and box-filtered."""
    k = supersample
    origin, d = camera_rays(cam, k)
    hits = cast_rays(model, origin, d.reshape(-1, 3))
    rgb = shade_hits(model, hits).reshape(cam.height, k, cam.width, k, 3)
    img = rgb.mean(axis=(1, 3), dtype=np.float64)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


# --- public entry points ------------------------------------------------------------------------
@dataclass
class SyntheticScene:
    """A rendered synthetic scene.

    Attributes:
        images: ``(file name, [H, W, 3] uint8)`` per view, in camera order.
        cameras: ground-truth cameras, ``cameras[i].image == images[i][0]``.
        scene: scene facts for ``ground_truth.json``: ``centre [3]`` (centre of the objects'
            axis-aligned bounding box), ``extent`` (radius of the sphere about ``centre`` that
            bounds the objects, i.e. half the bbox diagonal), ``bbox`` (``{"min": [3], "max":
            [3]}`` of the objects), ``up``, the backdrop size, the photographs used and the
            config.
    """

    images: list[tuple[str, np.ndarray]]
    cameras: list[PinholeCamera]
    scene: dict[str, Any]


def _track(items: list[PinholeCamera], progress: bool, what: str) -> Iterable[PinholeCamera]:
    if not progress:
        return items
    from rich.progress import track  # deferred: only needed for interactive use

    return track(items, description=what)


def scene_facts(cfg: SyntheticSceneConfig, model: SceneModel) -> dict[str, Any]:
    """The ``scene`` dict of ground truth (JSON-ready)."""
    lo, hi = scene_bounds(model.boxes)
    lo[2] = 0.0  # the boxes stand on the floor
    centre = (lo + hi) / 2.0
    return {
        "name": cfg.name,
        "generator": "splatbench.scene.synthetic",
        "centre": centre.tolist(),
        "extent": float(np.linalg.norm(hi - lo) / 2.0),
        "extent_definition": "radius of the bounding sphere of the objects' axis-aligned bbox",
        "bbox": {"min": lo.tolist(), "max": hi.tolist()},
        "up": [0.0, 0.0, 1.0],
        "backdrop": {"radius": BACKDROP_RADIUS, "height": BACKDROP_HEIGHT},
        "photos": list(model.photos_used),
        "config": _config_dict(cfg),
    }


def _config_dict(cfg: SyntheticSceneConfig) -> dict[str, Any]:
    d = asdict(cfg)
    d["elevations_deg"] = [float(e) for e in cfg.elevations_deg]
    return d


def render_synthetic_scene(cfg: SyntheticSceneConfig, progress: bool = False) -> SyntheticScene:
    """Render every view of the synthetic scene described by ``cfg`` (deterministic)."""
    model = build_scene_model(cfg)
    facts = scene_facts(cfg, model)
    cameras = make_cameras(cfg, np.asarray(facts["centre"]))
    images = [
        (cam.image, render_view(model, cam, cfg.supersample))
        for cam in _track(cameras, progress, f"rendering {cfg.name}")
    ]
    return SyntheticScene(images=images, cameras=cameras, scene=facts)


def encode_png(img: np.ndarray) -> bytes:
    """Deterministic PNG bytes of an ``[H, W, 3]`` uint8 image (fixed level, no metadata)."""
    buf = io.BytesIO()
    Image.fromarray(img, mode="RGB").save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def license_text(cfg: SyntheticSceneConfig, photos_used: Iterable[str]) -> str:
    """``LICENSE.txt``: provenance and license of every photograph the images are made from."""
    used = set(photos_used)
    lines = [
        f"Synthetic scene '{cfg.name}' generated by splatbench (splatbench.scene.synthetic).",
        "",
        "The images are renderings of a 3D scene whose surfaces are textured with regions of",
        "the photographs below, which are bundled with scikit-image (skimage.data). splatbench",
        "cut them into tiles, stretched their contrast, tinted the grayscale ones,",
        "resized them and mapped them onto the scene. The provenance and license statements are",
        "those given in scikit-image's documentation of each image (the docstring of",
        "skimage.data.<name>).",
        "",
    ]
    for p in PHOTOS:
        if p.loader not in used:
            continue
        lines += [
            f"* skimage.data.{p.loader}: {p.title}",
            f"  Origin: {p.origin}",
            f"  License: {p.license}",
            "",
        ]
    return "\n".join(lines)


def _zip_bytes(entries: dict[str, bytes]) -> bytes:
    """A deterministic zip: sorted names, fixed timestamps, permissions and creator system."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so external_attr carries the mode
            info.external_attr = ZIP_FILE_MODE << 16
            zf.writestr(info, entries[name], compress_type=zipfile.ZIP_DEFLATED, compresslevel=6)
    return buf.getvalue()


def archive_entries(cfg: SyntheticSceneConfig, scene: SyntheticScene) -> dict[str, bytes]:
    """Archive member name -> bytes: ``images/*.png``, ``ground_truth.json``, ``LICENSE.txt``."""
    entries = {f"images/{name}": encode_png(img) for name, img in scene.images}
    with tempfile.TemporaryDirectory(prefix="splatbench-synthetic-") as td:
        gt = Path(td) / GROUND_TRUTH_FILENAME
        write_ground_truth(gt, scene.cameras, scene.scene)
        entries[GROUND_TRUTH_FILENAME] = gt.read_bytes()
    entries["LICENSE.txt"] = license_text(cfg, scene.scene["photos"]).encode("utf-8")
    return entries


def write_scene_archive(cfg: SyntheticSceneConfig, out_path: Path, progress: bool = False) -> Path:
    """Render the scene and write it as a byte-for-byte deterministic zip (atomically).

    Members: ``images/view_XXX.png``, ``ground_truth.json`` (cameras + :func:`scene_facts`,
    including the config) and ``LICENSE.txt``. Returns ``out_path``.
    """
    out_path = Path(out_path)
    scene = render_synthetic_scene(cfg, progress=progress)
    atomic_write_bytes(out_path, _zip_bytes(archive_entries(cfg, scene)))
    return out_path


def iter_views(cfg: SyntheticSceneConfig) -> Iterator[tuple[PinholeCamera, np.ndarray]]:
    """Render views one at a time (``(camera, [H, W, 3] uint8)``), for low-memory consumers."""
    model = build_scene_model(cfg)
    centre = np.asarray(scene_facts(cfg, model)["centre"])
    for cam in make_cameras(cfg, centre):
        yield cam, render_view(model, cam, cfg.supersample)


__all__ = [
    "PHOTOS",
    "SyntheticScene",
    "SyntheticSceneConfig",
    "build_scene_model",
    "camera_rays",
    "cast_rays",
    "iter_views",
    "license_text",
    "make_cameras",
    "render_synthetic_scene",
    "write_scene_archive",
]
