"""The Pulumi state backend the CI roles use: ``flowhost:pulumiStateBackend``
(``s3://<bucket>[/<prefix>]``, validated in :mod:`flowhost.infra.config`).

A preview reads the state and takes and releases the stack's lock (``.pulumi/locks/``);
an update also writes the checkpoint and history (``.pulumi/``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from flowhost.infra.iam import Statement

__all__ = ["StateBackend", "state_backend", "state_statements"]


@dataclass(frozen=True)
class StateBackend:
    """Where the Pulumi state lives: ``s3://<bucket>/<prefix>``."""

    bucket: str
    prefix: str = ""


def state_backend(url: str | None) -> StateBackend | None:
    """``s3://bucket/prefix`` as a value (``None``: no backend configured)."""
    if url is None:
        return None
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    return StateBackend(bucket, prefix)


def state_statements(
    backend: StateBackend | None, partition: pulumi.Input[str], *, write: bool
) -> list[Statement]:
    if backend is None:
        return []
    bucket = pulumi.Output.concat("arn:", partition, ":s3:::", backend.bucket)
    prefix = backend.prefix.strip("/")
    under = f"{prefix}/" if prefix else ""
    # preview takes and releases the stack's lock; up also writes the checkpoint and history
    objects = ["s3:DeleteObject", "s3:PutObject"]
    where = pulumi.Output.concat(bucket, f"/{under}.pulumi/{'*' if write else 'locks/*'}")
    return [
        Statement(
            "PulumiStateListing", ["s3:ListBucket"], [bucket],
            conditions={"StringLike": {"s3:prefix": f"{under}*"}},
        ),
        Statement(
            "PulumiStateRead", ["s3:GetObject"], [pulumi.Output.concat(bucket, f"/{under}*")]
        ),
        Statement("PulumiStateWrite" if write else "PulumiStateLocks", objects, [where]),
    ]  # fmt: skip
