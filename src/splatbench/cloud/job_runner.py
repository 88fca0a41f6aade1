"""The container's SageMaker ``train`` branch: run a pipeline target from the job's code channel.

``containers/entrypoint.sh train`` execs ``python -m splatbench.cloud.job_runner``. Inside the
SageMaker layout (:class:`~splatbench.cloud.contract.SageMakerPaths`) the runner

1. reads ``hyperparameters.json`` into a :class:`~splatbench.cloud.contract.JobSpec` and
   ``resourceconfig.json`` (one job is one host: more than one is an error; per-scene
   parallelism is the launcher's fan-out over jobs);
2. clones the ``code`` channel's git bundle and checks out ``JobSpec.commit`` in a work
   directory, and makes every stage import *that* ``src/`` (``PYTHONPATH``; the image's own
   editable install is only the runner), checked by importing ``splatbench`` the way a stage
   does;
3. composes ``params.yaml`` with the overrides exactly as ``dvc exp run -S`` does and refuses
   to run unless its sha256 is ``JobSpec.params_sha256``;
4. reproduces the targets one stage at a time (DVC's own plan order) with
   ``dvc repro --single-item --pull``: a stage whose lock entry still matches is pulled from the
   DVC remote rather than recomputed; after each stage that ran, ``dvc push`` sends its
   outputs, and the job journal (``dvc.lock`` and the stage's ``cache: false`` outputs, which
   no DVC remote holds) is written under ``/opt/ml/checkpoints``, which SageMaker syncs to S3.
   A restarted spot job restores the journal, so finished stages (SfM) are pulled, not re-run,
   and training resumes from the trainer's checkpoint in the same directory;
5. writes what ``dvc exp run`` would commit (every file git sees as new or modified:
   ``dvc.lock``, ``params.yaml``, the ``cache: false`` outputs metrics/, dvclive/, reports/)
   and ``job.json`` into ``/opt/ml/model``; on any error it writes
   ``/opt/ml/output/failure`` (the failing stage, the error and the log tail; SageMaker shows
   its first 1024 characters as FailureReason) and exits non-zero.

SIGTERM (a stop, a spot interruption) is forwarded to the running stage's processes (not to DVC
itself, which then records the failure and releases its locks): the trainer checkpoints and
exits; finished stages are already pushed; the runner exits with 143.

Environment honoured: ``SPLATBENCH_SM_ROOT`` (the ``/opt/ml`` root), ``SPLATBENCH_WORK_DIR``
(where the code is checked out; default ``<root>/work``), ``TRAINING_JOB_NAME`` /
``TRAINING_JOB_ARN`` (recorded in job.json), and the AWS credential/endpoint variables, which
DVC uses to reach the remote.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from splatbench.cloud.contract import (
    CODE_BUNDLE,
    CODE_CHANNEL,
    PARAMS_FILE,
    JobSpec,
    SageMakerPaths,
    compose_params,
    params_sha256,
)
from splatbench.errors import ConfigError, SplatbenchError
from splatbench.fsutil import atomic_write_json, atomic_write_text, read_json

WORK_DIR_ENV = "SPLATBENCH_WORK_DIR"
JOURNAL_DIR = "_splatbench_job"
"""Under the checkpoint directory: ``dvc.lock``, ``outs/`` and ``state.json`` of finished stages."""
JOB_JSON = "job.json"
JOB_JSON_SCHEMA_VERSION = 1
FAILURE_REASON_CHARS = 1024  # SageMaker truncates FailureReason to this
TAIL_LINES = 200
PUSH_GRACE_S = 60.0  # after SIGTERM, a push of finished work may take this long
STAGE_GRACE_S = 100.0  # after SIGTERM, the stage's processes get this long to exit
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_TERMINATED = 128 + signal.SIGTERM
_PREFIX = "[splatbench-job]"


class StageFailed(SplatbenchError):
    """A pipeline stage (or the DVC command around it) failed."""

    def __init__(self, stage: str, error: str, returncode: int) -> None:
        self.stage = stage
        self.error = error
        self.returncode = returncode
        super().__init__(f"stage {stage} failed: {error}")


class Terminated(Exception):
    """SIGTERM/SIGINT arrived; ``stage`` is what was running."""

    def __init__(self, signum: int, stage: str | None) -> None:
        self.signum = signum
        self.stage = stage
        name = signal.Signals(signum).name
        super().__init__(f"{name} received" + (f" during stage {stage}" if stage else ""))


@dataclass(frozen=True)
class PlannedStage:
    """One step of the plan: the DVC address and its ``cache: false`` outputs (repo-relative)."""

    address: str
    uncached_outs: tuple[str, ...]


@dataclass
class StageRecord:
    stage: str
    outcome: str  # ran | pulled | unchanged | restored | failed | interrupted
    seconds: float
    pushed: bool = False


@dataclass
class _Child:
    proc: subprocess.Popen[str]
    kind: str  # stage | push | setup
    stage: str | None
    signalled: list[Any] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Pure helpers (unit-tested without a job)
# ---------------------------------------------------------------------------------------------


def read_job_spec(paths: SageMakerPaths) -> JobSpec:
    """The job spec from ``hyperparameters.json``."""
    if not paths.hyperparameters.is_file():
        raise ConfigError(
            f"{paths.hyperparameters} not found: this is not a SageMaker training job",
            fix="submit the job with `splatbench remote run` (or run the image with `repro` "
            "for a local pipeline run)",
        )
    try:
        data = read_json(paths.hyperparameters)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{paths.hyperparameters} is not valid JSON ({exc.msg})",
            fix="SageMaker writes this file; resubmit the job",
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(
            f"{paths.hyperparameters} must hold a JSON object", fix="resubmit the job"
        )
    return JobSpec.from_hyperparameters(data)


def read_resource_config(paths: SageMakerPaths) -> dict[str, Any]:
    """``resourceconfig.json``; a job runs on exactly one host.

    Without the file (the image run by hand) the job is taken to be single-host.
    """
    if not paths.resource_config.is_file():
        return {"current_host": "algo-1", "hosts": ["algo-1"]}
    config = read_json(paths.resource_config)
    hosts = config.get("hosts") or []
    if len(hosts) > 1:
        raise ConfigError(
            f"{paths.resource_config}: the job has {len(hosts)} hosts ({', '.join(hosts)}); "
            "a splatbench job runs on one host, and more would each run the whole pipeline",
            fix="submit with InstanceCount 1; to run scenes in parallel, let "
            "`splatbench remote run --sweep` fan out one job per scene",
        )
    return dict(config)


def stage_outcome(address: str, output: str) -> str:
    """What DVC did with ``address`` according to its output."""
    if f"Running stage '{address}'" in output:
        return "ran"
    if f"Stage '{address}' is cached - skipping run" in output:
        return "restored"
    if f"Pulling data for stage: '{address}'" in output:
        return "pulled"
    if f"Stage '{address}' didn't change" in output:
        return "unchanged"
    return "ran"


_EXC_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b.*")


def error_summary(lines: list[str]) -> str:
    """The most telling error in a command's output.

    Preference: the stage's own ``error:``/``fix:`` lines (splatbench's user errors), then the
    last line of a Python traceback, then DVC's ``ERROR:`` line, then the last line.
    """
    text = [line.rstrip() for line in lines if line.strip()]
    for i in range(len(text) - 1, -1, -1):
        if text[i].startswith("error:"):
            found = [text[i]]
            if i + 1 < len(text) and text[i + 1].startswith("fix:"):
                found.append(text[i + 1])
            return " ".join(found)
    for line in reversed(text):
        if _EXC_LINE.match(line):
            return line
    for line in reversed(text):
        if line.startswith("ERROR:"):
            return line
    return text[-1] if text else "no output"


def failure_text(summary: str, tail: list[str], limit: int = FAILURE_REASON_CHARS) -> str:
    """``summary`` then as much of the log ``tail`` (its newest lines) as fits in ``limit``."""
    head = summary.strip()
    if len(head) >= limit - 20:
        return head[: limit - 3] + "..."
    budget = limit - len(head) - len("\nlog tail:\n")
    kept: list[str] = []
    for line in reversed([t.rstrip() for t in tail if t.strip()]):
        if len(line) + 1 > budget:
            break
        kept.append(line)
        budget -= len(line) + 1
    if not kept:
        return head
    return head + "\nlog tail:\n" + "\n".join(reversed(kept))


def _secrets_from_env() -> None:
    from splatbench.cloud.s3 import register_secret

    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID"):
        register_secret(os.environ.get(name))


def _scrub(text: str) -> str:
    from splatbench.cloud.s3 import scrub

    return scrub(text)


def plan_stages(project: Path, targets: tuple[str, ...]) -> list[PlannedStage]:
    """The stages ``dvc repro TARGETS`` would visit, in its order (DVC's own planner)."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo
    from dvc.repo.reproduce import collect_stages, get_active_graph, plan_repro

    previous = os.getcwd()
    os.chdir(project)  # DVC resolves targets against the working directory
    try:
        with Repo(str(project)) as repo:
            stages = collect_stages(repo, list(targets) or ["dvc.yaml"])
            steps = plan_repro(get_active_graph(repo.index.graph), stages)
            root = Path(repo.root_dir)
            return [
                PlannedStage(
                    stage.addressing,
                    tuple(
                        Path(os.path.relpath(out.fs_path, root)).as_posix()
                        for out in stage.outs
                        if not out.use_cache
                    ),
                )
                for stage in steps
            ]
    except DvcException as exc:
        raise ConfigError(
            f"cannot plan targets {list(targets)} in {project / 'dvc.yaml'}: {exc}",
            fix="name stages of the job's commit (e.g. train@garden, report); "
            "`dvc stage list` shows them",
        ) from exc
    finally:
        os.chdir(previous)


def changed_files(project: Path) -> list[str]:
    """Repo-relative paths git reports as added, modified or untracked (not ignored, not
    deleted) in ``project``."""
    out = subprocess.run(
        ["git", "status", "--porcelain=v1", "-z", "--untracked-files=all"],
        cwd=project,
        capture_output=True,
        check=True,
    ).stdout.decode("utf-8", "surrogateescape")
    entries = out.split("\0")
    paths: list[str] = []
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if len(entry) < 4:
            continue
        status, path = entry[:2], entry[3:]
        if "R" in status or "C" in status:
            i += 1  # the entry after a rename or copy is its source path
        if "D" not in status:
            paths.append(path)
    return sorted(paths)


def default_remote(project: Path) -> str | None:
    """The DVC remote named as default in the committed ``.dvc/config``."""
    from dvc.config import Config

    config = Config(dvc_dir=str(project / ".dvc"), validate=False).load_one("repo")
    return config.get("core", {}).get("remote")


def remotes(project: Path) -> list[str]:
    from dvc.config import Config

    config = Config(dvc_dir=str(project / ".dvc"), validate=False).load_one("repo")
    return sorted(config.get("remote", {}))


# ---------------------------------------------------------------------------------------------
# The journal: what a restarted job needs to skip finished stages
# ---------------------------------------------------------------------------------------------


class Journal:
    """``<checkpoints>/_splatbench_job/``: ``state.json``, ``dvc.lock``, ``outs/<path>``.

    Written after every finished stage (SageMaker syncs the checkpoint directory to S3 as it
    changes), read back when a restarted job finds it.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def state_path(self) -> Path:
        return self.root / "state.json"

    def restore(self, project: Path, spec: JobSpec) -> list[str]:
        """Copy the journal into ``project``; the finished stages (empty when none or foreign)."""
        if not self.state_path.is_file():
            return []
        state = read_json(self.state_path)
        if state.get("commit") != spec.commit or state.get("params_sha256") != spec.params_sha256:
            _log(
                f"checkpoint journal {self.root} belongs to another run "
                f"(commit {state.get('commit')}, params {state.get('params_sha256')}); ignored"
            )
            return []
        lock = self.root / "dvc.lock"
        if lock.is_file():
            shutil.copy2(lock, project / "dvc.lock")
        outs = self.root / "outs"
        if outs.is_dir():
            for src in sorted(outs.rglob("*")):
                if src.is_file():
                    dest = project / src.relative_to(outs)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, dest)
        return list(state.get("finished", []))

    def record(
        self, project: Path, spec: JobSpec, stage: PlannedStage, finished: list[str]
    ) -> None:
        for rel in stage.uncached_outs:
            src = project / rel
            dest = self.root / "outs" / rel
            if src.is_dir():
                tmp = dest.with_name(f".{dest.name}.tmp")
                shutil.rmtree(tmp, ignore_errors=True)
                shutil.copytree(src, tmp)
                shutil.rmtree(dest, ignore_errors=True)
                os.replace(tmp, dest)
            elif src.is_file():
                _copy_atomic(src, dest)
        _copy_atomic(project / "dvc.lock", self.root / "dvc.lock")
        atomic_write_json(
            self.state_path,
            {"commit": spec.commit, "params_sha256": spec.params_sha256, "finished": finished},
        )


def _copy_atomic(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.copy2(src, tmp)
    os.replace(tmp, dest)


def _log(message: str) -> None:
    print(f"{_PREFIX} {message}", flush=True)


# ---------------------------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------------------------


_PROBE = """
import importlib.metadata as md, json, sys
import splatbench
def version(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None
info = {"splatbench_file": splatbench.__file__, "python": sys.version.split()[0],
        "splatbench": getattr(splatbench, "__version__", None), "executable": sys.executable}
for name in ("dvc", "torch", "gsplat", "pycolmap", "numpy"):
    info[name] = version(name)
try:
    import torch
    info["cuda_available"] = torch.cuda.is_available()
    info["cuda_device"] = torch.cuda.get_device_name(0) if info["cuda_available"] else None
except Exception as exc:  # recorded, not fatal: the stages will say what is wrong
    info["cuda_available"] = None
    info["torch_error"] = repr(exc)
print(json.dumps(info))
"""


class JobRunner:
    """One run of the ``train`` branch (see the module docstring)."""

    def __init__(self, paths: SageMakerPaths, work_dir: Path | None = None) -> None:
        self.paths = paths
        self.work_dir = work_dir or Path(os.environ.get(WORK_DIR_ENV) or paths.root / "work")
        self.project = self.work_dir / "project"
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.child: _Child | None = None
        self.signum: int | None = None
        self.records: list[StageRecord] = []
        self.spec: JobSpec | None = None
        self.resource: dict[str, Any] = {}
        self.code_info: dict[str, Any] = {}
        self.journal = Journal(paths.checkpoints / JOURNAL_DIR)
        self.journal_restored: list[str] = []
        self.plan: list[PlannedStage] = []
        self.t0 = time.monotonic()
        self.timings: dict[str, float] = {}
        self.current_stage: str | None = None
        self.env: dict[str, str] = {}

    # -- signals ------------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # No printing here: the main thread may be in the middle of writing to stdout.
        if self.signum is not None:
            return
        self.signum = signum
        child = self.child
        if child is None or child.proc.poll() is not None:
            return
        if child.kind == "stage":
            # The stage's processes, not DVC: DVC then sees the stage fail, records nothing
            # for it and releases its locks.
            import psutil

            try:
                procs = psutil.Process(child.proc.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                procs = []
            for proc in procs:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.send_signal(signal.SIGTERM)
            child.signalled = procs
        elif child.kind == "push":
            _kill_later(child.proc.pid)  # finished work is being pushed: let it finish
        else:
            _killpg(child.proc.pid, signal.SIGTERM)

    def _check_signal(self) -> None:
        if self.signum is not None:
            raise Terminated(self.signum, self.current_stage)

    # -- subprocesses -------------------------------------------------------------------------

    def _run(
        self, args: list[str], *, kind: str, cwd: Path | None = None, stage: str | None = None
    ) -> tuple[int, list[str]]:
        """Run ``args``, streaming its output to the job log; ``(returncode, lines)``."""
        if kind != "push":
            self._check_signal()  # a signal that came between two commands stops the next one
        proc = subprocess.Popen(
            args,
            cwd=cwd or self.project,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            bufsize=1,
            start_new_session=True,  # our signals reach it only when we forward them
        )
        child = _Child(proc, kind, stage)
        self.child = child
        if kind == "push" and self.signum is not None:
            # Signalled before the push began: push the finished stage anyway, within a bound.
            _kill_later(proc.pid)
        lines: list[str] = []
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = _scrub(raw.rstrip("\n"))
                print(line, flush=True)
                self.tail.append(line)
                lines.append(line)
            returncode = proc.wait()
        finally:
            self.child = None
        if child.signalled:
            import psutil

            _, alive = psutil.wait_procs(child.signalled, timeout=STAGE_GRACE_S)
            for proc_left in alive:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc_left.kill()
        return returncode, lines

    def _dvc(self, *args: str, kind: str = "setup", stage: str | None = None) -> list[str]:
        returncode, lines = self._run([sys.executable, "-m", "dvc", *args], kind=kind, stage=stage)
        self._check_signal()
        if returncode != 0:
            raise StageFailed(stage or f"dvc {args[0]}", error_summary(lines), returncode)
        return lines

    # -- steps --------------------------------------------------------------------------------

    def checkout_code(self, spec: JobSpec) -> None:
        bundle = self.paths.channel(CODE_CHANNEL) / CODE_BUNDLE
        if not bundle.is_file():
            raise ConfigError(
                f"{bundle} not found: the job has no code channel",
                fix=f"submit with `splatbench remote run`, which uploads the commit as a git "
                f"bundle and passes it as the '{CODE_CHANNEL}' channel",
            )
        if self.project.exists():
            shutil.rmtree(self.project)
        self.project.parent.mkdir(parents=True, exist_ok=True)
        steps = [
            ["git", "clone", "--quiet", "--no-checkout", str(bundle), str(self.project)],
            ["git", "-C", str(self.project), "checkout", "--quiet", "--detach", spec.commit],
        ]
        for args in steps:
            returncode, lines = self._run(args, kind="setup", cwd=self.project.parent)
            self._check_signal()
            if returncode != 0:
                raise ConfigError(
                    f"cannot check out commit {spec.commit} from {bundle}: {error_summary(lines)}",
                    fix="the bundle must contain the job's commit: resubmit with "
                    "`splatbench remote run` from a clone that has it",
                )
        head = subprocess.run(
            ["git", "-C", str(self.project), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if head != spec.commit:
            raise ConfigError(f"checked out {head}, expected {spec.commit}", fix="resubmit the job")

    def code_environment(self) -> None:
        """Stages import the checkout's ``src/``; prove it by importing as a stage would."""
        from splatbench.train.interrupt import INTERRUPTED_EXIT_CODE  # noqa: F401 - image sanity

        env = dict(os.environ)
        src = str(self.project / "src")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        env["SPLATBENCH_CHECKPOINT_DIR"] = str(self.paths.checkpoints)
        env["DVC_NO_ANALYTICS"] = "1"
        # Bytecode caches in the checkout would change the hashes of src/ deps (for a project
        # whose .dvcignore does not list them) and stop later jobs from pulling those stages.
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.env = env
        proc = subprocess.run(
            ["python", "-c", _PROBE],
            cwd=self.project,
            env=env,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise ConfigError(
                f"the code at {self.project} does not import: "
                f"{error_summary(proc.stderr.splitlines())}",
                fix="the image lacks a dependency of this commit: rebuild the image from it",
            )
        info = json.loads(proc.stdout.strip().splitlines()[-1])
        imported = Path(info["splatbench_file"]).resolve()
        if not imported.is_relative_to(Path(src).resolve()):
            raise ConfigError(
                f"stages would import splatbench from {imported}, not from the job's code {src}",
                fix="the image must not put its own copy ahead of PYTHONPATH (no .pth path "
                "hooks that precede it); rebuild the image",
            )
        self.code_info = info
        _log(f"code: commit {self.spec.commit if self.spec else '?'}, splatbench from {imported}")

    def compose(self, spec: JobSpec) -> None:
        text = compose_params(self.project, spec.overrides)
        digest = params_sha256(text)
        if digest != spec.params_sha256:
            raise ConfigError(
                f"params.yaml composed at commit {spec.commit} with overrides "
                f"{list(spec.overrides)} has sha256 {digest}, the launcher's was "
                f"{spec.params_sha256}",
                fix="the image's DVC/Hydra versions differ from the launcher's, or the commit "
                "differs: rebuild the image from the launcher's environment and resubmit",
            )
        atomic_write_text(self.project / PARAMS_FILE, text)

    def record_hardware(self) -> None:
        """Write hardware.yaml with the job's own code (what ``auto`` means on this instance):
        the train and evaluate stages refuse to record results under another machine's file,
        and a GPU instance re-runs what a CPU machine trained."""
        returncode, lines = self._run(
            [sys.executable, "-m", "splatbench", "hardware"], kind="setup"
        )
        self._check_signal()
        if returncode != 0:
            raise StageFailed("splatbench hardware", error_summary(lines), returncode)

    def select_remote(self, spec: JobSpec) -> None:
        names = remotes(self.project)
        if spec.dvc_remote:
            if spec.dvc_remote not in names:
                raise ConfigError(
                    f"DVC remote {spec.dvc_remote!r} is not configured at commit {spec.commit} "
                    f"(remotes: {', '.join(names) or 'none'})",
                    fix="commit it in .dvc/config (`dvc remote add NAME s3://...`) or pick one "
                    "of the listed remotes",
                )
            self._dvc("remote", "default", "--local", spec.dvc_remote)
        elif default_remote(self.project) is None:
            raise ConfigError(
                f"the project at commit {spec.commit} has no default DVC remote, so the job "
                "could neither pull inputs nor push results",
                fix="`dvc remote add -d storage s3://BUCKET/dvc` and commit .dvc/config "
                "(credentials stay out of it: the job uses its IAM role)",
            )

    def run_stage(self, stage: PlannedStage) -> StageRecord:
        self.current_stage = stage.address
        t0 = time.monotonic()
        _log(f"stage {stage.address}")
        returncode, lines = self._run(
            [
                sys.executable, "-m", "dvc", "repro", "--single-item", "--pull",
                "--no-run-cache", stage.address,
            ],
            kind="stage",
            stage=stage.address,
        )  # fmt: skip
        seconds = time.monotonic() - t0
        if returncode != 0 and self.signum is not None:
            self.records.append(StageRecord(stage.address, "interrupted", round(seconds, 3)))
            self._check_signal()
        if returncode != 0:
            self.records.append(StageRecord(stage.address, "failed", round(seconds, 3)))
            raise StageFailed(stage.address, error_summary(lines), returncode)
        record = StageRecord(
            stage.address, stage_outcome(stage.address, "\n".join(lines)), round(seconds, 3)
        )
        self.records.append(record)
        if record.outcome == "ran":
            # Even after a SIGTERM: a finished stage is pushed (and then journaled), so a
            # restart pulls it instead of running it again.
            returncode, lines = self._run(
                [sys.executable, "-m", "dvc", "push", stage.address],
                kind="push",
                stage=stage.address,
            )
            if returncode != 0:
                raise StageFailed(f"{stage.address} (dvc push)", error_summary(lines), returncode)
            record.pushed = True
        return record

    def write_model(self, status: str) -> None:
        """``/opt/ml/model``: what ``dvc exp run`` would commit, plus ``job.json``.

        That is every file git sees as new or modified in the checkout (dvc.lock, params.yaml,
        the ``cache: false`` outputs: metrics/, dvclive/, reports/; the .gitignore entries DVC
        adds), at its repo-relative path. Cached outputs are in the DVC remote.
        """
        model = self.paths.model
        model.mkdir(parents=True, exist_ok=True)
        if (self.project / ".git").exists():
            # params.yaml and dvc.lock always: fetch needs them even when they did not change.
            for rel in sorted({"dvc.lock", PARAMS_FILE, *changed_files(self.project)}):
                src = self.project / rel
                if src.is_file():
                    (model / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, model / rel)
        atomic_write_json(model / JOB_JSON, self.job_document(status))

    def job_document(self, status: str) -> dict[str, Any]:
        spec = self.spec
        self.timings["total_s"] = round(time.monotonic() - self.t0, 3)
        return {
            "schema_version": JOB_JSON_SCHEMA_VERSION,
            "status": status,
            "training_job_name": os.environ.get("TRAINING_JOB_NAME"),
            "training_job_arn": os.environ.get("TRAINING_JOB_ARN"),
            "commit": spec.commit if spec else None,
            "params_sha256": spec.params_sha256 if spec else None,
            "targets": list(spec.targets) if spec else None,
            "overrides": list(spec.overrides) if spec else None,
            "dvc_remote": spec.dvc_remote if spec else None,
            "experiment": spec.experiment if spec else None,
            "stages": [vars(r) for r in self.records],
            "resumed_stages": self.journal_restored,
            "timings": self.timings,
            "instance": {
                "current_host": self.resource.get("current_host"),
                "hosts": self.resource.get("hosts"),
                "instance_type": self.resource.get("current_instance_type"),
            },
            "code": {
                "checkout": str(self.project),
                "splatbench_file": self.code_info.get("splatbench_file"),
            },
            "versions": {k: v for k, v in self.code_info.items() if k != "splatbench_file"},
        }

    def write_failure(self, text: str) -> None:
        atomic_write_text(self.paths.failure, _scrub(text))

    # -- main ---------------------------------------------------------------------------------

    def run(self) -> int:
        _secrets_from_env()
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            return self._run_job()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _run_job(self) -> int:
        try:
            self.spec = spec = read_job_spec(self.paths)
            self.resource = read_resource_config(self.paths)
            _log(
                f"job {os.environ.get('TRAINING_JOB_NAME', '(unnamed)')}: commit {spec.commit}, "
                f"targets {list(spec.targets) or ['(all)']}, overrides {list(spec.overrides)}"
            )
            self.checkout_code(spec)
            self.code_environment()
            self.compose(spec)
            self.record_hardware()
            self.select_remote(spec)
            self.journal_restored = self.journal.restore(self.project, spec)
            if self.journal_restored:
                _log(f"restart: finished before: {', '.join(self.journal_restored)}")
            self.plan = plan_stages(self.project, spec.targets)
            _log("plan: " + ", ".join(s.address for s in self.plan))
            self.timings["setup_s"] = round(time.monotonic() - self.t0, 3)
            finished = list(self.journal_restored)
            for stage in self.plan:
                self.run_stage(stage)
                if stage.address not in finished:
                    finished.append(stage.address)
                self.journal.record(self.project, spec, stage, finished)
                self._check_signal()
            self.timings["stages_s"] = round(sum(r.seconds for r in self.records), 3)
            self.write_model("completed")
            _log("done: " + ", ".join(f"{r.stage} {r.outcome}" for r in self.records))
            return 0
        except Terminated as exc:
            _log(f"{exc}: finished stages are pushed; exiting")
            self._finish_failed("interrupted", f"interrupted: {exc}")
            return EXIT_TERMINATED
        except StageFailed as exc:
            self._finish_failed("failed", f"stage {exc.stage} failed: {exc.error}")
            return EXIT_FAILED
        except SplatbenchError as exc:
            message = exc.message + (f" (fix: {exc.fix})" if exc.fix else "")
            phase = self.current_stage or "job setup"
            self._finish_failed("failed", f"{phase} failed: {message}")
            return EXIT_CONFIG
        except Exception as exc:  # an internal error still leaves a FailureReason
            for line in traceback.format_exc().splitlines():
                print(line, flush=True)
                self.tail.append(line)
            phase = self.current_stage or "job setup"
            self._finish_failed("failed", f"{phase} failed: {type(exc).__name__}: {exc}")
            return EXIT_FAILED

    def _finish_failed(self, status: str, summary: str) -> None:
        _log(summary)
        self.write_failure(failure_text(summary, list(self.tail)))
        with contextlib.suppress(Exception):  # partial results help; never mask the failure
            self.write_model(status)


def _kill_later(pid: int, seconds: float = PUSH_GRACE_S) -> None:
    timer = threading.Timer(seconds, _killpg, (pid, signal.SIGKILL))
    timer.daemon = True
    timer.start()


def _killpg(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m splatbench.cloud.job_runner",
        description="Run a SageMaker training job's pipeline target (the image's `train`).",
    )
    parser.add_argument(
        "--root", type=Path, default=None, help="the /opt/ml root [default: $SPLATBENCH_SM_ROOT]"
    )
    args = parser.parse_args(argv)
    paths = SageMakerPaths(args.root) if args.root else SageMakerPaths.from_env()
    return JobRunner(paths).run()


if __name__ == "__main__":
    sys.exit(main())
