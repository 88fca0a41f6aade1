"""The pipeline's ``s3://`` source: a canonical-layout scene, verified, into a scene dir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import s3_fixture
from s3_fixture import SeaweedS3, make_scene_payload

from splatbench.cloud.ingest_job import IngestJobConfig, run_ingest_job
from splatbench.cloud.s3 import S3Settings, VerificationError
from splatbench.errors import SourceError
from splatbench.ingest.pipeline import ingest_scene
from splatbench.ingest.s3_source import S3Source
from splatbench.ingest.sources import resolve_source

pytestmark = pytest.mark.integration
seaweedfs = s3_fixture.seaweedfs
s3_env = s3_fixture.s3_env

PREFIX = "bench"


def _publish(server: SeaweedS3, tmp_path: Path, bucket: str) -> dict:
    src = make_scene_payload(tmp_path / "src", images=4)
    result = run_ingest_job(
        IngestJobConfig(
            dataset="mipnerf360",
            scene="garden",
            bucket=bucket,
            prefix=PREFIX,
            output_dir=tmp_path / "job",
            source_url=str(src),
            expected_image_dirs=("images", "images_2"),
            upload=True,
            s3=S3Settings(endpoint_url=server.endpoint_url),
        )
    )
    return result.manifest


def test_pipeline_ingests_scene_from_canonical_layout(s3_env: SeaweedS3, tmp_path: Path) -> None:
    bucket = s3_env.make_bucket()
    published = _publish(s3_env, tmp_path, bucket)
    uri = f"s3://{bucket}/{PREFIX}/raw/mipnerf360/garden/"
    assert isinstance(resolve_source(uri), S3Source)

    # Endpoint and credentials come from the environment (AWS_ENDPOINT_URL_S3 etc.).
    scene_dir = tmp_path / "scenes" / "garden"
    result = ingest_scene(
        uri, scene_dir, scene="garden", dataset="mipnerf360", image_dir="images_2"
    )
    assert not result.skipped
    images = sorted(p.name for p in (scene_dir / "images").iterdir())
    assert images == [f"IMG_{i:04d}.png" for i in range(4)]
    by_path = {f["path"]: f for f in published["files"]}
    for entry in result.manifest["files"]:
        assert entry["sha256"] == by_path["images_2/" + entry["path"].split("/", 1)[1]]["sha256"]
    source = result.manifest["source"]
    assert source["kind"] == "s3" and source["uri"] == uri
    assert (
        source["manifest_uri"]
        == f"s3://{bucket}/{PREFIX}/manifests/mipnerf360/garden.manifest.json"
    )
    text = (scene_dir / "manifest.json").read_text()
    assert "127.0.0.1" not in text and s3_env.secret_key not in text

    # Same source again: the scene is verified and left alone.
    again = ingest_scene(uri, scene_dir, scene="garden", dataset="mipnerf360", image_dir="images_2")
    assert again.skipped


def test_tampered_object_fails_verification(s3_env: SeaweedS3, tmp_path: Path) -> None:
    bucket = s3_env.make_bucket()
    _publish(s3_env, tmp_path, bucket)
    key = f"{PREFIX}/raw/mipnerf360/garden/images/IMG_0001.png"
    s3_env.client().put_object(Bucket=bucket, Key=key, Body=b"not the published image")
    scene_dir = tmp_path / "scenes" / "garden"
    with pytest.raises(VerificationError) as info:
        ingest_scene(
            f"s3://{bucket}/{PREFIX}/raw/mipnerf360/garden",
            scene_dir,
            scene="garden",
            dataset="mipnerf360",
        )
    assert "IMG_0001.png" in str(info.value)
    assert not scene_dir.exists(), "nothing may be written when verification fails"


def test_unpublished_scene_and_bad_uris_are_explained(s3_env: SeaweedS3, tmp_path: Path) -> None:
    bucket = s3_env.make_bucket()
    with pytest.raises(SourceError, match="never published"):
        resolve_source(f"s3://{bucket}/{PREFIX}/raw/mipnerf360/bonsai/").fetch(tmp_path)
    with pytest.raises(SourceError, match="canonical layout"):
        resolve_source(f"s3://{bucket}/{PREFIX}/garden.zip")


def test_manifest_for_another_scene_is_refused(s3_env: SeaweedS3, tmp_path: Path) -> None:
    bucket = s3_env.make_bucket()
    published = _publish(s3_env, tmp_path, bucket)
    wrong = {**published, "scene": "bonsai"}
    s3_env.client().put_object(
        Bucket=bucket,
        Key=f"{PREFIX}/manifests/mipnerf360/garden.manifest.json",
        Body=json.dumps(wrong).encode(),
    )
    with pytest.raises(SourceError, match="bonsai"):
        resolve_source(f"s3://{bucket}/{PREFIX}/raw/mipnerf360/garden/").fetch(tmp_path)
