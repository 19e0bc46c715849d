"""A small service and helpers the store tests share."""

from __future__ import annotations

from pydantic import BaseModel

from flowhost.lambdas.store import PRODUCTION, StateStore
from flowhost.services import (
    Artifacts,
    Scaling,
    ServiceDefinition,
    WebServiceSpec,
    definition_of,
    endpoint,
)

__all__ = ["ECHO", "deploy", "named", "promote", "rollback"]


class EchoIn(BaseModel):
    text: str
    times: int = 1


class EchoOut(BaseModel):
    text: str
    length: int


class Echo(WebServiceSpec):
    """Echoes text back."""

    name = "echo"
    artifacts = Artifacts(run="EchoFlow/7")
    scaling = Scaling(min_instances=0, max_instances=2, idle_timeout="5m")

    @endpoint(description="Echo one text.", timeout="10s")
    def echo(self, request: EchoIn) -> EchoOut:
        return EchoOut(text=request.text * request.times, length=len(request.text))

    @endpoint(methods=["GET", "POST"])
    def stats(self, request_dict: dict) -> dict:
        return {}


ECHO = definition_of(Echo)


def named(name: str) -> ServiceDefinition:
    """ECHO under another service name."""
    return ECHO.model_copy(update={"name": name})


def deploy(store: StateStore, definition: ServiceDefinition = ECHO, *, ready: bool = True) -> int:
    """Create the next version (made ready unless ``ready=False``); returns its number."""
    version = store.create_version(
        definition, code_digest="sha256:code", artifact_run="EchoFlow/7",
        environment_digest="sha256:env", actor="alice",
    )  # fmt: skip
    if ready:
        store.set_status(definition.name, version.number, "ready")
    return version.number


def promote(store: StateStore, number: int, alias: str = PRODUCTION) -> int | None:
    return store.move_alias("echo", alias, number, actor="alice")


def rollback(store: StateStore, alias: str = PRODUCTION) -> int:
    """What ``Deployments.rollback`` does with the store."""
    target = store.previous_target("echo", alias)
    store.move_alias("echo", alias, target, actor="carol", kind="rollback")
    return target
