"""URI helpers shared by ingest (sources) and cloud (S3 clients, jobs): credential redaction.

This module sits below both packages and imports neither, so ``splatbench.cloud`` and
``splatbench.ingest`` can each use it without importing the other.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

# Query parameters whose values are secrets (presigned S3 URLs, API tokens, basic-auth stand-ins).
# Matched against the whole key, case-insensitively; X-Amz-* covers every SigV4 parameter.
_SECRET_QUERY_KEY = re.compile(
    r"^(x-amz-.*|x-goog-.*|.*(secret|token|passw(or)?d|pwd|signature|credential|auth).*"
    r"|sig|key|apikey|api_key|access_?key.*|session.*)$",
    re.IGNORECASE,
)
_REDACTED = "REDACTED"


def redact_uri(uri: str) -> str:
    """Return ``uri`` with userinfo removed and secret-looking query values replaced.

    ``s3://KEY:SECRET@bucket/x?X-Amz-Signature=abc`` becomes
    ``s3://bucket/x?X-Amz-Signature=REDACTED``. Plain paths are returned unchanged.
    """
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri
    # Strip userinfo by hand rather than through urlsplit: pasted AWS secrets often contain a raw
    # "/", which would end urlsplit's netloc early and leave the secret in the "path". Whenever
    # there is an authority (not "file:///..."), everything up to the last "@" before the
    # query/fragment is treated as userinfo.
    head, qmark, tail = _split_query(rest)
    if head and not head.startswith("/") and "@" in head:
        head = head.rsplit("@", 1)[1]
    if qmark == "?":
        query, hash_, fragment = tail.partition("#")
        query = "&".join(_redact_pair(pair) for pair in query.split("&")) if query else query
        tail = query + hash_ + fragment
    return f"{scheme}{sep}{head}{qmark}{tail}"


def _split_query(rest: str) -> tuple[str, str, str]:
    """Split at the first ``?`` or ``#``: ``(head, separator, tail)``."""
    for i, ch in enumerate(rest):
        if ch in "?#":
            return rest[:i], ch, rest[i + 1 :]
    return rest, "", ""


def _redact_pair(pair: str) -> str:
    key, eq, _value = pair.partition("=")
    if eq and _SECRET_QUERY_KEY.match(unquote(key)):
        return f"{key}={_REDACTED}"
    return pair


_URI_IN_TEXT = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def redact_uris_in(text: str) -> str:
    """``text`` with every URI embedded in it passed through :func:`redact_uri`
    (botocore and HTTP error strings quote presigned URLs verbatim)."""
    return _URI_IN_TEXT.sub(lambda m: redact_uri(m.group(0)), text)
