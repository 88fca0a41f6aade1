"""``splatbench remote fetch``: a finished job becomes a DVC experiment.

The job's ``model.tar.gz`` holds what ``dvc exp run`` would have committed: ``dvc.lock``,
``params.yaml``, ``metrics/``, ``dvclive/``, the report and every other git-tracked file the run
changed (its DVC-cached outputs are in the DVC remote, pushed by the job). Fetching builds the
experiment commit DVC itself would make: the job's commit with those files laid over it, on the
baseline commit the run was launched from, under the ref DVC's own :class:`ExpRefInfo` names
(``refs/exps/<baseline>/<name>``). It is made with git plumbing and a temporary index, so the
user's work tree, index and branch are untouched; ``dvc exp show`` lists it, and
``dvc exp apply NAME && dvc pull`` gives its outputs.

The commit is deterministic (same tree, parent, message, identity and the job's end time as its
date), so fetching again is a no-op.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from splatbench.cloud.code_channel import baseline_of, ensure_commit, git
from splatbench.cloud.contract import (
    CODE_CHANNEL,
    PARAMS_FILE,
    JobSpec,
    params_sha256,
)
from splatbench.cloud.remote import Backend, RemoteError, describe
from splatbench.cloud.remote_state import load_record
from splatbench.cloud.s3 import parse_s3_uri, s3_error
from splatbench.cloud.sagemaker import JobLocation
from splatbench.errors import ConfigError
from splatbench.ingest.archive import ExtractLimits, safe_extract

JOB_METADATA = "job.json"
# The archive holds small git-tracked files (metrics, lock, report); DVC outputs travel via the
# DVC remote. A bigger archive means the image put data in /opt/ml/model by mistake.
MAX_MODEL_BYTES = 2 << 30
REQUIRED = ("dvc.lock", PARAMS_FILE, "metrics")
# Paths a job may not write into the experiment (git and DVC internals, credentials).
_FORBIDDEN_TOP = {".git", ".dvc"}
_IDENTITY = {"name": "splatbench remote", "email": "splatbench-remote@localhost"}


@dataclass(frozen=True)
class FetchResult:
    job: str
    experiment: str
    ref: str
    commit: str
    baseline: str
    files: int
    created: bool
    downloaded: int | None = None


def _model_archive(backend: Backend, desc: dict[str, Any], dest: Path) -> Path:
    uri = (desc.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
    if not uri:
        raise RemoteError(
            f"job {desc.get('TrainingJobName')} has no model artifacts",
            fix="the job did not finish its upload; check `splatbench remote logs JOB`",
        )
    loc = parse_s3_uri(uri)
    try:
        backend.s3.download_file(loc.bucket, loc.key, str(dest))
    except Exception as exc:
        raise s3_error(exc, "downloading", uri) from exc
    return dest


def _jobs_location(desc: dict[str, Any]) -> JobLocation | None:
    """The jobs prefix, recovered from the code channel's S3 URI (``<jobs>/code/<commit>/``)."""
    for channel in desc.get("InputDataConfig") or []:
        if channel.get("ChannelName") == CODE_CHANNEL:
            uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
            loc = parse_s3_uri(uri)
            parts = loc.key.rstrip("/").split("/")
            if len(parts) >= 2 and parts[-2] == "code":
                return JobLocation(loc.bucket, "/".join(parts[:-2]))
    return None


def _files(model: Path) -> list[Path]:
    files = sorted(p for p in model.rglob("*") if p.is_file())
    rel = [p.relative_to(model) for p in files]
    missing = [r for r in REQUIRED if not (model / r).exists()]
    if missing:
        raise RemoteError(
            f"the job's model.tar.gz lacks {', '.join(missing)}",
            fix="the image's entrypoint is older than this launcher; rebuild and push the image",
        )
    for path in rel:
        if path.parts[0] in _FORBIDDEN_TOP:
            raise RemoteError(
                f"the job's model.tar.gz writes into {path.parts[0]}/ ({path})",
                fix="refusing to import it; check the image that ran the job",
            )
    return [r for r in rel if str(r) != JOB_METADATA]


def _identity_env(when: datetime) -> dict[str, str]:
    stamp = f"{int(when.timestamp())} +0000"
    env = {"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}
    for role in ("AUTHOR", "COMMITTER"):
        for key in ("name", "email"):
            env[f"GIT_{role}_{key.upper()}"] = _IDENTITY[key]
    return env


def _dvc_exp_hash(lock_text: str) -> str:
    """The hash DVC puts in an experiment commit's message (over the lock file's stages)."""
    import yaml
    from dvc.utils import dict_sha256

    lock = yaml.safe_load(lock_text) or {}
    return dict_sha256(lock.get("stages") or {})


def fetch_job(
    repo: Path,
    backend: Backend,
    job: str,
    *,
    name: str | None = None,
    force: bool = False,
    data: bool = False,
) -> FetchResult:
    """Turn finished job ``job`` into a DVC experiment in ``repo`` (see the module docstring).

    With ``data``, the experiment's DVC-tracked outputs are also downloaded from the job's DVC
    remote into the local cache (``dvc fetch`` of that revision), so ``dvc exp apply NAME``
    checks them out at once; without it only git objects are written (metrics and params are
    in git, enough for ``dvc exp show`` and ``dvc metrics diff``).

    Raises:
        RemoteError: the job is not Completed, or its artifacts are incomplete or unsafe.
        ConfigError: the experiment exists with other contents (pass ``force``), or the
            job's commit cannot be found.
    """
    from dvc.repo.experiments.refs import ExpRefInfo

    desc = describe(backend, job)
    status = desc.get("TrainingJobStatus")
    if status != "Completed":
        reason = desc.get("FailureReason")
        raise RemoteError(
            f"job {job} is {status}" + (f": {reason}" if reason else ""),
            fix="fetch works on Completed jobs; `splatbench remote status JOB --wait` waits",
        )
    spec = JobSpec.from_hyperparameters(desc.get("HyperParameters") or {})
    record = load_record(repo, job)
    ensure_commit(repo, spec.commit, s3=backend.s3, jobs=_jobs_location(desc))
    baseline = record.baseline if record is not None else baseline_of(repo, spec.commit)
    experiment = name or spec.experiment or job
    ref = str(ExpRefInfo(baseline, experiment))
    ended = desc.get("TrainingEndTime") or desc.get("LastModifiedTime")
    when = ended if isinstance(ended, datetime) else datetime.now(timezone.utc)

    with tempfile.TemporaryDirectory(prefix="splatbench-fetch-") as tmp:
        archive = _model_archive(backend, desc, Path(tmp) / "model.tar.gz")
        model = Path(tmp) / "model"
        safe_extract(archive, model, ExtractLimits(max_total_bytes=MAX_MODEL_BYTES))
        files = _files(model)
        params_text = (model / PARAMS_FILE).read_text(encoding="utf-8")
        if params_sha256(params_text) != spec.params_sha256:
            raise RemoteError(
                f"the job's params.yaml (sha256 {params_sha256(params_text)[:12]}) is not the one "
                f"it was submitted with ({spec.params_sha256[:12]})",
                fix="refusing to import results for other parameters; check the job's log",
            )
        index = Path(tmp) / "index"
        env = {"GIT_INDEX_FILE": str(index)}
        git(repo, "read-tree", spec.commit, env=env)
        for rel in files:
            blob = git(repo, "hash-object", "-w", "--", str(model / rel))
            mode = "100755" if os.access(model / rel, os.X_OK) else "100644"
            git(
                repo,
                "update-index",
                "--add",
                "--cacheinfo",
                f"{mode},{blob},{rel.as_posix()}",
                env=env,
            )
        tree = git(repo, "write-tree", env=env)
    lock_blob = git(repo, "rev-parse", f"{tree}:dvc.lock")
    exp_hash = _dvc_exp_hash(git(repo, "cat-file", "-p", lock_blob))
    commit = git(
        repo,
        "commit-tree",
        tree,
        "-p",
        baseline,
        "-m",
        f"dvc: commit experiment {exp_hash}\n\nSageMaker training job {job}",
        env=_identity_env(when),
    )
    existing = _resolve(repo, ref)
    created = True
    if existing is not None:
        if existing == commit or git(repo, "rev-parse", f"{existing}^{{tree}}") == tree:
            created = False
            commit = existing
        elif not force:
            raise ConfigError(
                f"experiment {experiment!r} already exists with other results",
                fix="pass --name to fetch under another name, or --force to replace it",
            )
    if created:
        git(repo, "update-ref", ref, commit)
    downloaded = fetch_data(repo, commit, spec.dvc_remote) if data else None
    return FetchResult(job, experiment, ref, commit, baseline, len(files), created, downloaded)


def fetch_data(repo: Path, commit: str, remote: str | None) -> int:
    """``dvc fetch`` of revision ``commit``'s outputs into ``repo``'s cache; files fetched."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(repo)) as dvc:
            return int(dvc.fetch(revs=[commit], workspace=False, remote=remote) or 0)
    except DvcException as exc:
        raise RemoteError(
            f"downloading the experiment's outputs failed: {exc}",
            fix="check access to the DVC remote (`dvc remote list`, credentials), then fetch "
            "again with --data",
        ) from exc


def _resolve(repo: Path, ref: str) -> str | None:
    try:
        return git(repo, "rev-parse", "--verify", "--quiet", ref)
    except Exception:
        return None
