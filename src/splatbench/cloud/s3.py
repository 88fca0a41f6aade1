"""S3 client creation, URI parsing, the canonical bucket layout, and secret-safe errors.

Works against AWS and S3-compatible stores (SeaweedFS, MinIO): the endpoint comes from an
argument or from ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` (the variables botocore itself
reads), the region from an argument, ``AWS_REGION`` or the profile. Credentials are never passed
around by this module: botocore's chain (environment, ``~/.aws``, container/instance roles)
provides them, and :func:`scrub` removes their values from any text we log or raise.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from splatbench.errors import SplatbenchError
from splatbench.uri import redact_uri, redact_uris_in

if TYPE_CHECKING:  # boto3 is optional at import time
    from botocore.client import BaseClient

DEFAULT_REGION_FOR_CUSTOM_ENDPOINTS = "us-east-1"
_REDACTED = "***"
IAM_HINT = "see `splatbench ingest --print-iam-policy` for the permissions the job needs"


class S3Error(SplatbenchError):
    """An S3 call failed (permissions, missing bucket, unreachable endpoint, bad data)."""


class VerificationError(SplatbenchError):
    """Downloaded or published data does not match its manifest's sha256/size."""


# Values that must never be printed: filled in by make_client() from the resolved credentials.
_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember ``value`` so :func:`scrub` removes it (ignored when empty or very short)."""
    if value and len(value) >= 8:
        with _SECRETS_LOCK:
            _SECRETS.add(value)


def scrub(text: str) -> str:
    """``text`` with registered secrets and URI userinfo/signature values replaced."""
    with _SECRETS_LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, _REDACTED)
    # URIs embedded in free text (botocore error strings): redact each one.
    return redact_uris_in(text)


class SecretScrubFilter(logging.Filter):
    """Logging filter that scrubs every record's final message.

    Installed on the job's handlers, so even a third-party log line that echoes a header or a
    presigned URL cannot leak a credential into the uploaded run logs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


@dataclass(frozen=True)
class S3Settings:
    """How to reach S3.

    Attributes:
        endpoint_url: an S3-compatible endpoint; None means AWS (or the environment's
            ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``, see :meth:`resolved_endpoint`).
        region: AWS region; None means ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` / the profile.
        profile: a named profile from ``~/.aws/config``.
        max_attempts: botocore attempts per call (standard retry mode: exponential backoff with
            jitter on throttling, 5xx and connection errors).
        connect_timeout, read_timeout: seconds per socket operation.
        max_pool_connections: HTTP connections kept per client; at least the transfer threads.
    """

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    max_attempts: int = 5
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    max_pool_connections: int = 32

    def resolved_endpoint(self) -> str | None:
        return (
            self.endpoint_url
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
            or None
        )


def make_client(settings: S3Settings | None = None) -> BaseClient:
    """A boto3 S3 client for ``settings``, with retries and timeouts configured.

    Raises:
        S3Error: boto3 missing, unknown profile, or no region for AWS.
    """
    settings = settings or S3Settings()
    try:
        import boto3
        import botocore.exceptions
        from botocore.config import Config
    except ImportError as exc:  # pragma: no cover - only without the extra installed
        raise S3Error(
            f"S3 access needs boto3 ({exc})", fix="pip install boto3 (splatbench's `s3` extra)"
        ) from exc
    endpoint = settings.resolved_endpoint()
    config_kwargs: dict[str, Any] = {
        "retries": {"mode": "standard", "max_attempts": settings.max_attempts},
        "connect_timeout": settings.connect_timeout,
        "read_timeout": settings.read_timeout,
        "max_pool_connections": settings.max_pool_connections,
    }
    if endpoint:
        # botocore >= 1.36 adds CRC32 checksums to every upload by default; several
        # S3-compatible servers reject or mis-store them. AWS itself does not need them
        # because we send our own sha256 in metadata and verify on download.
        config_kwargs["request_checksum_calculation"] = "when_required"
        config_kwargs["response_checksum_validation"] = "when_required"
        # Virtual-host addressing needs wildcard DNS, which self-hosted stores rarely have.
        config_kwargs["s3"] = {"addressing_style": "path"}
    try:
        session = boto3.session.Session(profile_name=settings.profile)
        region = settings.region or session.region_name
        if region is None and endpoint:
            region = DEFAULT_REGION_FOR_CUSTOM_ENDPOINTS
        client = session.client(
            "s3", endpoint_url=endpoint, region_name=region, config=Config(**config_kwargs)
        )
        creds = session.get_credentials()
    except botocore.exceptions.ProfileNotFound as exc:
        raise S3Error(
            f"AWS profile {settings.profile!r} not found",
            fix="check --profile / AWS_PROFILE against ~/.aws/config",
        ) from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise S3Error(
            f"cannot create an S3 client: {scrub(str(exc))}",
            fix="set --region / AWS_REGION, and --endpoint-url for S3-compatible stores",
        ) from exc
    if creds is not None:
        frozen = creds.get_frozen_credentials()
        for value in (frozen.access_key, frozen.secret_key, frozen.token):
            register_secret(value)
    return client


@dataclass(frozen=True)
class S3Uri:
    """``s3://bucket/key``; ``key`` may be empty or end with ``/`` (a prefix)."""

    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_s3_uri(uri: str) -> S3Uri:
    """Split ``s3://bucket/key``. Userinfo and query strings are refused (never credentials).

    Raises:
        S3Error: not an s3:// URI, or it carries credentials or a query.
    """
    scheme, sep, rest = uri.partition("://")
    if scheme.lower() != "s3" or not sep:
        raise S3Error(f"{redact_uri(uri)!r} is not an s3:// URI", fix="use s3://BUCKET/KEY")
    bucket, _, key = rest.partition("/")
    if "@" in bucket or "?" in uri or "#" in uri:
        raise S3Error(
            f"{redact_uri(uri)!r}: s3:// URIs must not carry credentials or a query",
            fix="use s3://BUCKET/KEY and provide credentials via AWS_PROFILE or the environment",
        )
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
        raise S3Error(f"{uri!r}: invalid bucket name {bucket!r}", fix="use s3://BUCKET/KEY")
    return S3Uri(bucket, key)


def normalize_prefix(prefix: str | None) -> str:
    """``"/a//b/"`` -> ``"a/b"``; ``None`` -> ``""``. Refuses ``..`` and backslashes."""
    parts = [p for p in (prefix or "").replace("\\", "/").split("/") if p]
    if any(p in (".", "..") for p in parts) or (prefix and "\\" in prefix):
        raise S3Error(f"invalid S3 prefix {prefix!r}", fix="use a plain key prefix like 'bench/v1'")
    return "/".join(parts)


@dataclass(frozen=True)
class S3Layout:
    """The canonical layout (docs/s3.md, DESIGN.md) under ``s3://bucket/prefix/``."""

    bucket: str
    prefix: str = ""

    def key(self, *parts: str) -> str:
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))

    def raw_prefix(self, dataset: str, scene: str) -> str:
        """Key prefix of a scene's raw payload, with a trailing slash."""
        return self.key("raw", dataset, scene) + "/"

    def manifest_key(self, dataset: str, scene: str) -> str:
        return self.key("manifests", dataset, f"{scene}.manifest.json")

    def logs_prefix(self, run_id: str, dataset: str, scene: str) -> str:
        return self.key("results", run_id, dataset, scene, "logs") + "/"

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


def error_code(exc: BaseException) -> str | None:
    """The S3 error code of a botocore ClientError (``"404"``, ``"NoSuchKey"``...), else None."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None


def is_not_found(exc: BaseException) -> bool:
    return error_code(exc) in ("404", "NoSuchKey", "NotFound", "NoSuchUpload")


def s3_error(exc: BaseException, action: str, uri: str) -> S3Error:
    """Translate a boto exception into an :class:`S3Error` with a fix; secrets scrubbed."""
    code = error_code(exc)
    detail = scrub(f"{type(exc).__name__}: {exc}")
    where = redact_uri(uri)
    name = type(exc).__name__
    if code in ("403", "AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId"):
        fix = f"grant the job's role access to {where}; {IAM_HINT}"
    elif code == "SignatureDoesNotMatch":
        fix = "check the secret key of the credentials in use (AWS_PROFILE / environment)"
    elif code == "NoSuchBucket":
        fix = "create the bucket or check --bucket / BENCHMARK_BUCKET"
    elif name in ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"):
        fix = "provide credentials: --profile / AWS_PROFILE, or AWS_ACCESS_KEY_ID and friends"
    elif name in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError"):
        fix = (
            "check --endpoint-url / AWS_ENDPOINT_URL_S3 and the network; "
            "re-run the same command to resume"
        )
    else:
        fix = "re-run the same command: uploads are idempotent and resume where they stopped"
    return S3Error(f"{action} {where} failed: {detail}", fix=fix)
