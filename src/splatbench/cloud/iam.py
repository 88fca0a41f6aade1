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
