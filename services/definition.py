"""``ServiceDefinition``: the pure, frozen, JSON-serializable description of a service.

It is compiled once from a ``WebServiceSpec`` class when the class is defined. The
serving runtime, the control plane and the Pulumi components all read this model;
none of them inspects the user's class again.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flowhost.errors import NotFoundError
from flowhost.services.config import ArtifactBinding, Environment, Resources, Scaling

__all__ = ["DEFAULT_TIMEOUT", "EndpointDefinition", "Payload", "ServiceDefinition"]

DEFAULT_TIMEOUT = 60.0  # seconds an endpoint may run when @endpoint names no timeout

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Payload(_Frozen):
    """A request or response body: its kind and its JSON Schema."""

    kind: Literal["model", "dict", "none"]
    type_name: str | None = Field(default=None, description="pydantic model name, if a model")
    json_schema: dict[str, Any] = Field(default_factory=dict)


class EndpointDefinition(_Frozen):
    """One ``@endpoint`` method."""

    name: str
    method: str = Field(description="the Python method name on the class")
    description: str = ""
    http_methods: tuple[HttpMethod, ...] = ("POST",)
    timeout: Annotated[float, Field(gt=0, le=1200)] = DEFAULT_TIMEOUT
    request: Payload
    response: Payload
    is_coroutine: bool = False


class ServiceDefinition(_Frozen):
    """Everything a service declares; the one model every part of flowhost reads."""

    schema_version: Literal[1] = 1
    name: str
    class_name: str
    description: str = ""
    entrypoint: str = Field(description="'<file>.py:<ClassName>', relative to the code root")
    endpoints: tuple[EndpointDefinition, ...]
    resources: Resources = Field(default_factory=Resources)
    scaling: Scaling = Field(default_factory=Scaling)
    artifacts: ArtifactBinding | None = None
    environment: Environment | None = None
    audits: tuple[str, ...] = Field(
        default=(), description="names of @audit methods run against a version before promotion"
    )

    def endpoint(self, name: str) -> EndpointDefinition:
        """The endpoint called ``name``; ``NotFoundError`` lists the ones that exist."""
        for ep in self.endpoints:
            if ep.name == name:
                return ep
        known = ", ".join(ep.name for ep in self.endpoints) or "none"
        raise NotFoundError(f"service {self.name!r}: no endpoint {name!r}. Endpoints: {known}.")

    @property
    def uses_gpu(self) -> bool:
        return self.resources.gpu > 0
