"""Train/test splits over a scene's images, and the ``split.json`` file that records them.

The default rule is the one the original 3DGS code, gsplat's examples and NerfBaselines share:
sort the image names, and every 8th image (``index % 8 == 0``) is a test image. The split is
always computed over *all* input images, before structure-from-motion, so the test set never
depends on which images SfM happened to register.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from splatbench.errors import ConfigError, ManifestError
from splatbench.fsutil import atomic_write_json, read_json

SPLIT_FILENAME = "split.json"
SPLIT_RULES = ("every_nth", "list")


@dataclass(frozen=True)
class SplitConfig:
    """How to split a scene's images into train and test views.

    Attributes:
        rule: ``"every_nth"`` (test = images whose index in name order satisfies
            ``index % every == offset``) or ``"list"`` (test = the names in ``test_list``).
        every: period of the every-nth rule (8 in 3DGS / gsplat / NerfBaselines).
        offset: which residue is test, ``0 <= offset < every``.
        test_list: explicit test image names for rule ``"list"`` (stored as a tuple).
    """

    rule: str = "every_nth"
    every: int = 8
    offset: int = 0
    test_list: Sequence[str] | None = None

    def __post_init__(self) -> None:
        if self.rule not in SPLIT_RULES:
            raise ConfigError(
                f"split.rule={self.rule!r} is not a known split rule",
                fix=f"use one of {', '.join(SPLIT_RULES)}",
            )
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 2:
            raise ConfigError(
                f"split.every={self.every!r} must be an integer >= 2",
                fix="use split.every=8 (the 3DGS convention)",
            )
        if not isinstance(self.offset, int) or not 0 <= self.offset < self.every:
            raise ConfigError(
                f"split.offset={self.offset!r} must be an integer in [0, split.every)",
                fix="use split.offset=0 (the 3DGS convention)",
            )
        if self.rule == "list":
            if not self.test_list:
                raise ConfigError(
                    "split.rule='list' needs a non-empty split.test_list",
                    fix="list the test image names (relative to images/) in split.test_list",
                )
            if isinstance(self.test_list, str):
                raise ConfigError(
                    "split.test_list must be a list of image names, not one string",
                    fix="write split.test_list as a YAML list",
                )
            # Frozen and hashable: keep a tuple whatever sequence came in (YAML gives lists).
            object.__setattr__(self, "test_list", tuple(str(n) for n in self.test_list))
        elif self.test_list is not None:
            raise ConfigError(
                f"split.test_list is set but split.rule={self.rule!r} ignores it",
                fix="set split.rule='list' to use an explicit test list, or drop split.test_list",
            )

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> SplitConfig:
        """Build from a params dict, rejecting unknown keys by name."""
        return cls(**_known_keys(d or {}, cls, "split"))


def _known_keys(d: dict[str, Any], cls: type, section: str) -> dict[str, Any]:
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(
            f"unknown {section} parameter(s): {', '.join(unknown)}",
            fix=f"check the spelling; known {section} parameters are {', '.join(sorted(known))}",
        )
    return dict(d)


def split_images(names: Sequence[str], cfg: SplitConfig) -> dict[str, list[str]]:
    """Split image names into ``{"train": [...], "test": [...]}``, both sorted by name.

    Args:
        names: every image of the scene (relative names as in ``images/``), any order.
        cfg: the split rule.

    Raises:
        ConfigError: duplicate or missing names, or a rule that leaves train or test empty.
    """
    ordered = sorted(str(n) for n in names)
    dupes = sorted({n for i, n in enumerate(ordered) if i and ordered[i - 1] == n})
    if dupes:
        raise ConfigError(f"duplicate image names in the split input: {', '.join(dupes)}")
    if not ordered:
        raise ConfigError("cannot split a scene with no images", fix="check the scene's images/")
    if cfg.rule == "every_nth":
        test = [n for i, n in enumerate(ordered) if i % cfg.every == cfg.offset]
    else:
        wanted = set(cfg.test_list or ())
        missing = sorted(wanted - set(ordered))
        if missing:
            raise ConfigError(
                f"split.test_list names {len(missing)} image(s) the scene does not have: "
                f"{', '.join(missing[:20])}{' ...' if len(missing) > 20 else ''}",
                fix="use names relative to the scene's images/ directory, e.g. 'frame_0001.png'",
            )
        test = [n for n in ordered if n in wanted]
    test_set = set(test)
    train = [n for n in ordered if n not in test_set]
    if not train or not test:
        raise ConfigError(
            f"split of {len(ordered)} images gives {len(train)} train and {len(test)} test images",
            fix="a benchmark needs both; use a scene with more images or another split rule",
        )
    return {"train": train, "test": test}


def write_split(path: Path, cfg: SplitConfig, split: dict[str, list[str]]) -> None:
    """Write ``split.json``: the rule that made the split and the resulting name lists."""
    atomic_write_json(
        Path(path),
        {
            "rule": cfg.rule,
            "every": cfg.every,
            "offset": cfg.offset,
            "train": list(split["train"]),
            "test": list(split["test"]),
        },
    )


def read_split(path: Path) -> dict[str, Any]:
    """Read ``split.json``; raise :class:`ManifestError` naming the file when malformed.

    Returns the file's dict (``rule``, ``every``, ``offset``, ``train``, ``test``).
    """
    path = Path(path)
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:
        raise ManifestError(
            f"{path}: cannot read split file ({exc})",
            fix="re-run the sfm stage, which writes split.json",
        ) from exc
    missing = [k for k in ("rule", "every", "offset", "train", "test") if k not in data]
    bad_lists = [
        k
        for k in ("train", "test")
        if k in data
        and not (isinstance(data[k], list) and all(isinstance(n, str) for n in data[k]))
    ]
    if missing or bad_lists:
        raise ManifestError(
            f"{path}: split file lacks {missing} or has non-list {bad_lists}",
            fix="re-run the sfm stage, which writes split.json",
        )
    overlap = sorted(set(data["train"]) & set(data["test"]))
    if overlap:
        raise ManifestError(
            f"{path}: images in both train and test: {', '.join(overlap[:20])}",
            fix="re-run the sfm stage, which writes split.json",
        )
    return dict(data)
