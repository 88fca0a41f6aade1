"""Train/test split rules and split.json."""

from __future__ import annotations

import json

import pytest

from splatbench.errors import ConfigError, ManifestError
from splatbench.scene.split import SplitConfig, read_split, split_images, write_split


def test_every_8th_by_sorted_name_is_test() -> None:
    names = [f"img_{i:02d}.png" for i in range(20)][::-1]  # order must not matter
    split = split_images(names, SplitConfig())
    assert split["test"] == ["img_00.png", "img_08.png", "img_16.png"]
    assert len(split["train"]) == 17
    assert split["train"] == sorted(split["train"])
    assert not set(split["train"]) & set(split["test"])


def test_offset_and_period() -> None:
    names = [f"{i}.jpg" for i in range(10)]  # sorted as strings: 0, 1, ..., 9
    split = split_images(names, SplitConfig(every=4, offset=1))
    assert split["test"] == ["1.jpg", "5.jpg", "9.jpg"]


def test_list_rule_and_missing_names() -> None:
    names = ["a.png", "b.png", "c.png"]
    split = split_images(names, SplitConfig(rule="list", test_list=["c.png", "a.png"]))
    assert split == {"train": ["b.png"], "test": ["a.png", "c.png"]}
    with pytest.raises(ConfigError, match=r"nope\.png"):
        split_images(names, SplitConfig(rule="list", test_list=["nope.png"]))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rule": "random"},
        {"every": 1},
        {"every": 8, "offset": 8},
        {"rule": "list"},
        {"test_list": ["a.png"]},
    ],
)
def test_bad_config_rejected(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        SplitConfig(**kwargs)


def test_from_dict_rejects_unknown_keys() -> None:
    assert SplitConfig.from_dict({"every": 4}).every == 4
    with pytest.raises(ConfigError, match="evry"):
        SplitConfig.from_dict({"evry": 4})


def test_empty_train_or_duplicates_rejected() -> None:
    with pytest.raises(ConfigError, match="0 train"):
        split_images(["a.png"], SplitConfig())
    with pytest.raises(ConfigError, match="duplicate"):
        split_images(["a.png", "a.png", "b.png"], SplitConfig())


def test_split_json_round_trip(tmp_path) -> None:
    cfg = SplitConfig()
    split = split_images([f"{i:03d}.png" for i in range(9)], cfg)
    path = tmp_path / "split.json"
    write_split(path, cfg, split)
    data = read_split(path)
    assert data == {"rule": "every_nth", "every": 8, "offset": 0, **split}
    path.write_text(json.dumps({"rule": "every_nth", "train": []}))
    with pytest.raises(ManifestError, match=r"split\.json"):
        read_split(path)
