"""Cloud plumbing and the AWS jobs built on it.

Two layers:

* plumbing that knows nothing about scenes: S3 clients and transfers (:mod:`.s3`,
  :mod:`.transfer`), IAM policies (:mod:`.iam`), request validation and job specs (:mod:`.jobs`),
  the SageMaker training-job contract (:mod:`.contract`), a local S3 server (:mod:`.local_s3`);
* the jobs that compose it with the pipeline: the S3 ingestion job (:mod:`.ingest_job`,
  ``splatbench ingest``) and the SageMaker launcher (``splatbench remote``).

``splatbench.ingest`` uses only the plumbing (its ``s3://`` source); URI redaction shared by
both packages lives below them in :mod:`splatbench.uri`. boto3 is imported lazily by the
modules that need it, so ``import splatbench.cloud`` stays cheap.
"""
