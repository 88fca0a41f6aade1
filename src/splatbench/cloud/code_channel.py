"""The ``code`` channel: the exact commit a job runs, as a git bundle in S3.

The job runs one commit: ``HEAD`` of a clean tree, or, with uncommitted changes the user asked to
send, a commit made by ``git stash create`` (it records the index and working tree of tracked
files without touching either). Either commit is pinned by a ref under
``refs/splatbench/code/`` so ``git gc`` keeps it, and sent as a ``git bundle`` (full history, so
the job needs no other remote; the commit is the bundle's ``HEAD`` and branch ``splatbench-job``,
so ``git clone code.bundle`` checks it out) under a key named by the commit: a re-run of the
same commit uploads nothing. ``remote fetch`` in another clone gets the commit back from the
same bundle.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from splatbench.cloud.contract import CODE_BUNDLE
from splatbench.cloud.s3 import S3Error
from splatbench.cloud.sagemaker import JobLocation
from splatbench.cloud.transfer import Uploader, UploadItem, download_verified, remote_sha256
from splatbench.errors import ConfigError, SplatbenchError
from splatbench.fsutil import sha256_file

if TYPE_CHECKING:
    from botocore.client import BaseClient

CODE_REF_PREFIX = "refs/splatbench/code/"
#: The branch (and HEAD) a code bundle carries the job's commit on.
BUNDLE_BRANCH = "splatbench-job"
_MAX_LISTED = 10


class GitError(SplatbenchError):
    """A git command failed."""


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run ``git -C repo ARGS``; stdout without the trailing newline.

    Raises:
        GitError: non-zero exit, with git's message.
    """
    proc = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if proc.returncode != 0:
        raise GitError(
            f"git {' '.join(args[:3])} failed in {repo}: "
            f"{proc.stderr.strip() or proc.stdout.strip()}",
            fix="run the command from inside the project's git clone",
        )
    return proc.stdout.rstrip("\n")


def repo_root(path: Path) -> Path:
    """The top of the git work tree containing ``path``."""
    try:
        return Path(git(Path(path), "rev-parse", "--show-toplevel"))
    except GitError as err:
        raise ConfigError(
            f"{path} is not inside a git clone",
            fix="run `splatbench remote` from the project's git clone (the job runs a commit)",
        ) from err


@dataclass(frozen=True)
class CodeVersion:
    """What a job runs and what its experiment hangs off.

    Attributes:
        commit: the commit the job checks out (``HEAD``, or a ``git stash create`` commit).
        baseline: the commit the fetched experiment is based on (``HEAD`` at submission).
        uncommitted: ``commit`` carries uncommitted changes of tracked files.
        untracked: untracked files that are *not* sent (the job cannot see them).
    """

    commit: str
    baseline: str
    uncommitted: bool = False
    untracked: tuple[str, ...] = ()


def _status(repo: Path) -> tuple[list[str], list[str]]:
    """(changed tracked paths, untracked paths) from ``git status --porcelain``."""
    out = git(repo, "status", "--porcelain=v1", "-z", "--untracked-files=all")
    changed, untracked = [], []
    entries = iter(out.split("\0"))
    for entry in entries:
        if not entry:
            continue
        code, path = entry[:2], entry[3:]
        if code == "??":
            untracked.append(path)
        elif code != "!!":
            changed.append(path)
            if code[0] in "RC":  # renames/copies carry the old path as a second entry
                next(entries, None)
    return changed, untracked


def code_version(repo: Path, *, include_uncommitted: bool = False) -> CodeVersion:
    """The commit a job should run, refusing a dirty tree unless ``include_uncommitted``.

    Raises:
        ConfigError: no commit yet, or uncommitted changes without ``include_uncommitted``.
    """
    try:
        head = git(repo, "rev-parse", "--verify", "HEAD^{commit}")
    except GitError as err:
        raise ConfigError(
            f"{repo} has no commit yet", fix="commit the project first: the job runs a commit"
        ) from err
    changed, untracked = _status(repo)
    commit, uncommitted = head, False
    if changed:
        if not include_uncommitted:
            listed = ", ".join(changed[:_MAX_LISTED]) + (
                " ..." if len(changed) > _MAX_LISTED else ""
            )
            raise ConfigError(
                f"the work tree has uncommitted changes ({listed}); a remote job runs a commit",
                fix="commit them, or pass --include-uncommitted to send them as a temporary "
                "commit (git stash create; your files and index stay as they are)",
            )
        commit = git(repo, "stash", "create", "splatbench remote run: uncommitted changes")
        uncommitted = bool(commit)
        commit = commit or head
    pin(repo, commit)
    return CodeVersion(commit, head, uncommitted, tuple(untracked))


def pin(repo: Path, commit: str) -> str:
    """Keep ``commit`` reachable (and bundle-able) under ``refs/splatbench/code/<commit>``."""
    ref = CODE_REF_PREFIX + commit
    git(repo, "update-ref", ref, commit)
    return ref


def has_commit(repo: Path, commit: str) -> bool:
    try:
        git(repo, "cat-file", "-e", f"{commit}^{{commit}}")
    except GitError:
        return False
    return True


def baseline_of(repo: Path, commit: str) -> str:
    """The commit an experiment of ``commit`` hangs off: itself, or the HEAD a
    ``git stash create`` commit was made on (its first parent; stash commits have two)."""
    parents = git(repo, "rev-list", "--parents", "-n", "1", commit).split()[1:]
    subject = git(repo, "log", "-1", "--format=%s", commit)
    if len(parents) == 2 and "splatbench remote run" in subject:
        return parents[0]
    return commit


def write_bundle(repo: Path, commit: str, dest: Path) -> Path:
    """A git bundle of ``commit`` with its history, cloneable and fetchable.

    The commit is published as branch ``splatbench-job`` and ``HEAD`` of the bundle (through a
    throw-away bare repository, so the user's clone gets no branch), so ``git clone BUNDLE``
    checks it out and ``git fetch BUNDLE splatbench-job`` works alike.
    """
    pin(repo, commit)
    with tempfile.TemporaryDirectory(prefix="splatbench-bundle-") as tmp:
        bare = Path(tmp) / "code.git"
        git(repo, "init", "--quiet", "--bare", str(bare))
        git(repo, "push", "--quiet", str(bare), f"{commit}:refs/heads/{BUNDLE_BRANCH}")
        git(bare, "symbolic-ref", "HEAD", f"refs/heads/{BUNDLE_BRANCH}")
        git(bare, "bundle", "create", "--quiet", str(dest), "HEAD", f"refs/heads/{BUNDLE_BRANCH}")
    return dest


def upload_code(s3: BaseClient, jobs: JobLocation, repo: Path, commit: str) -> tuple[str, bool]:
    """Make sure ``code.bundle`` for ``commit`` is in S3: ``(channel S3Prefix, uploaded?)``.

    The key is named by the commit, so an existing object is reused as is (any bundle at that
    key contains the commit; the job checks it out and fails loudly if not).
    """
    key = jobs.code_key(commit, CODE_BUNDLE)
    if remote_sha256(s3, jobs.bucket, key) is not None:
        return jobs.code_uri(commit), False
    with tempfile.TemporaryDirectory(prefix="splatbench-code-") as tmp:
        bundle = write_bundle(repo, commit, Path(tmp) / CODE_BUNDLE)
        item = UploadItem(bundle, key, sha256_file(bundle), bundle.stat().st_size)
        Uploader(s3, jobs.bucket).upload_one(item)
    return jobs.code_uri(commit), True


def ensure_commit(
    repo: Path, commit: str, *, s3: BaseClient | None, jobs: JobLocation | None
) -> None:
    """Make ``commit`` available in ``repo``: present already, or fetched from its code bundle.

    Raises:
        ConfigError: the commit is neither here nor in a bundle we can reach.
    """
    if has_commit(repo, commit):
        pin(repo, commit)
        return
    if s3 is None or jobs is None:
        raise ConfigError(
            f"commit {commit[:12]} of the job is not in {repo}",
            fix="git fetch the branch it was launched from, or give the jobs S3 location "
            "(--jobs-uri) so it can be read from the job's code bundle",
        )
    key = jobs.code_key(commit, CODE_BUNDLE)
    found = remote_sha256(s3, jobs.bucket, key)
    if found is None:
        raise ConfigError(
            f"commit {commit[:12]} is not in {repo} and s3://{jobs.bucket}/{key} does not exist",
            fix="git fetch the branch the job was launched from",
        )
    digest, size = found
    with tempfile.TemporaryDirectory(prefix="splatbench-code-") as tmp:
        bundle = Path(tmp) / CODE_BUNDLE
        if digest:
            download_verified(s3, jobs.bucket, key, bundle, sha256=digest, size=size)
        else:  # uploaded by another tool without our metadata
            try:
                s3.download_file(jobs.bucket, key, str(bundle))
            except Exception as exc:
                raise S3Error(f"downloading s3://{jobs.bucket}/{key} failed: {exc}") from exc
        git(repo, "bundle", "verify", "--quiet", str(bundle))
        git(repo, "fetch", "--quiet", str(bundle), f"refs/heads/{BUNDLE_BRANCH}")
    if has_commit(repo, commit):
        pin(repo, commit)  # FETCH_HEAD alone would not keep it from git gc
    else:
        raise ConfigError(
            f"the code bundle s3://{jobs.bucket}/{key} does not contain {commit[:12]}",
            fix="the bundle was replaced; git fetch the branch the job was launched from",
        )


def export_tree(repo: Path, commit: str, dest: Path, paths: tuple[str, ...]) -> Path:
    """Write the files of ``commit`` under ``paths`` (those that exist) into ``dest``."""
    present = [p for p in paths if _exists(repo, commit, p)]
    dest.mkdir(parents=True, exist_ok=True)
    if not present:
        return dest
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", "--format=tar", commit, "--", *present],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        raise GitError(f"git archive {commit[:12]} failed: {archive.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def _exists(repo: Path, commit: str, path: str) -> bool:
    try:
        git(repo, "cat-file", "-e", f"{commit}:{path}")
    except GitError:
        return False
    return True
