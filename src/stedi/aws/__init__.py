"""stedi on AWS: a lake on S3 with the Glue Data Catalog, Athena DDL, and the Glue job deployment.

Needs the `aws` extra (boto3, pyiceberg's Glue support): pip install 'stedi[aws]'.
"""

from __future__ import annotations

INSTALL_HINT = "S3 and Glue need the aws extra: pip install 'stedi[aws]'"


class AwsError(RuntimeError):
    """An AWS problem a user can fix: no credentials, no such bucket, access denied, unreachable endpoint."""
