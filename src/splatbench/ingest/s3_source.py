"""``s3://`` sources in the canonical layout: ``s3://<bucket>/<prefix>/raw/<dataset>/<scene>/``.

``fetch`` reads the scene's published manifest from
``<prefix>/manifests/<dataset>/<scene>.manifest.json``, downloads every file it lists and checks
each one's size and sha256, then hands the directory to the pipeline like a local scene. Objects
under the raw prefix that the manifest does not list are ignored: the manifest is the scene.

Endpoint, region and credentials come from the environment and AWS config
(``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_PROFILE``, roles) and are
never part of :meth:`S3Source.describe`, which goes into manifests.
"""

from __future__ import annotations

import json
import logging
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from splatbench.errors import SourceError
from splatbench.ingest.manifest import validate_manifest
from splatbench.ingest.sources import Source

if TYPE_CHECKING:
    from botocore.client import BaseClient

log = logging.getLogger(__name__)

CANONICAL_FORM = "s3://<bucket>/<prefix>/raw/<dataset>/<scene>/"


@dataclass(frozen=True)
class CanonicalScene:
    """The parts of a canonical raw-scene URI."""

    bucket: str
    prefix: str
    dataset: str
    scene: str


def parse_canonical(uri: str, shown: str) -> CanonicalScene:
    """Parse ``s3://bucket/[prefix/]raw/dataset/scene[/]``; ``shown`` is the redacted URI.

    Raises:
        SourceError: anything else, including single objects (archives) and query strings.
    """
    from splatbench.cloud.s3 import S3Error, parse_s3_uri

    # Layout first (on the redacted form), so the message says what is wrong with the path.
    path = shown.partition("://")[2].partition("?")[0].partition("#")[0]
    parts = [p for p in path.split("/")[1:] if p]
    if len(parts) < 3 or parts[-3] != "raw":
        raise SourceError(
            f"s3 source {shown!r} is not a scene in the canonical layout {CANONICAL_FORM}; "
            "ingesting a single S3 object (e.g. an archive) in the pipeline is not "
            "implemented yet",
            fix="publish the payload first with `splatbench ingest --source-url <url> --upload`, "
            f"then point the scene's source at {CANONICAL_FORM}",
        )
    try:
        parsed = parse_s3_uri(uri)
    except S3Error as exc:
        raise SourceError(exc.message, fix=exc.fix) from None
    parts = [p for p in parsed.key.split("/") if p]
    return CanonicalScene(parsed.bucket, "/".join(parts[:-3]), parts[-2], parts[-1])


class S3Source(Source):
    """A published scene: its raw payload plus the manifest that vouches for it."""

    kind = "s3"

    def __init__(self, uri: str, client: BaseClient | None = None) -> None:
        super().__init__(uri)
        self.location = parse_canonical(uri, self.uri)
        self._client = client
        from splatbench.cloud.s3 import S3Layout

        self.layout = S3Layout(self.location.bucket, self.location.prefix)
        loc = self.location
        # Normalised, so "s3://b/p/raw/d/s" and ".../s/" describe the same source.
        self.uri = self.layout.uri(self.layout.raw_prefix(loc.dataset, loc.scene))
        self.manifest_uri = self.layout.uri(self.layout.manifest_key(loc.dataset, loc.scene))

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "uri": self.uri, "manifest_uri": self.manifest_uri}

    @property
    def client(self) -> BaseClient:
        if self._client is None:
            from splatbench.cloud.s3 import make_client

            self._client = make_client()
        return self._client

    def read_manifest(self) -> dict[str, Any]:
        """The published manifest, validated against the schema.

        Raises:
            SourceError: the manifest is missing (the scene was never completely published),
                unreadable or for another scene.
        """
        from splatbench.cloud.s3 import is_not_found, s3_error

        loc = self.location
        key = self.layout.manifest_key(loc.dataset, loc.scene)
        try:
            body = self.client.get_object(Bucket=loc.bucket, Key=key)["Body"].read()
        except Exception as exc:
            if is_not_found(exc):
                raise SourceError(
                    f"no manifest at {self.manifest_uri}: scene {loc.dataset}/{loc.scene} was "
                    "never published completely (the manifest is uploaded last)",
                    fix="run `splatbench ingest --upload` for this scene, or fix the source URI",
                ) from None
            raise s3_error(exc, "reading", self.manifest_uri) from exc
        try:
            manifest = json.loads(body)
        except ValueError as exc:
            raise SourceError(
                f"{self.manifest_uri} is not JSON ({exc})", fix="re-publish the scene"
            ) from None
        validate_manifest(manifest, self.manifest_uri)
        if (manifest["dataset"], manifest["scene"]) != (loc.dataset, loc.scene):
            raise SourceError(
                f"{self.manifest_uri} describes {manifest['dataset']}/{manifest['scene']}, "
                f"not {loc.dataset}/{loc.scene}",
                fix="re-publish the scene with `splatbench ingest --upload --force`",
            )
        return manifest  # type: ignore[no-any-return]

    def fetch(self, workdir: Path, max_workers: int = 8) -> Path:
        """Download and verify every file of the manifest into ``workdir/<scene>/``."""
        from boto3.s3.transfer import TransferConfig

        from splatbench.cloud.transfer import download_verified

        manifest = self.read_manifest()
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        loc = self.location
        # A fresh directory per fetch: never mix in files from an earlier, different download.
        root = Path(tempfile.mkdtemp(prefix=f"{loc.scene}.", dir=workdir))
        raw = self.layout.raw_prefix(loc.dataset, loc.scene)
        config = TransferConfig(max_concurrency=4)
        client = self.client

        def get(entry: dict[str, Any]) -> None:
            download_verified(
                client,
                loc.bucket,
                raw + entry["path"],
                root / entry["path"],
                sha256=entry["sha256"],
                size=int(entry["size"]),
                transfer_config=config,
            )

        with ThreadPoolExecutor(max_workers) as pool:
            # list() re-raises the first failure (a VerificationError names the object).
            list(pool.map(get, manifest["files"]))
        log.info("%s: %d files downloaded and verified", self.uri, len(manifest["files"]))
        return root
