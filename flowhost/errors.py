"""The one family of errors flowhost raises.

Every error carries a stable ``code`` slug and an HTTP ``status`` so the control
plane and the serving runtime map it to a response without guessing. Messages
follow one shape: ``<where>: <what is wrong> (got <value>). <how to fix>.``
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = [
    "ArtifactError",
    "AuditFailedError",
    "ContractBrokenError",
    "DeployError",
    "FlowhostError",
    "NotFoundError",
    "ServiceTargetError",
    "SpecError",
    "StateStorageFullError",
    "StateUnavailableError",
]


class FlowhostError(Exception):
    """Base class: a problem the user can act on, with a readable one-line message."""

    code: str = "flowhost_error"
    status: int = 500
    headers: Mapping[str, str] = MappingProxyType({})  # extra response headers (Retry-After)

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SpecError(FlowhostError, TypeError):
    """A ``WebServiceSpec`` class, decorator or setting is wrong; raised at definition time."""

    code = "invalid_spec"
    status = 400


class ServiceTargetError(SpecError):
    """A ``path.py[:Class]`` names no file, or no such service class in it: the argument
    is wrong (the CLI exits 2, usage)."""

    code = "invalid_service_target"


class ArtifactError(FlowhostError):
    """A Metaflow artifact binding cannot be resolved (flow, run or artifact missing)."""

    code = "artifact_unavailable"
    status = 424


class DeployError(FlowhostError):
    """A deployment could not be completed; the previous production is untouched."""

    code = "deploy_failed"
    status = 409


class AuditFailedError(DeployError):
    """A version failed its audits, so it was not promoted."""

    code = "audit_failed"


class ContractBrokenError(DeployError):
    """A promote would break the schema contract of the version at the alias."""

    code = "contract_broken"


class NotFoundError(FlowhostError):
    """A named thing (service, endpoint, version, alias) does not exist."""

    code = "not_found"
    status = 404


class StateUnavailableError(FlowhostError):
    """The state database cannot be reached, or is too busy to answer, for now; the
    request may be retried unchanged after ``retry_after`` seconds."""

    code = "state_unavailable"
    status = 503

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.headers = MappingProxyType({"Retry-After": str(retry_after)})


class StateStorageFullError(FlowhostError):
    """The state database's disk (or its size limit) is full: nothing was written, and
    writes fail until space is freed; reads still work."""

    code = "state_storage_full"
    status = 507
