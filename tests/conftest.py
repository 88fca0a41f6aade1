"""Shared fixtures: the repo root, and a git identity for tests that commit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session", autouse=True)
def _git_identity() -> None:
    # Tests that make commits must not depend on the machine's git config (CI has none).
    for key, value in {
        "GIT_AUTHOR_NAME": "splatbench tests",
        "GIT_AUTHOR_EMAIL": "tests@splatbench.invalid",
        "GIT_COMMITTER_NAME": "splatbench tests",
        "GIT_COMMITTER_EMAIL": "tests@splatbench.invalid",
    }.items():
        os.environ.setdefault(key, value)
