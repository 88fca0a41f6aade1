"""End to end: `splatbench remote run` -> the local executor (the real container entrypoint, real
DVC, a real S3 server) -> `splatbench remote fetch` -> a DVC experiment equal to a local
`dvc exp run` with the same parameters.

One remote job and one local experiment on a small copy of the built-in scene are shared by the
module (they run concurrently: the job in the executor's detached worker, the local run in a
clone). Every command runs as a subprocess, the way a user types it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import s3_fixture
from project_copy import copy_project
from s3_fixture import SeaweedS3, scan_for_secrets

pytestmark = pytest.mark.integration
seaweedfs = s3_fixture.seaweedfs

TRAIN_STEPS = 120
OVERRIDE = "strategy.grow_grad2d=1e-4"
# Metric leaves that measure the machine rather than the result (times, speeds, memory, paths).
# Keys that legitimately differ between the job and the local run (timings, the machine's name,
# the LPIPS weight files' provenance). Everything else, the headline files (stop_reason, steps,
# Gaussians, PSNR...) and the details records alike, must match.
_VOLATILE = re.compile(
    r"seconds|per_second|peak_memory|device_name|lin_file|backbone_file|lpips\.(reason|fix)"
    r"|torch_version"
)


# Numerical-library settings of this machine (it sets OPENBLAS_CORETYPE, for one). The local
# executor starts the "container" with a clean environment, as SageMaker does, so the comparison
# run must not have them either: OpenBLAS's kernel choice changes float results in the last bit
# (the synthetic scene's camera poses, hence everything downstream).
_NUMERICS_ENV = re.compile(r"^(OPENBLAS_|GOTO_|OMP_|MKL_|BLIS_|NVPL_|NPY_)")


def _env(server: SeaweedS3, home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AWS_") and not _NUMERICS_ENV.match(k)
    }
    env.update(server.env())
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    env["DVC_SITE_CACHE_DIR"] = str(home / "dvc-site")
    return env


def _run(args: list[str], cwd: Path, env: dict[str, str], ok: tuple[int, ...] = (0,)) -> Any:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode in ok, (
        f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    )
    return proc


def _sb(*args: str, cwd: Path, env: dict[str, str], ok: tuple[int, ...] = (0,)) -> Any:
    return _run([str(Path(sys.executable).parent / "splatbench"), *args], cwd, env, ok)


def _dvc(*args: str, cwd: Path, env: dict[str, str]) -> str:
    proc = _run([sys.executable, "-m", "dvc", *args], cwd, env)
    return proc.stdout + proc.stderr


def _git(*args: str, cwd: Path, env: dict[str, str]) -> str:
    return _run(["git", *args], cwd, env).stdout


def _leaves(doc: Any, path: str = "") -> dict[str, Any]:
    if isinstance(doc, dict):
        out: dict[str, Any] = {}
        for key, value in doc.items():
            out.update(_leaves(value, f"{path}.{key}" if path else str(key)))
        return out
    if isinstance(doc, list):
        out = {}
        for i, value in enumerate(doc):
            out.update(_leaves(value, f"{path}[{i}]"))
        return out
    return {path: doc}


def _stable(text: str) -> dict[str, Any]:
    return {k: v for k, v in _leaves(json.loads(text)).items() if not _VOLATILE.search(k)}


@pytest.fixture(scope="module")
def e2e(tmp_path_factory: pytest.TempPathFactory, repo_root: Path, seaweedfs: SeaweedS3) -> Any:
    pytest.importorskip("splatbench.cloud.local_executor", reason="needs the local executor")
    home = tmp_path_factory.mktemp("remote-e2e")
    env = _env(seaweedfs, home)
    bucket = seaweedfs.make_bucket("e2e")
    project = copy_project(repo_root, home / "project", max_steps=TRAIN_STEPS)
    _git("init", "-q", "-b", "main", cwd=project, env=env)
    # The DVC remote is committed (the job reads it); credentials stay in the environment.
    _dvc("remote", "add", "-d", "storage", f"s3://{bucket}/dvc", cwd=project, env=env)
    _dvc("remote", "modify", "storage", "endpointurl", seaweedfs.endpoint_url, cwd=project,
         env=env)  # fmt: skip
    _git("add", "-A", cwd=project, env=env)
    _git("commit", "-qm", "small project", cwd=project, env=env)
    head = _git("rev-parse", "HEAD", cwd=project, env=env).strip()
    jobs_uri = f"s3://{bucket}/jobs"
    remote = ["--backend", "local", "--endpoint-url", seaweedfs.endpoint_url]

    dry = _sb("remote", "run", "-S", OVERRIDE, "--dry-run", "--jobs-uri", jobs_uri, *remote,
              cwd=project, env=env)  # fmt: skip
    submitted = _sb("remote", "run", "-S", OVERRIDE, "-n", "remote-small", "--no-wait", "--yes",
                    "--jobs-uri", jobs_uri, *remote, cwd=project, env=env)  # fmt: skip
    job = submitted.stdout.split()[0]
    assert job.startswith("sb-remote-small-"), submitted.stdout

    # Meanwhile, the same experiment locally, in a clone with its own empty DVC cache.
    local = home / "local"
    _git("clone", "-q", f"file://{project}", str(local), cwd=home, env=env)
    local_run = _dvc("exp", "run", "-n", "local-small", "-S", OVERRIDE, cwd=local, env=env)

    status = _sb("remote", "status", job, "--wait", cwd=project, env=env, ok=(0, 1))
    assert status.returncode == 0, status.stdout + status.stderr
    fetched = _sb("remote", "fetch", job, "--data", cwd=project, env=env)
    return {
        "env": env,
        "home": home,
        "project": project,
        "local": local,
        "head": head,
        "job": job,
        "jobs_uri": jobs_uri,
        "remote": remote,
        "dry": dry,
        "status": status,
        "fetched": fetched,
        "local_run": local_run,
        "server": seaweedfs,
        "bucket": bucket,
    }


def test_dry_run_request_is_what_was_submitted(e2e: dict[str, Any]) -> None:
    request = json.loads(e2e["dry"].stdout[e2e["dry"].stdout.index("{") :])
    assert request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == (
        f"{e2e['jobs_uri']}/code/{e2e['head']}/"
    )
    described = json.loads(
        _sb("remote", "status", e2e["job"], "--json", cwd=e2e["project"], env=e2e["env"]).stdout
    )
    assert described["TrainingJobStatus"] == "Completed"
    assert (
        described["HyperParameters"]["splatbench_params_sha256"]
        == (request["HyperParameters"]["splatbench_params_sha256"])
    )
    assert described["ModelArtifacts"]["S3ModelArtifacts"].endswith(
        f"/jobs/output/{e2e['job']}/output/model.tar.gz"
    )


def test_fetched_metrics_equal_a_local_dvc_exp_run(e2e: dict[str, Any]) -> None:
    project, local, env = e2e["project"], e2e["local"], e2e["env"]
    ref = _git("for-each-ref", "--format=%(refname)", "refs/exps", cwd=project, env=env).split()
    exp_ref = next(r for r in ref if r.endswith("/remote-small"))
    files = [
        p
        for p in _git("ls-tree", "-r", "--name-only", exp_ref, "--", "metrics", cwd=project,
                      env=env).split()
        if p.endswith(".json")
    ]  # fmt: skip
    # The headline metrics and, under details/, each stage's full record (ingest has no headline).
    headline = {"sfm.json", "train.json", "compress.json", "export.json", "eval.json"}
    assert {Path(p).name for p in files if Path(p).parent.name == "blocks"} == headline
    assert {Path(p).name for p in files if Path(p).parent.name == "details"} == {
        "ingest.json",
        *headline,
    }
    for path in files:
        remote = _stable(_git("show", f"{exp_ref}:{path}", cwd=project, env=env))
        here = _stable((local / path).read_text())
        assert remote == here, path
    train = json.loads(_git("show", f"{exp_ref}:metrics/blocks/train.json", cwd=project, env=env))
    assert train["steps"] == TRAIN_STEPS and train["stop_reason"] == "max_steps"
    params = _git("show", f"{exp_ref}:params.yaml", cwd=project, env=env)
    assert params == (local / "params.yaml").read_text()


def test_experiment_is_listed_and_comparable(e2e: dict[str, Any]) -> None:
    project, env = e2e["project"], e2e["env"]
    shown = json.loads(_dvc("exp", "show", "--json", cwd=project, env=env))
    names = [rev["name"] for row in shown for exp in row.get("experiments") or []
             for rev in exp["revs"]]  # fmt: skip
    assert "remote-small" in names
    # HEAD has no metrics in this copy (only the experiments ran): DVC says so on stderr.
    proc = _run([sys.executable, "-m", "dvc", "metrics", "diff", "HEAD", "remote-small", "--json"],
                project, env)  # fmt: skip
    diff, _ = json.JSONDecoder().raw_decode(proc.stdout)
    assert "metrics/blocks/eval.json" in diff
    table = _sb("diff", "remote-small", "--md", cwd=project, env=env, ok=(0, 1))
    assert "psnr" in table.stdout.lower()
    again = _sb("remote", "fetch", e2e["job"], cwd=project, env=env)
    assert "already fetched" in again.stdout


def test_status_logs_and_list(e2e: dict[str, Any]) -> None:
    project, env, job = e2e["project"], e2e["env"], e2e["job"]
    logs = _sb("remote", "logs", job, cwd=project, env=env).stdout
    for stage in ("ingest@blocks", "sfm@blocks", "train@blocks", "report"):
        assert stage in logs, stage
    listed = _sb("remote", "list", cwd=project, env=env).stdout
    assert job in listed and "Completed" in listed


def test_apply_and_pull_leave_dvc_status_clean(e2e: dict[str, Any]) -> None:
    project, env = e2e["project"], e2e["env"]
    _dvc("exp", "apply", "remote-small", cwd=project, env=env)
    _dvc("pull", cwd=project, env=env)
    assert "up to date" in _dvc("status", cwd=project, env=env)
    assert (project / "data" / "splats" / "blocks" / "point_cloud.ply").is_file()
    repro = _dvc("repro", cwd=project, env=env)
    assert "Running stage" not in repro, repro


def test_a_failing_stage_is_surfaced(e2e: dict[str, Any]) -> None:
    project, env = e2e["project"], e2e["env"]
    _git("checkout", "-q", "--", ".", cwd=project, env=env)  # undo the applied experiment
    bad = "benchmark.scene_settings.blocks.source=file:///nonexistent/blocks.zip"
    result = _sb("remote", "run", "ingest@blocks", "-S", bad, "--yes", "--jobs-uri",
                 e2e["jobs_uri"], *e2e["remote"], cwd=project, env=env, ok=(1,))  # fmt: skip
    output = result.stdout + result.stderr
    assert "Failed" in output
    assert "ingest@blocks" in output and "nonexistent" in output
    assert "log lines of" in output  # the log tail follows the FailureReason


def test_no_secret_reaches_records_logs_or_outputs(e2e: dict[str, Any]) -> None:
    project = e2e["project"]
    texts = [e2e[k].stdout + e2e[k].stderr for k in ("dry", "status", "fetched")]
    places = [project / ".splatbench" / "remote", project / "metrics", project / "dvc.lock"]
    assert scan_for_secrets(places, texts) == []


def test_stop_ends_a_running_job_as_stopped(e2e: dict[str, Any]) -> None:
    project, env = e2e["project"], e2e["env"]
    _git("checkout", "-q", "--", ".", cwd=project, env=env)
    submitted = _sb("remote", "run", "train@blocks", "-S", "strategy.grow_grad2d=3e-4", "--no-wait",
                    "--yes", "--jobs-uri", e2e["jobs_uri"], *e2e["remote"], cwd=project,
                    env=env)  # fmt: skip
    job = submitted.stdout.split()[0]
    stopped = _sb("remote", "stop", job, cwd=project, env=env)
    assert f"{job}: stopping" in stopped.stdout
    status = _sb("remote", "status", job, "--wait", cwd=project, env=env, ok=(1,))
    assert "Stopped" in status.stdout
    again = _sb("remote", "stop", job, cwd=project, env=env)
    assert "already Stopped" in again.stdout
