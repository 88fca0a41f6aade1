"""The scene manifest: schema validation, deterministic writing, verification against disk."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from splatbench.errors import ManifestError
from splatbench.ingest.manifest import (
    build_manifest,
    describe_payload,
    file_entry,
    load_manifest,
    manifest_schema,
    verify_files,
    write_manifest,
)


def make_scene(root: Path) -> dict[str, Any]:
    """A scene directory with two 'images' and a ground truth file, and its manifest."""
    (root / "images").mkdir(parents=True)
    (root / "images" / "b.png").write_bytes(b"second image bytes")
    (root / "images" / "a.png").write_bytes(b"first image bytes")
    (root / "ground_truth.json").write_text('{"cameras": []}\n')
    files = [
        file_entry(root, "images/b.png", width=4, height=3),
        file_entry(root, "ground_truth.json"),
        file_entry(root, "images/a.png", width=4, height=3),
    ]
    return build_manifest(
        scene="garden",
        dataset="mipnerf360",
        source={
            "kind": "local",
            "uri": "data/raw/garden.zip",
            "image_dir": "images",
            "payload": {"type": "file", "sha256": "0" * 64, "size": 123},
        },
        license={"url": "https://example.org/license", "files": []},
        files=files,
    )


def test_manifest_validates_against_schema_and_round_trips(tmp_path: Path) -> None:
    manifest = make_scene(tmp_path / "scene")
    # Validate with jsonschema directly too, so the test does not only trust our wrapper.
    Draft202012Validator(manifest_schema()).validate(manifest)
    assert manifest["schema_version"] == 1
    assert [f["path"] for f in manifest["files"]] == [
        "ground_truth.json",
        "images/a.png",
        "images/b.png",
    ]
    assert manifest["files"][1]["width"] == 4
    assert "width" not in manifest["files"][0]
    assert manifest["tool"]["name"] == "splatbench"

    path = tmp_path / "scene" / "manifest.json"
    write_manifest(path, manifest)
    first = path.read_bytes()
    assert load_manifest(path) == manifest
    write_manifest(path, copy.deepcopy(manifest))
    assert path.read_bytes() == first  # byte-identical: sorted keys, no timestamps
    assert b"time" not in first


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda m: m.update(schema_version=2), "schema_version"),
        (lambda m: m.pop("license"), "license"),
        (lambda m: m["files"][0].update(sha256="xyz"), "files[0].sha256"),
        (lambda m: m["files"][1].update(path="../escape.png"), "files[1].path"),
        (lambda m: m["files"][1].pop("height"), "files[1]"),
        (lambda m: m.update(created_at="2024-01-01"), "created_at"),
    ],
)
def test_load_manifest_names_file_and_violation(tmp_path: Path, mutate: Any, where: str) -> None:
    manifest = make_scene(tmp_path / "scene")
    mutate(manifest)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(manifest))
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    message = str(info.value)
    assert str(path) in message
    assert where in message


def test_load_manifest_rejects_unsorted_files_and_bad_json(tmp_path: Path) -> None:
    manifest = make_scene(tmp_path / "scene")
    manifest["files"].reverse()
    path = tmp_path / "unsorted.json"
    path.write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match="sorted"):
        load_manifest(path)
    path.write_text("{not json")
    with pytest.raises(ManifestError, match="not readable JSON"):
        load_manifest(path)
    with pytest.raises(ManifestError, match="not found"):
        load_manifest(tmp_path / "missing.json")


def test_verify_files_detects_tampering(tmp_path: Path) -> None:
    root = tmp_path / "scene"
    manifest = make_scene(root)
    write_manifest(root / "manifest.json", manifest)
    assert verify_files(manifest, root) == []

    a = root / "images" / "a.png"
    a.write_bytes(a.read_bytes().replace(b"first", b"FIRST"))  # same size, new content
    (root / "images" / "b.png").write_bytes(b"short")
    (root / "ground_truth.json").unlink()
    (root / "images" / "extra.png").write_bytes(b"not in the manifest")

    problems = verify_files(manifest, root)
    assert len(problems) == 4
    assert problems[0] == "ground_truth.json: missing"
    assert problems[1].startswith("images/a.png: sha256 differs")
    assert problems[2].startswith("images/b.png: size is 5 bytes")
    assert problems[3] == "images/extra.png: not listed in the manifest"


def test_describe_payload_file_and_directory(tmp_path: Path) -> None:
    payload = tmp_path / "p"
    (payload / "sub").mkdir(parents=True)
    (payload / "sub" / "x.txt").write_text("x")
    (payload / "y.txt").write_text("yy")
    record = describe_payload(payload)
    assert record["type"] == "directory"
    assert record["size"] == 3
    (payload / "sub" / "x.txt").write_text("z")  # same size, different content
    assert describe_payload(payload)["sha256"] != record["sha256"]
    single = describe_payload(payload / "y.txt")
    assert single == {
        "type": "file",
        "size": 2,
        "sha256": "ef90d9c1ec76b1edc9edfaf2c0c05359c10ccc49ae8ecf7b7fd25ce9c02e86a4",
    }
