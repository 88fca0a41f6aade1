"""The least-privilege IAM policy for the ingestion job (``splatbench ingest --print-iam-policy``).

What the job does and the permission each step needs:

* upload raw payload objects and the manifest: ``s3:PutObject`` (covers multipart create, part
  upload and complete) on ``<prefix>/raw/*`` and ``<prefix>/manifests/*``;
* skip objects already uploaded and compare an existing manifest: ``s3:GetObject`` on the same
  keys (``HeadObject`` is authorised by ``s3:GetObject``);
* resume interrupted multipart uploads: ``s3:ListMultipartUploadParts`` and
  ``s3:AbortMultipartUpload`` on ``<prefix>/raw/*``, ``s3:ListBucketMultipartUploads`` on the
  bucket (optional: without it uploads restart from the first part);
* export run logs: ``s3:PutObject`` on ``<prefix>/results/*``;
* optional ``s3:ListBucket``, conditioned on the prefix: lets a missing key answer 404 instead
  of 403, which makes "is it there?" exact;
* CloudWatch Logs writes for the container's stdout/stderr (Batch ``awslogs`` driver and
  SageMaker both write to ``/aws/...`` log groups).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from splatbench.cloud.s3 import S3Layout


@dataclass(frozen=True)
class PolicyOptions:
    """Knobs of :func:`ingest_job_policy`.

    Attributes:
        include_list_bucket: add ``s3:ListBucket`` limited to the job's prefixes.
        include_resume: add the multipart listing/abort permissions that enable resume.
        log_group_arn: CloudWatch log group(s) the job writes to.
    """

    include_list_bucket: bool = True
    include_resume: bool = True
    log_group_arn: str = "arn:aws:logs:*:*:log-group:/aws/batch/job:*"
    sagemaker_log_group_arn: str = "arn:aws:logs:*:*:log-group:/aws/sagemaker/ProcessingJobs:*"


def ingest_job_policy(layout: S3Layout, options: PolicyOptions | None = None) -> dict[str, Any]:
    """An IAM policy document granting the ingestion job exactly what it uses."""
    options = options or PolicyOptions()
    bucket_arn = f"arn:aws:s3:::{layout.bucket}"

    def objects(area: str) -> str:
        return f"{bucket_arn}/{layout.key(area)}/*"

    statements: list[dict[str, Any]] = [
        {
            "Sid": "PublishRawPayloadAndManifests",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:GetObject"],
            "Resource": [objects("raw"), objects("manifests")],
        },
        {
            "Sid": "ExportRunLogs",
            "Effect": "Allow",
            "Action": ["s3:PutObject"],
            "Resource": [objects("results")],
        },
    ]
    if options.include_resume:
        statements.append(
            {
                "Sid": "ResumeMultipartUploads",
                "Effect": "Allow",
                "Action": ["s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"],
                "Resource": [objects("raw")],
            }
        )
        statements.append(
            {
                "Sid": "FindUnfinishedUploads",
                "Effect": "Allow",
                "Action": ["s3:ListBucketMultipartUploads"],
                "Resource": [bucket_arn],
            }
        )
    if options.include_list_bucket:
        prefixes = [f"{layout.key(area)}/*" for area in ("raw", "manifests", "results")]
        statements.append(
            {
                "Sid": "ListOnlyTheBenchmarkPrefix",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [bucket_arn],
                "Condition": {"StringLike": {"s3:prefix": prefixes}},
            }
        )
    statements.append(
        {
            "Sid": "WriteContainerLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [options.log_group_arn, options.sagemaker_log_group_arn],
        }
    )
    return {"Version": "2012-10-17", "Statement": statements}


# ---------------------------------------------------------------------------------------------
# SageMaker training jobs (`splatbench remote`)

_SAGEMAKER_LOG_GROUP = "/aws/sagemaker/TrainingJobs"


def _arn_parts(arn: str) -> tuple[str, str, str]:
    """``(partition, region, account)`` of an ARN (region may be empty, as for IAM)."""
    parts = arn.split(":")
    if len(parts) < 6 or parts[0] != "arn":
        raise ValueError(f"not an ARN: {arn!r}")
    return parts[1], parts[3], parts[4]


def _s3_prefix_statements(
    sid: str, bucket: str, prefix: str, actions: list[str]
) -> list[dict[str, Any]]:
    """Object actions on ``bucket/prefix/*`` plus ListBucket conditioned on the prefix."""
    key = prefix.strip("/")
    objects = f"arn:aws:s3:::{bucket}/{key}/*" if key else f"arn:aws:s3:::{bucket}/*"
    return [
        {"Sid": f"{sid}Objects", "Effect": "Allow", "Action": actions, "Resource": [objects]},
        {
            "Sid": f"{sid}List",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [f"arn:aws:s3:::{bucket}"],
            "Condition": {"StringLike": {"s3:prefix": [f"{key}/*" if key else "*", key]}},
        },
    ]


@dataclass(frozen=True)
class TrainingPolicyInputs:
    """What a training job touches, from the launcher's settings.

    Attributes:
        role_arn: the execution role (its account names the log group's account).
        region: where jobs run.
        image: the training image ``ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO@sha256:...``.
        jobs_bucket, jobs_prefix: ``<jobs>/code/`` (read), ``output/`` and ``checkpoints/``
            (read+write: checkpoints are restored on a spot restart).
        dvc_bucket, dvc_prefix: the DVC remote (read+write: the job pulls and pushes).
        data_bucket, data_prefix: the benchmark's raw data (read; the ingest stage reads it).
        kms_key_arn: key for output and volume encryption.
        vpc: the job runs in a VPC (it then manages network interfaces).
    """

    role_arn: str
    region: str
    image: str
    jobs_bucket: str
    jobs_prefix: str
    dvc_bucket: str
    dvc_prefix: str
    data_bucket: str | None = None
    data_prefix: str = ""
    kms_key_arn: str | None = None
    vpc: bool = False


def _ecr_repository_arn(image: str, partition: str) -> str | None:
    head = image.split("@", 1)[0]
    registry, _, repo = head.partition("/")
    repo = repo.rsplit(":", 1)[0] if ":" in repo.rsplit("/", 1)[-1] else repo
    bits = registry.split(".")
    if len(bits) >= 6 and bits[1:3] == ["dkr", "ecr"]:
        return f"arn:{partition}:ecr:{bits[3]}:{bits[0]}:repository/{repo}"
    return None


def training_role_policy(inputs: TrainingPolicyInputs) -> dict[str, Any]:
    """The least-privilege policy of a training job's execution role.

    Every grant is one thing the job does: pull its image, write its logs and metrics, read its
    code bundle, pull/push the DVC remote, read raw benchmark data, write the model and sync
    checkpoints; KMS and VPC network interfaces only when used. (Attach it to a role whose
    trust policy lets ``sagemaker.amazonaws.com`` assume it; docs/sagemaker.md.)
    """
    partition, _, account = _arn_parts(inputs.role_arn)
    repo_arn = _ecr_repository_arn(inputs.image, partition)
    log_group = f"arn:{partition}:logs:{inputs.region}:{account}:log-group:{_SAGEMAKER_LOG_GROUP}"
    statements: list[dict[str, Any]] = [
        {
            "Sid": "PullTrainingImage",
            "Effect": "Allow",
            "Action": [
                "ecr:BatchCheckLayerAvailability",
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
            ],
            "Resource": [repo_arn or "*"],
        },
        {
            # GetAuthorizationToken has no resource-level permissions.
            "Sid": "EcrLogin",
            "Effect": "Allow",
            "Action": ["ecr:GetAuthorizationToken"],
            "Resource": ["*"],
        },
        {
            "Sid": "WriteJobLogs",
            "Effect": "Allow",
            "Action": [
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:DescribeLogStreams",
                "logs:PutLogEvents",
            ],
            "Resource": [log_group, f"{log_group}:log-stream:*"],
        },
        {
            "Sid": "PublishJobMetrics",
            "Effect": "Allow",
            "Action": ["cloudwatch:PutMetricData"],
            "Resource": ["*"],
            "Condition": {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
        },
    ]
    jobs = inputs.jobs_prefix.strip("/")

    def under(*parts: str) -> str:
        return "/".join(p for p in (jobs, *parts) if p)

    statements += _s3_prefix_statements(
        "ReadCodeBundles", inputs.jobs_bucket, under("code"), ["s3:GetObject"]
    )
    statements += _s3_prefix_statements(
        "WriteModelOutput", inputs.jobs_bucket, under("output"), ["s3:PutObject"]
    )
    statements += _s3_prefix_statements(
        "SyncCheckpoints",
        inputs.jobs_bucket,
        under("checkpoints"),
        ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
    )
    statements += _s3_prefix_statements(
        "DvcRemote", inputs.dvc_bucket, inputs.dvc_prefix, ["s3:GetObject", "s3:PutObject"]
    )
    if inputs.data_bucket:
        statements += _s3_prefix_statements(
            "ReadBenchmarkData", inputs.data_bucket, inputs.data_prefix, ["s3:GetObject"]
        )
    if inputs.kms_key_arn:
        statements.append(
            {
                "Sid": "EncryptOutputAndVolume",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:CreateGrant"],
                "Resource": [inputs.kms_key_arn],
            }
        )
    if inputs.vpc:
        statements.append(
            {
                # EC2 network-interface calls have no resource-level scoping for Describe*.
                "Sid": "JobNetworkInterfaces",
                "Effect": "Allow",
                "Action": [
                    "ec2:CreateNetworkInterface",
                    "ec2:CreateNetworkInterfacePermission",
                    "ec2:DeleteNetworkInterface",
                    "ec2:DeleteNetworkInterfacePermission",
                    "ec2:DescribeDhcpOptions",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeSecurityGroups",
                    "ec2:DescribeSubnets",
                    "ec2:DescribeVpcs",
                ],
                "Resource": ["*"],
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def launcher_policy(inputs: TrainingPolicyInputs) -> dict[str, Any]:
    """The policy of whoever runs ``splatbench remote`` (a developer or CI role).

    Submit, watch, stop and list training jobs named ``sb-*``, pass only the execution role and
    only to SageMaker, resolve image tags, read logs, upload code bundles and read model
    outputs. Pulling the fetched experiment's data uses the caller's usual DVC-remote access.
    """
    partition, _, account = _arn_parts(inputs.role_arn)
    region = inputs.region
    jobs = inputs.jobs_prefix.strip("/")
    job_arn = f"arn:{partition}:sagemaker:{region}:{account}:training-job/sb-*"
    log_group = f"arn:{partition}:logs:{region}:{account}:log-group:{_SAGEMAKER_LOG_GROUP}"
    repo_arn = _ecr_repository_arn(inputs.image, partition)

    def under(*parts: str) -> str:
        return "/".join(p for p in (jobs, *parts) if p)

    statements: list[dict[str, Any]] = [
        {
            "Sid": "TrainingJobs",
            "Effect": "Allow",
            "Action": [
                "sagemaker:AddTags",
                "sagemaker:CreateTrainingJob",
                "sagemaker:DescribeTrainingJob",
                "sagemaker:StopTrainingJob",
            ],
            "Resource": [job_arn],
        },
        {
            "Sid": "ListTrainingJobs",
            "Effect": "Allow",
            "Action": ["sagemaker:ListTrainingJobs"],
            "Resource": ["*"],
        },
        {
            "Sid": "PassExecutionRoleToSageMakerOnly",
            "Effect": "Allow",
            "Action": ["iam:PassRole"],
            "Resource": [inputs.role_arn],
            "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        },
        {
            "Sid": "ReadJobLogs",
            "Effect": "Allow",
            "Action": ["logs:DescribeLogStreams", "logs:GetLogEvents"],
            "Resource": [log_group, f"{log_group}:log-stream:*"],
        },
    ]
    if repo_arn:
        statements.append(
            {
                "Sid": "ResolveImageTags",
                "Effect": "Allow",
                "Action": ["ecr:DescribeImages"],
                "Resource": [repo_arn],
            }
        )
    statements += _s3_prefix_statements(
        "UploadCodeBundles", inputs.jobs_bucket, under("code"), ["s3:GetObject", "s3:PutObject"]
    )
    statements += _s3_prefix_statements(
        "ReadModelOutput", inputs.jobs_bucket, under("output"), ["s3:GetObject"]
    )
    if inputs.kms_key_arn:
        statements.append(
            {
                "Sid": "UseKmsKey",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": [inputs.kms_key_arn],
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def trust_policy() -> dict[str, Any]:
    """The execution role's trust policy: only SageMaker may assume it."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sagemaker.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
