"""The SageMaker training-job contract: what the launcher sends and what the container reads.

SageMaker runs ``docker run IMAGE train`` with this layout under ``/opt/ml``:

```
input/config/hyperparameters.json   every value a string (SageMaker stringifies them)
input/config/resourceconfig.json    current_host, hosts, ...
input/config/inputdataconfig.json   one entry per channel
input/data/<channel>/               each channel's files (File mode)
model/                              tarred to <S3OutputPath>/<job>/output/model.tar.gz
output/failure                      its text becomes the job's FailureReason
checkpoints/                        synced with CheckpointConfig.S3Uri, restored on a restart
```

:class:`JobSpec` is the one place that says how a pipeline run is encoded into string
hyperparameters and back, so the launcher (``splatbench remote``) and the container's ``train``
branch cannot drift apart. ``SPLATBENCH_SM_ROOT`` moves the root (the local executor and the
tests use a temporary directory).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from splatbench.errors import ConfigError

SM_ROOT_ENV = "SPLATBENCH_SM_ROOT"
DEFAULT_SM_ROOT = Path("/opt/ml")

CODE_CHANNEL = "code"
"""Channel holding :data:`CODE_BUNDLE` (a ``git bundle`` that contains :attr:`JobSpec.commit`)."""
CODE_BUNDLE = "code.bundle"

HYPERPARAMETER_PREFIX = "splatbench_"
# CreateTrainingJob limits (botocore's model: HyperParameterKey max 256, value max 2500).
MAX_KEY_CHARS = 256
MAX_VALUE_CHARS = 2500
MAX_HYPERPARAMETERS = 100

_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class SageMakerPaths:
    """The ``/opt/ml`` layout of a training job, rooted at ``root``."""

    root: Path = DEFAULT_SM_ROOT

    @classmethod
    def from_env(cls) -> SageMakerPaths:
        """Root from ``$SPLATBENCH_SM_ROOT``, else ``/opt/ml``."""
        return cls(Path(os.environ.get(SM_ROOT_ENV) or DEFAULT_SM_ROOT))

    @property
    def config_dir(self) -> Path:
        return self.root / "input" / "config"

    @property
    def hyperparameters(self) -> Path:
        return self.config_dir / "hyperparameters.json"

    @property
    def resource_config(self) -> Path:
        return self.config_dir / "resourceconfig.json"

    @property
    def input_data_config(self) -> Path:
        return self.config_dir / "inputdataconfig.json"

    def channel(self, name: str) -> Path:
        return self.root / "input" / "data" / name

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def failure(self) -> Path:
        return self.root / "output" / "failure"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"


@dataclass(frozen=True)
class JobSpec:
    """One pipeline run on SageMaker.

    Attributes:
        commit: the 40-hex git commit to run; the ``code`` channel's bundle must contain it.
        params_sha256: sha256 of the ``params.yaml`` the launcher composed from ``conf/`` at
            ``commit`` with ``overrides``; the job composes its own and refuses to run on a
            mismatch (the same code and overrides must give the same parameters).
        targets: DVC targets (``train@garden``, ``report``); empty runs the whole pipeline.
        overrides: Hydra overrides as given to ``dvc exp run -S`` (``strategy.grow_grad2d=1e-4``).
        dvc_remote: the DVC remote to pull inputs from and push outputs to; None is the
            project's default remote.
        experiment: the experiment name the results are fetched under.
    """

    commit: str
    params_sha256: str
    targets: tuple[str, ...] = ()
    overrides: tuple[str, ...] = ()
    dvc_remote: str | None = None
    experiment: str | None = None

    def __post_init__(self) -> None:
        if not _COMMIT.match(self.commit):
            raise ConfigError(
                f"job commit {self.commit!r} is not a 40-hex git commit",
                fix="pass the full commit id (git rev-parse HEAD)",
            )
        if not _SHA256.match(self.params_sha256):
            raise ConfigError(
                f"params_sha256 {self.params_sha256!r} is not a sha256 hex digest",
                fix="hash the composed params.yaml with sha256",
            )
        for kind, items in (("target", self.targets), ("override", self.overrides)):
            for item in items:
                if not isinstance(item, str) or not item.strip():
                    raise ConfigError(
                        f"job {kind} {item!r} must be a non-empty string",
                        fix=f"drop the empty {kind}",
                    )

    def to_hyperparameters(self) -> dict[str, str]:
        """String hyperparameters for CreateTrainingJob (lists as JSON arrays)."""
        values: dict[str, str | None] = {
            "commit": self.commit,
            "params_sha256": self.params_sha256,
            "targets": json.dumps(list(self.targets)),
            "overrides": json.dumps(list(self.overrides)),
            "dvc_remote": self.dvc_remote,
            "experiment": self.experiment,
        }
        out = {HYPERPARAMETER_PREFIX + k: v for k, v in values.items() if v is not None}
        for key, value in out.items():
            if len(value) > MAX_VALUE_CHARS:
                raise ConfigError(
                    f"hyperparameter {key} is {len(value)} characters; SageMaker allows "
                    f"{MAX_VALUE_CHARS}",
                    fix="use fewer or shorter -S overrides (or move them into a conf/ file "
                    "committed with the code)",
                )
        return out

    @classmethod
    def from_hyperparameters(cls, hyperparameters: Mapping[str, Any]) -> JobSpec:
        """Parse what the container finds in ``hyperparameters.json``.

        Keys without the ``splatbench_`` prefix are ignored (SageMaker and its SDKs may add
        their own); an unknown ``splatbench_`` key is an error, since it means the launcher
        and the image disagree on the contract.
        """
        known = {"commit", "params_sha256", "targets", "overrides", "dvc_remote", "experiment"}
        ours: dict[str, str] = {}
        for key, value in hyperparameters.items():
            if not key.startswith(HYPERPARAMETER_PREFIX):
                continue
            name = key[len(HYPERPARAMETER_PREFIX) :]
            if name not in known:
                raise ConfigError(
                    f"hyperparameters.json: unknown key {key!r}",
                    fix="the image and the launcher are different splatbench versions; "
                    "rebuild and push the image from the launcher's commit",
                )
            if not isinstance(value, str):
                raise ConfigError(
                    f"hyperparameters.json: {key} must be a string (SageMaker passes strings), "
                    f"got {type(value).__name__}",
                    fix="encode the value as a string",
                )
            ours[name] = value
        for required in ("commit", "params_sha256"):
            if required not in ours:
                raise ConfigError(
                    f"hyperparameters.json: missing {HYPERPARAMETER_PREFIX}{required}",
                    fix="submit the job with `splatbench remote run`, which sets it",
                )
        return cls(
            commit=ours["commit"],
            params_sha256=ours["params_sha256"],
            targets=_json_strings(ours, "targets"),
            overrides=_json_strings(ours, "overrides"),
            dvc_remote=ours.get("dvc_remote") or None,
            experiment=ours.get("experiment") or None,
        )


def _json_strings(values: Mapping[str, str], name: str) -> tuple[str, ...]:
    text = values.get(name, "[]")
    key = HYPERPARAMETER_PREFIX + name
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"hyperparameters.json: {key} is not a JSON array ({exc.msg})",
            fix='encode it as a JSON array of strings, e.g. ["train@garden"]',
        ) from exc
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ConfigError(
            f"hyperparameters.json: {key} must be a JSON array of strings, got {text!r}",
            fix='encode it as a JSON array of strings, e.g. ["train@garden"]',
        )
    return tuple(items)


PARAMS_FILE = "params.yaml"


def compose_params(project_dir: Path, overrides: Sequence[str]) -> str:
    """The ``params.yaml`` text that ``dvc exp run -S OVERRIDE...`` writes in ``project_dir``.

    Follows DVC's own code path (``dvc.repo.experiments.queue.base._update_params``): with
    ``[hydra] enabled`` in the project's ``.dvc/config`` it composes ``conf/`` afresh through
    ``dvc.utils.hydra.compose_and_dump``; otherwise it applies the overrides to the committed
    ``params.yaml`` with ``apply_overrides``. Only the repo-level DVC config is read (the
    job sees only committed files). The launcher calls this on the job's commit and the
    container on its checkout; both hash the result with :func:`params_sha256`.

    Raises:
        ConfigError: an override targets another file (``file.yaml:key=value``), or Hydra
            rejects an override (the message names it).
    """
    from dvc.config import Config
    from dvc.exceptions import DvcException
    from dvc.utils.hydra import apply_overrides, compose_and_dump
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    project_dir = Path(project_dir).resolve()
    for item in overrides:
        if ":" in item.partition("=")[0]:
            raise ConfigError(
                f"override {item!r} targets another parameter file",
                fix=f"remote runs take overrides of {PARAMS_FILE} only (drop the 'file:' part)",
            )
    hydra = dict(
        Config(dvc_dir=str(project_dir / ".dvc"), validate=False).load_one("repo").get("hydra", {})
    )
    with tempfile.TemporaryDirectory(prefix="splatbench-params-") as tmp:
        out = Path(tmp) / PARAMS_FILE
        try:
            if hydra.get("enabled"):
                module = hydra.get("config_module")
                compose_and_dump(
                    out,
                    None if module else str(project_dir / hydra.get("config_dir", "conf")),
                    module,
                    hydra.get("config_name", "config"),
                    str(project_dir / hydra.get("plugins_path", "")),
                    list(overrides),
                )
            else:
                source = project_dir / PARAMS_FILE
                out.write_bytes(source.read_bytes() if source.is_file() else b"")
                apply_overrides(out, list(overrides))
        except (
            DvcException,
            HydraException,
            MissingConfigException,
            OmegaConfBaseException,
        ) as exc:
            raise ConfigError(
                f"cannot compose {PARAMS_FILE} with overrides {list(overrides)}: {exc}",
                fix="check each -S KEY=VALUE against conf/ (Hydra override syntax)",
            ) from exc
        return out.read_text(encoding="utf-8")


def params_sha256(text: str) -> str:
    """The :attr:`JobSpec.params_sha256` of a composed ``params.yaml`` text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
