"""Package layering: the shared URI helpers and cloud's plumbing never import the ingest package."""

from __future__ import annotations

import subprocess
import sys

import pytest

from splatbench.uri import redact_uri, redact_uris_in

PLUMBING = (
    "splatbench.uri",
    "splatbench.cloud.s3",
    "splatbench.cloud.transfer",
    "splatbench.cloud.iam",
    "splatbench.cloud.jobs",
    "splatbench.cloud.contract",
)


@pytest.mark.parametrize("module", PLUMBING)
def test_plumbing_does_not_import_ingest(module: str) -> None:
    code = (
        f"import sys, {module}; "
        "bad = sorted(m for m in sys.modules if m.startswith('splatbench.ingest')); "
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"{module} imports {out}"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://AKIA:se/cr+et@bucket/x?X-Amz-Signature=abc&part=1",
         "s3://bucket/x?X-Amz-Signature=REDACTED&part=1"),
        ("https://user:pw@host/a?token=t#frag", "https://host/a?token=REDACTED#frag"),
        ("file:///tmp/a@b/c", "file:///tmp/a@b/c"),
        ("/plain/path@x", "/plain/path@x"),
    ],
)  # fmt: skip
def test_redact_uri(uri: str, expected: str) -> None:
    assert redact_uri(uri) == expected


def test_redact_uris_in_text() -> None:
    text = "GET 'https://h/o?X-Amz-Credential=AK%2F1&X-Amz-Signature=s' failed: 403"
    assert redact_uris_in(text) == (
        "GET 'https://h/o?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED' failed: 403"
    )
