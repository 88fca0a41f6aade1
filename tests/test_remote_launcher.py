"""The launcher's loop against botocore ``Stubber``-wrapped SageMaker and CloudWatch Logs clients:
every call is checked against the real service model, and the order of calls is exact.

Stubber stands in for AWS here (there is no AWS on this machine); the end-to-end test drives
the same code against the local executor instead.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import botocore.session
import pytest
from botocore.stub import Stubber
from test_sagemaker_requests import _settings, _spec

from splatbench.cloud.costs import CostLine, check_budget, cost_rows, price_for
from splatbench.cloud.remote import (
    LOG_GROUP,
    Backend,
    LogFollower,
    RemoteError,
    Reporter,
    describe,
    follow,
    run_jobs,
    stop,
    tail,
)
from splatbench.cloud.remote_plan import expand_sweep
from splatbench.cloud.sagemaker import build_training_request
from splatbench.errors import ConfigError

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)


def _client(service: str) -> Any:
    return botocore.session.get_session().create_client(
        service,
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="not-a-secret-just-a-stub",
    )


class _Console:
    """Collects what the reporter prints (a plain, non-terminal console)."""

    is_terminal = False

    def __init__(self) -> None:
        self.lines: list[str] = []

    def print(self, text: str, **_: Any) -> None:
        self.lines.append(str(text))


def _describe(name: str, status: str, secondary: str, **extra: Any) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}",
        "TrainingJobStatus": status,
        "SecondaryStatus": secondary,
        "AlgorithmSpecification": {"TrainingInputMode": "File"},
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://b/output/{name}/output/model.tar.gz"},
        "ResourceConfig": {
            "InstanceType": "ml.g5.2xlarge",
            "InstanceCount": 1,
            "VolumeSizeInGB": 100,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "CreationTime": NOW,
        **extra,
    }


def _request(name: str) -> dict[str, Any]:
    return build_training_request(name, _spec(), _settings())


def _not_found(stub: Stubber, name: str) -> None:
    stub.add_client_error(
        "describe_training_job",
        "ValidationException",
        "Requested resource not found.",
        expected_params={"TrainingJobName": name},
    )


def test_sweep_respects_max_parallel_and_waits_for_all() -> None:
    sagemaker, logs = _client("sagemaker"), _client("logs")
    names = ["sb-s-1-261202-120000-0001", "sb-s-2-261202-120000-0002", "sb-s-3-261202-120000-0003"]
    requests = [_request(n) for n in names]
    arn = {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/x"}
    with Stubber(sagemaker) as sm:
        for name, request in zip(names[:2], requests[:2], strict=True):
            _not_found(sm, name)
            sm.add_response("create_training_job", arn, expected_params=request)
        # Poll 1: job 1 trains, job 2 completes -> a slot frees up for job 3.
        sm.add_response("describe_training_job", _describe(names[0], "InProgress", "Training"))
        sm.add_response("describe_training_job", _describe(names[1], "Completed", "Completed"))
        _not_found(sm, names[2])
        sm.add_response("create_training_job", arn, expected_params=requests[2])
        # Poll 2: both end.
        sm.add_response("describe_training_job", _describe(names[0], "Completed", "Completed"))
        sm.add_response(
            "describe_training_job",
            _describe(names[2], "Failed", "Failed", FailureReason="AlgorithmError: stage train"),
        )
        submitted: list[str] = []
        console = _Console()
        sleeps: list[float] = []
        outcome = run_jobs(
            Backend("sagemaker", sagemaker, logs, None, poll_seconds=7),
            requests,
            max_parallel=2,
            wait=True,
            reporter=Reporter(console),
            on_submit=lambda r: submitted.append(r["TrainingJobName"]),
            sleep=sleeps.append,
        )
        sm.assert_no_pending_responses()
    assert submitted == names
    assert {n: s.status for n, s in outcome.states.items()} == {
        names[0]: "Completed",
        names[1]: "Completed",
        names[2]: "Failed",
    }
    assert not outcome.ok and [s.name for s in outcome.failed] == [names[2]]
    assert outcome.states[names[2]].description["FailureReason"] == "AlgorithmError: stage train"
    assert sleeps == [7]  # one wait between the two polls, none after the last
    assert any(f"{names[0]}  InProgress / Training" in line for line in console.lines)


def test_resumed_sweep_does_not_resubmit_existing_jobs() -> None:
    sagemaker = _client("sagemaker")
    name = "sb-s-1-261202-120000-0001"
    with Stubber(sagemaker) as sm:
        sm.add_response("describe_training_job", _describe(name, "InProgress", "Training"))
        outcome = run_jobs(
            Backend("sagemaker", sagemaker, None, None),
            [_request(name)],
            max_parallel=4,
            wait=False,
            reporter=Reporter(_Console()),
        )
        sm.assert_no_pending_responses()  # no create_training_job call
    assert list(outcome.states) == [name]


def _stream_page(names: list[str], token: str | None = None) -> dict[str, Any]:
    page: dict[str, Any] = {"logStreams": [{"logStreamName": n} for n in names]}
    if token:
        page["nextToken"] = token
    return page


def test_log_follower_pages_streams_and_events_and_resumes() -> None:
    logs = _client("logs")
    job = "sb-run-261202-120000-0001"
    streams = [f"{job}/algo-1-1764676800", f"{job}/algo-1-1764680400"]  # a spot restart: two
    with Stubber(logs) as stub:
        stub.add_response(
            "describe_log_streams",
            _stream_page(streams[:1], "p2"),
            {"logGroupName": LOG_GROUP, "logStreamNamePrefix": f"{job}/"},
        )
        stub.add_response(
            "describe_log_streams",
            _stream_page(streams[1:]),
            {"logGroupName": LOG_GROUP, "logStreamNamePrefix": f"{job}/", "nextToken": "p2"},
        )
        first = {"logGroupName": LOG_GROUP, "logStreamName": streams[0], "startFromHead": True}
        stub.add_response(
            "get_log_events",
            {"events": [{"timestamp": 1, "message": "a\n"}, {"timestamp": 2, "message": "b"}],
             "nextForwardToken": "f/1"},
            first,
        )  # fmt: skip
        stub.add_response(
            "get_log_events",
            {"events": [{"timestamp": 3, "message": "c"}], "nextForwardToken": "f/2"},
            {**first, "nextToken": "f/1"},
        )
        stub.add_response(
            "get_log_events",
            {"events": [], "nextForwardToken": "f/2"},
            {**first, "nextToken": "f/2"},
        )
        second = {"logGroupName": LOG_GROUP, "logStreamName": streams[1], "startFromHead": True}
        stub.add_response(
            "get_log_events",
            {"events": [{"timestamp": 4, "message": "resumed at step 1200"}],
             "nextForwardToken": "g/1"},
            second,
        )  # fmt: skip
        stub.add_response(
            "get_log_events",
            {"events": [], "nextForwardToken": "g/1"},
            {**second, "nextToken": "g/1"},
        )
        # Second poll: only new events, from the remembered tokens.
        stub.add_response("describe_log_streams", _stream_page(streams), None)
        stub.add_response(
            "get_log_events",
            {"events": [{"timestamp": 5, "message": "d"}], "nextForwardToken": "f/3"},
            {**first, "nextToken": "f/2"},
        )
        stub.add_response(
            "get_log_events",
            {"events": [], "nextForwardToken": "f/3"},
            {**first, "nextToken": "f/3"},
        )
        stub.add_response(
            "get_log_events",
            {"events": [], "nextForwardToken": "g/1"},
            {**second, "nextToken": "g/1"},
        )
        follower = LogFollower(logs, job)
        assert follower.poll() == ["a", "b", "c", "resumed at step 1200"]
        assert follower.poll() == ["d"]
        stub.assert_no_pending_responses()


def test_no_log_group_yet_means_no_lines() -> None:
    logs = _client("logs")
    with Stubber(logs) as stub:
        stub.add_client_error("describe_log_streams", "ResourceNotFoundException", "no group")
        assert LogFollower(logs, "sb-x").poll() == []


def test_tail_keeps_the_last_lines() -> None:
    logs = _client("logs")
    job = "sb-x"
    with Stubber(logs) as stub:
        stub.add_response("describe_log_streams", _stream_page([f"{job}/algo-1-1"]), None)
        events = [{"timestamp": i, "message": f"line {i}"} for i in range(50)]
        stub.add_response("get_log_events", {"events": events, "nextForwardToken": "t"}, None)
        stub.add_response("get_log_events", {"events": [], "nextForwardToken": "t"}, None)
        lines = tail(Backend("sagemaker", None, logs, None), job, lines=5)
    assert lines == [f"line {i}" for i in range(45, 50)]


def test_stop_and_describe_errors() -> None:
    sagemaker = _client("sagemaker")
    backend = Backend("sagemaker", sagemaker, None, None)
    with Stubber(sagemaker) as sm:
        sm.add_response("describe_training_job", _describe("sb-a", "InProgress", "Training"))
        sm.add_response("stop_training_job", {}, {"TrainingJobName": "sb-a"})
        sm.add_response("describe_training_job", _describe("sb-b", "Completed", "Completed"))
        _not_found(sm, "sb-c")
        sm.add_client_error("describe_training_job", "AccessDeniedException", "not authorized", 400)
        assert stop(backend, "sb-a") == "InProgress"
        assert stop(backend, "sb-b") == "Completed"  # a finished job is left alone
        with pytest.raises(RemoteError, match="not found"):
            describe(backend, "sb-c")
        with pytest.raises(RemoteError, match="AccessDenied") as err:
            describe(backend, "sb-d")
        assert "iam-policy" in (err.value.fix or "")
        sm.assert_no_pending_responses()


def test_follow_reads_until_the_job_ends() -> None:
    sagemaker, logs = _client("sagemaker"), _client("logs")
    job = "sb-run-1"
    stream = f"{job}/algo-1-1"
    with Stubber(sagemaker) as sm, Stubber(logs) as lg:
        sm.add_response("describe_training_job", _describe(job, "InProgress", "Training"))
        lg.add_response("describe_log_streams", _stream_page([stream]), None)
        lg.add_response(
            "get_log_events", {"events": [{"timestamp": 1, "message": "x"}],
                               "nextForwardToken": "1"}, None
        )  # fmt: skip
        lg.add_response("get_log_events", {"events": [], "nextForwardToken": "1"}, None)
        sm.add_response("describe_training_job", _describe(job, "Failed", "Failed"))
        for _ in range(2):  # the poll at the end, and the final drain
            lg.add_response("describe_log_streams", _stream_page([stream]), None)
            lg.add_response("get_log_events", {"events": [], "nextForwardToken": "1"}, None)
        out: list[str] = []
        status = follow(
            Backend("sagemaker", sagemaker, logs, None, poll_seconds=0),
            job,
            emit=out.append,
            follow=True,
            sleep=lambda _s: None,
        )
    assert status == "Failed" and out == ["x"]


def test_sweep_expansion_is_dvcs() -> None:
    points = expand_sweep(["strategy.grow_grad2d=1e-4,2e-4,4e-4", "early_stop=off,plateau"], True)
    assert len(points) == 6
    # The values come back as DVC (Hydra) renders them when it queues a sweep.
    assert ["strategy.grow_grad2d=0.0001", "early_stop=off"] in points
    assert ["strategy.grow_grad2d=0.0004", "early_stop=plateau"] in points
    assert expand_sweep(["a=1"], False) == [["a=1"]]
    assert expand_sweep(["a=range(1,4)"], True) == [["a=1"], ["a=2"], ["a=3"]]
    with pytest.raises(ConfigError, match="--sweep"):
        expand_sweep(["a=1,2"], False)
    with pytest.raises(ConfigError, match="invalid"):
        expand_sweep(["a=[1,"], True)


def test_costs_bound_the_bill() -> None:
    prices = {"ml.g5.2xlarge": 1.515}
    lines = [
        CostLine(f"j{i}", "ml.g5.2xlarge", 1, price_for("ml.g5.2xlarge", prices), 7200, spot=True)
        for i in range(3)
    ]
    assert check_budget(lines, 10.0) == pytest.approx(3 * 2 * 1.515)
    with pytest.raises(ConfigError, match=r"\$9\.09 for 3 job\(s\) is above --max-usd \$9\.00"):
        check_budget(lines, 9.0)
    assert cost_rows(lines)[-1] == ["total", "3 job(s)", "", "", "$9.09"]
    with pytest.raises(ConfigError, match=r"no price for ml\.p5\.48xlarge"):
        price_for("ml.p5.48xlarge", prices)
    assert price_for("ml.p5.48xlarge", prices, override=98.3) == 98.3


def test_records_and_sweep_plans_round_trip(tmp_path: Any) -> None:
    from splatbench.cloud.remote_config import RemoteConfig
    from splatbench.cloud.remote_state import (
        config_for_record,
        list_records,
        load_plan,
        load_record,
        record_for,
        save_record,
    )

    cfg = RemoteConfig(backend="local", jobs_uri="s3://b/jobs", local_root="state")
    request = _request("sb-s-1-261202-120000-0001")
    record = record_for(request, cfg, baseline="f" * 40, sweep="grid-1")
    save_record(tmp_path, record)
    assert load_record(tmp_path, record.name) == record
    assert load_record(tmp_path, "sb-unknown") is None
    assert [r.name for r in list_records(tmp_path)] == [record.name]
    assert record.experiment == "garden-1" and record.overrides == list(_spec().overrides)
    # A later command finds the job's backend from its record (unless told otherwise).
    later = config_for_record(RemoteConfig(), record)
    assert (later.backend, later.local_root, later.jobs_uri) == ("local", "state", "s3://b/jobs")
    with pytest.raises(ConfigError, match="no recorded sweep 'nope'"):
        load_plan(tmp_path, "nope")
