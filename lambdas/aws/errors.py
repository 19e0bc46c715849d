"""How AWS API errors become flowhost errors: one place, one message shape.

``aws_errors(where, operation)`` wraps a block of boto3 calls; a ``ClientError`` whose
code says the named thing is missing becomes ``NotFoundError``, any other AWS error an
``AwsError``, each with ``<where>: <what> (got <code>). <fix>.``
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError

from flowhost.errors import FlowhostError, NotFoundError

__all__ = ["AwsError", "aws_errors", "error_code"]


class AwsError(FlowhostError):
    """An AWS API call failed for a reason the caller cannot fix by naming another thing."""

    code = "aws_error"
    status = 502


def error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "Unknown")


@contextmanager
def aws_errors(
    where: str,
    operation: str,
    *,
    missing: Iterable[str] = (),
    missing_fix: str = "Check the name and region",
) -> Generator[None]:
    """Raise the AWS errors of the block as flowhost errors naming ``where``.

    ``missing``: error codes meaning the thing at ``where`` does not exist; they become
    ``NotFoundError`` with ``missing_fix`` as the advice.
    """
    try:
        yield
    except ClientError as error:
        code = error_code(error)
        text = error.response.get("Error", {}).get("Message", "")[:300]
        if code in frozenset(missing):
            raise NotFoundError(f"{where}: not found (got {code}). {missing_fix}.") from error
        raise AwsError(
            f"{where}: {operation} failed (got {code}: {text}). Check the region, the "
            "control plane role's permissions and the platform stack's outputs."
        ) from error
    except BotoCoreError as error:
        raise AwsError(
            f"{where}: {operation} failed ({error}). Check the endpoint, network and credentials."
        ) from error
