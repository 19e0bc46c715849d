"""The one family of errors flowhost raises.

Every error carries a stable ``code`` slug and an HTTP ``status`` so the control
plane and the serving runtime map it to a response without guessing. Messages
follow one shape: ``<where>: <what is wrong> (got <value>). <how to fix>.``
"""

from __future__ import annotations

__all__ = [
    "ArtifactError",
    "DeployError",
    "FlowhostError",
    "NotFoundError",
    "SpecError",
]


class FlowhostError(Exception):
    """Base class: a problem the user can act on, with a readable one-line message."""

    code: str = "flowhost_error"
    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SpecError(FlowhostError, TypeError):
    """A ``WebServiceSpec`` class, decorator or setting is wrong; raised at definition time."""

    code = "invalid_spec"
    status = 400


class ArtifactError(FlowhostError):
    """A Metaflow artifact binding cannot be resolved (flow, run or artifact missing)."""

    code = "artifact_unavailable"
    status = 424


class DeployError(FlowhostError):
    """A deployment could not be completed; the previous production is untouched."""

    code = "deploy_failed"
    status = 409


class NotFoundError(FlowhostError):
    """A named thing (service, endpoint, version, alias) does not exist."""

    code = "not_found"
    status = 404
