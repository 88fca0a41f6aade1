"""The real SOG/SPZ reference tool for tests: ``@playcanvas/splat-transform`` from npm.

Use from a test module (an assignment, as with ``s3_fixture``)::

    import splat_transform_fixture
    splat_transform = splat_transform_fixture.splat_transform

Installed once (``npm ci`` of tools/splat-transform's lockfile) into the tools cache, which
persists between sessions; tests skip, saying why, only when npm cannot install it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from splatbench.bench.splat_transform import SplatTransformError, ensure_splat_transform


@pytest.fixture(scope="session")
def splat_transform() -> Path:
    try:
        return ensure_splat_transform()
    except SplatTransformError as err:
        pytest.skip(f"splat-transform could not be installed from npm: {err.message[:400]}")
