"""The S3 ingestion job against a real S3 server (SeaweedFS on loopback)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import s3_fixture
from s3_fixture import (
    SECRET_KEY,
    SeaweedS3,
    list_keys,
    make_scene_payload,
    scan_for_secrets,
    zip_dir,
)

from splatbench.cloud.ingest_job import IngestJobConfig, run_ingest_job
from splatbench.cloud.s3 import S3Error, S3Settings, VerificationError
from splatbench.cloud.transfer import MIB, TransferEvent, TransferSettings
from splatbench.errors import SourceError
from splatbench.ingest.manifest import MANIFEST_SCHEMA_VERSION, validate_manifest
from splatbench.ingest.sources import resolve_source

pytestmark = pytest.mark.integration
# The shared SeaweedFS fixtures (one server per session, see tests/s3_fixture.py).
seaweedfs = s3_fixture.seaweedfs
s3_env = s3_fixture.s3_env

DATASET, SCENE, PREFIX = "mipnerf360", "garden", "bench/v1"
# Small parts so a few-MB file is a real multipart upload.
SMALL_PARTS = TransferSettings(multipart_threshold=5 * MIB, part_size=5 * MIB, max_workers=2)


def _config(server: SeaweedS3, bucket: str, out: Path, **overrides: object) -> IngestJobConfig:
    values: dict[str, object] = {
        "dataset": DATASET,
        "scene": SCENE,
        "bucket": bucket,
        "prefix": PREFIX,
        "output_dir": out,
        "expected_image_dirs": ("images", "images_2"),
        "license_url": "https://example.org/license",
        "s3": S3Settings(
            endpoint_url=server.endpoint_url, max_attempts=2, connect_timeout=2, read_timeout=20
        ),
        "transfer": SMALL_PARTS,
        "run_id": "run-1",
    }
    values.update(overrides)
    return IngestJobConfig(**values)  # type: ignore[arg-type]


def _sha_index(manifest: dict) -> dict[str, str]:
    return {f["path"]: f["sha256"] for f in manifest["files"]}


def test_dry_run_writes_local_tree_and_nothing_to_s3(s3_env: SeaweedS3, tmp_path: Path) -> None:
    bucket = s3_env.make_bucket()
    payload = zip_dir(make_scene_payload(tmp_path / "src"), tmp_path / "garden.zip")
    out = tmp_path / "out"
    result = run_ingest_job(_config(s3_env, bucket, out, source_url=str(payload)))

    assert list_keys(s3_env.client(), bucket) == []
    assert result.upload is None and not result.manifest_published
    manifest = json.loads((out / "manifests" / DATASET / f"{SCENE}.manifest.json").read_text())
    validate_manifest(manifest, "job manifest")
    assert manifest["schema_version"] == MANIFEST_SCHEMA_VERSION
    assert manifest["license"]["url"] == "https://example.org/license"
    assert manifest["license"]["files"][0]["path"] == "LICENSE.txt"
    assert manifest["tool"]["name"] == "splatbench"
    assert manifest["source"]["payload"]["type"] == "file"
    # The archive's single top folder ("garden/") is not part of the keys.
    paths = [f["path"] for f in manifest["files"]]
    assert "images/IMG_0000.png" in paths and "poses_bounds.npy" in paths
    assert all("width" in f for f in manifest["files"] if f["path"].startswith("images"))
    assert result.image_counts == {"images": 3, "images_2": 3}
    dry = out / "s3_dry_run" / PREFIX
    for rel in paths:
        assert (dry / "raw" / DATASET / SCENE / rel).is_file()
        assert (out / "downloads" / DATASET / SCENE / rel).is_file()
    assert (dry / "manifests" / DATASET / f"{SCENE}.manifest.json").read_text() == (
        out / "manifests" / DATASET / f"{SCENE}.manifest.json"
    ).read_text()
    assert (dry / "results" / "run-1" / DATASET / SCENE / "logs" / "ingest.log").is_file()


def test_upload_then_reupload_transfers_nothing_new(s3_env: SeaweedS3, tmp_path: Path) -> None:
    bucket = s3_env.make_bucket()
    src = make_scene_payload(tmp_path / "src", big_bytes=7 * MIB)
    out = tmp_path / "out"
    first = run_ingest_job(_config(s3_env, bucket, out, source_url=str(src), upload=True))
    assert first.upload is not None and first.manifest_published
    n_files = len(first.manifest["files"])
    assert first.upload["uploaded"] == n_files and first.upload["parts_sent"] == 2

    client = s3_env.client()
    raw = f"{PREFIX}/raw/{DATASET}/{SCENE}/"
    head = client.head_object(Bucket=bucket, Key=raw + "big.bin")
    assert head["Metadata"]["sha256"] == _sha_index(first.manifest)["big.bin"]
    assert head["ETag"].strip('"').endswith("-2")  # multipart
    manifest_key = f"{PREFIX}/manifests/{DATASET}/{SCENE}.manifest.json"
    published = json.loads(client.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
    assert published == first.manifest
    stamp = client.head_object(Bucket=bucket, Key=manifest_key)["LastModified"]

    # Rerun without --source-url: the published manifest names the source.
    second = run_ingest_job(_config(s3_env, bucket, out, upload=True, run_id="run-2"))
    assert second.upload == {
        "uploaded": 0,
        "skipped": n_files,
        "bytes_sent": 0,
        "parts_sent": 0,
        "parts_reused": 0,
    }
    assert not second.manifest_published
    assert client.head_object(Bucket=bucket, Key=manifest_key)["LastModified"] == stamp
    keys = list_keys(client, bucket)
    assert sorted(k for k in keys if k.startswith(raw)) == sorted(
        raw + f["path"] for f in first.manifest["files"]
    )
    for run in ("run-1", "run-2"):
        logs = f"{PREFIX}/results/{run}/{DATASET}/{SCENE}/logs/"
        assert {logs + "ingest.log", logs + "summary.json"} <= set(keys)


def test_server_killed_mid_upload_then_rerun_resumes(s3_env: SeaweedS3, tmp_path: Path) -> None:
    bucket = s3_env.make_bucket()
    src = make_scene_payload(tmp_path / "src", big_bytes=23 * MIB)  # 5 parts of 5 MiB
    out = tmp_path / "out"
    killed: list[int] = []

    def kill_after_first_part(event: TransferEvent) -> None:
        if event.kind == "part" and not killed:
            killed.append(event.part_number)
            s3_env.kill()

    no_retry = TransferSettings(
        multipart_threshold=5 * MIB, part_size=5 * MIB, max_workers=1, file_attempts=1
    )
    cfg = _config(s3_env, bucket, out, source_url=str(src), upload=True, transfer=no_retry)
    try:
        with pytest.raises(S3Error) as info:
            run_ingest_job(cfg, progress=kill_after_first_part)
    finally:
        s3_env.start()  # same ports and data directory
    assert killed, "the kill hook never ran"
    assert "re-run" in (info.value.fix or "")
    assert SECRET_KEY not in str(info.value)

    client = s3_env.client()
    manifest_key = f"{PREFIX}/manifests/{DATASET}/{SCENE}.manifest.json"
    assert manifest_key not in list_keys(client, bucket), "half-uploaded scene looks complete"
    raw = f"{PREFIX}/raw/{DATASET}/{SCENE}/"
    pending = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["Key"] for u in pending] == [raw + "big.bin"]

    result = run_ingest_job(_config(s3_env, bucket, out, upload=True, run_id="run-2"))
    assert result.manifest_published
    assert result.upload is not None and result.upload["parts_reused"] >= 1
    assert result.upload["parts_sent"] <= 4
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    keys = list_keys(client, bucket, raw)
    assert sorted(keys) == sorted(raw + f["path"] for f in result.manifest["files"])
    assert len(keys) == len(set(keys))
    # Every object intact: download and compare with the manifest's sha256.
    for entry in result.manifest["files"]:
        import hashlib

        body = client.get_object(Bucket=bucket, Key=raw + entry["path"])["Body"].read()
        assert hashlib.sha256(body).hexdigest() == entry["sha256"], entry["path"]


def test_changed_source_fails_and_publishes_nothing(s3_env: SeaweedS3, tmp_path: Path) -> None:
    bucket = s3_env.make_bucket()
    src = make_scene_payload(tmp_path / "src")
    out = tmp_path / "out"
    first = run_ingest_job(_config(s3_env, bucket, out, source_url=str(src), upload=True))
    client = s3_env.client()
    before = {
        k: client.head_object(Bucket=bucket, Key=k)["ETag"] for k in list_keys(client, bucket)
    }

    (src / "poses_bounds.npy").write_bytes(b"tampered")
    with pytest.raises(VerificationError) as info:
        run_ingest_job(_config(s3_env, bucket, out, upload=True, run_id="run-2"))
    assert "poses_bounds.npy" in str(info.value) and "--force" in (info.value.fix or "")
    after = {k: client.head_object(Bucket=bucket, Key=k)["ETag"] for k in list_keys(client, bucket)}
    assert after == before, "a failed verification must not publish anything"

    forced = run_ingest_job(_config(s3_env, bucket, out, upload=True, force=True, run_id="run-3"))
    assert forced.manifest_published
    assert _sha_index(forced.manifest) != _sha_index(first.manifest)
    assert forced.upload is not None and forced.upload["uploaded"] == 1


def test_bad_inputs_are_named(s3_env: SeaweedS3, tmp_path: Path) -> None:
    bucket = s3_env.make_bucket()
    src = make_scene_payload(tmp_path / "src")
    with pytest.raises(SourceError, match="--source-url"):
        run_ingest_job(_config(s3_env, bucket, tmp_path / "o1"))
    with pytest.raises(SourceError, match="images_8"):
        run_ingest_job(
            _config(
                s3_env,
                bucket,
                tmp_path / "o2",
                source_url=str(src),
                expected_image_dirs=("images", "images_8"),
            )
        )
    with pytest.raises(SourceError, match="scene name"):
        run_ingest_job(_config(s3_env, bucket, tmp_path / "o3", scene="../x", source_url=str(src)))
    assert list_keys(s3_env.client(), bucket) == []


def test_s3_object_source_and_secrets_never_logged(
    s3_env: SeaweedS3, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Payload from s3:// (an archive object); logs, outputs and objects hold no secret."""
    caplog.set_level(logging.DEBUG)
    staging = s3_env.make_bucket("staging")
    bucket = s3_env.make_bucket()
    archive = zip_dir(make_scene_payload(tmp_path / "src"), tmp_path / "garden.zip")
    client = s3_env.client()
    client.upload_file(str(archive), staging, "incoming/garden.zip")
    out = tmp_path / "out"
    result = run_ingest_job(
        _config(s3_env, bucket, out, source_url=f"s3://{staging}/incoming/garden.zip", upload=True)
    )
    assert result.manifest["source"]["kind"] == "s3"
    assert result.manifest["source"]["uri"] == f"s3://{staging}/incoming/garden.zip"
    # Endpoint and credentials are not part of the manifest.
    text = json.dumps(result.manifest)
    assert s3_env.endpoint_url not in text and "127.0.0.1" not in text

    # A credential-bearing URI is refused without echoing the secret.
    with pytest.raises(Exception) as info:
        resolve_source(f"s3://AKIA:{SECRET_KEY}@{bucket}/raw/x.zip")
    assert SECRET_KEY not in str(info.value)

    log_objects = [
        client.get_object(Bucket=bucket, Key=k)["Body"].read().decode()
        for k in list_keys(client, bucket, f"{PREFIX}/results/")
    ]
    assert log_objects
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("splatbench"))
    assert "uploading" in ours
    assert scan_for_secrets([out], [ours, *log_objects]) == []
    # Even botocore's own DEBUG output (which shows the access key id) never has the secret.
    assert SECRET_KEY not in caplog.text
