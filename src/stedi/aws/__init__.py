"""stedi on AWS: a lake on S3 with the Glue Data Catalog, Athena DDL, and the Glue job deployment.

Needs the `aws` extra (boto3, pyiceberg's Glue support): pip install 'stedi[aws]'.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from stedi.errors import AwsError

INSTALL_HINT = "S3 and Glue need the aws extra: pip install 'stedi[aws]'"


@contextmanager
def aws_errors(action: str, error_class: type[AwsError] = AwsError) -> Iterator[None]:
    """botocore's failures as one readable line: what could not be done, and AWS's own reason."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        yield
    except NoCredentialsError:
        raise error_class(f"cannot {action}: no AWS credentials found (AWS_ACCESS_KEY_ID, AWS_PROFILE or a role)") from None
    except ClientError as error:
        info = error.response.get("Error", {})
        raise error_class(f"cannot {action}: {info.get('Code')}: {info.get('Message')}") from None
    except BotoCoreError as error:
        raise error_class(f"cannot {action}: {error}") from None
