"""Cloud plumbing: S3 clients and transfers, IAM policies, AWS Batch / SageMaker job specs.

Nothing here knows about scenes; :mod:`splatbench.ingest.job` composes these pieces. boto3 is
imported lazily by the modules that need it, so ``import splatbench.cloud`` stays cheap.
"""
