"""The settings a service declares as class attributes: resources, scaling, artifacts, environment.

Each is a frozen pydantic model. A bad value raises :class:`~flowhost.errors.SpecError`
when the class body runs, naming the class, the setting, the value and the fix.
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Self, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from flowhost.errors import ArtifactError, SpecError
from flowhost.services.units import parse_duration, parse_memory_mib

if TYPE_CHECKING:
    from flowhost.services.artifacts import BoundArtifacts

__all__ = ["ArtifactBinding", "Artifacts", "Environment", "Resources", "Scaling"]

_FLOW_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A Metaflow namespace is a tag (metaflow.tagging_util: at most 500 characters, not empty).
_NAMESPACE = re.compile(r"^\S{1,500}$")
# 'Flow/run' or, from inside a step (current.pathspec), 'Flow/run/step/task'
_RUN_PATHSPEC = re.compile(
    r"^([A-Za-z_][A-Za-z0-9_]*)/([A-Za-z0-9_.:-]+)(?:/[A-Za-z0-9_]+/[0-9]+)?$"
)


def _class_body_owner() -> str | None:
    """The name of the class whose body is constructing a setting, if any."""
    # Walk out of this module: settings without their own __init__ (Artifacts,
    # Environment) are one frame shallower than Resources and Scaling.
    frame = sys._getframe(1)  # pyright: ignore[reportPrivateUsage]
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back
    if frame is not None and "__qualname__" in frame.f_locals and "__module__" in frame.f_locals:
        return str(frame.f_locals["__qualname__"])
    return None


def describe_validation_error(where: str, exc: ValidationError, hints: dict[str, str]) -> str:
    """One readable line per problem: ``<where>: <field> <what> (got <value>). <fix>.``"""
    lines: list[str] = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(p) for p in err["loc"]) or "value"
        msg = str(err["msg"]).removeprefix("Value error, ")
        got = f" (got {err['input']!r})" if err["type"] != "missing" else ""
        hint = hints.get(field, "")
        lines.append(f"{where}: {field}: {msg}{got}." + (f" {hint}" if hint else ""))
    return "\n".join(lines)


class _Setting(BaseModel):
    """Base for service settings: frozen, no unknown fields, SpecError on bad input."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    hints: ClassVar[dict[str, str]] = {}

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            owner = _class_body_owner()
            where = f"{owner}: {type(self).__name__}" if owner else type(self).__name__
            raise SpecError(describe_validation_error(where, exc, self.hints)) from None


class Resources(_Setting):
    """What one instance of the service needs. ``gpu > 0`` sends the service to EKS."""

    cpu: Annotated[float, Field(ge=0.25, le=16, description="vCPUs per instance")] = 1.0
    memory: Annotated[
        int, Field(ge=128, le=122880, description="MiB per instance; accepts '512Mi', '2Gi'")
    ] = 2048
    gpu: Annotated[int, Field(ge=0, le=8, description="GPUs per instance")] = 0
    gpu_type: Annotated[str | None, Field(description="GPU instance family, e.g. 'g5'")] = None

    hints: ClassVar[dict[str, str]] = {
        "cpu": "Give vCPUs as a number between 0.25 and 16, e.g. cpu=1.",
        "memory": "Use a quantity between '128Mi' and '120Gi', or an int number of MiB.",
        "gpu": "Give a whole number of GPUs between 0 and 8.",
    }

    def __init__(
        self,
        *,
        cpu: float = 1.0,
        memory: int | str = 2048,
        gpu: int = 0,
        gpu_type: str | None = None,
    ) -> None:
        super().__init__(cpu=cpu, memory=memory, gpu=gpu, gpu_type=gpu_type)

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> Any:
        if isinstance(value, str | int):
            return parse_memory_mib(value)
        return value

    @model_validator(mode="after")
    def _gpu_type_needs_gpu(self) -> Self:
        if self.gpu_type is not None and self.gpu == 0:
            raise ValueError("gpu_type is set but gpu is 0; set gpu=1 or more, or drop gpu_type")
        return self


class Scaling(_Setting):
    """How many instances run: between ``min_instances`` (0 allowed) and ``max_instances``."""

    min_instances: Annotated[int, Field(ge=0, le=1000)] = 0
    max_instances: Annotated[int, Field(ge=1, le=1000)] = 4
    idle_timeout: Annotated[
        float, Field(ge=1, le=86400, description="seconds without traffic before scaling to zero")
    ] = 600.0
    target_concurrency: Annotated[
        int, Field(ge=1, le=1000, description="in-flight requests per instance to aim for")
    ] = 4

    hints: ClassVar[dict[str, str]] = {
        "idle_timeout": "Use a duration like '30s', '10m' or '1h' (between 1s and 24h).",
        "min_instances": "Use 0 to allow scale to zero, or a positive count.",
        "max_instances": "Use a positive count, at least min_instances.",
        "target_concurrency": "Use the number of requests one instance serves well at once.",
    }

    def __init__(
        self,
        *,
        min_instances: int = 0,
        max_instances: int = 4,
        idle_timeout: float | str = 600.0,
        target_concurrency: int = 4,
    ) -> None:
        super().__init__(
            min_instances=min_instances,
            max_instances=max_instances,
            idle_timeout=idle_timeout,
            target_concurrency=target_concurrency,
        )

    @field_validator("idle_timeout", mode="before")
    @classmethod
    def _idle_timeout(cls, value: Any) -> Any:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return parse_duration(value)
        return value

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.min_instances > self.max_instances:
            raise ValueError(
                f"min_instances ({self.min_instances}) is greater than max_instances "
                f"({self.max_instances}); raise max_instances or lower min_instances"
            )
        return self


class ArtifactBinding(_Setting):
    """Where the model comes from: the latest successful run of ``flow``, or the pinned ``run``.

    This is the data form kept in a ``ServiceDefinition``; services declare it with
    :class:`Artifacts`.
    """

    flow: str | None = None
    run: str | None = None
    namespace: str | None = None

    hints: ClassVar[dict[str, str]] = {
        "flow": "Give the Metaflow flow class name, e.g. flow='TrainFlow'.",
        "run": "Give a run pathspec like 'TrainFlow/123'.",
        "namespace": "Give a Metaflow namespace (a tag) like 'user:alice', "
        "'production:trainflow-0-abcd' or 'team:ml', or leave it out for the platform's.",
    }

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str | None) -> str | None:
        if value is not None and not _NAMESPACE.match(value):
            raise ValueError("not a Metaflow namespace: 1-500 characters, no spaces")
        return value

    @field_validator("flow")
    @classmethod
    def _flow_name(cls, value: str | None) -> str | None:
        if value is not None and not _FLOW_NAME.match(value):
            raise ValueError("not a Metaflow flow name")
        return value

    @field_validator("run")
    @classmethod
    def _run_pathspec(cls, value: str | None) -> str | None:
        if value is None:
            return None
        match = _RUN_PATHSPEC.match(value)
        if not match:
            raise ValueError("not a run pathspec of the form 'FlowName/run_id'")
        return f"{match.group(1)}/{match.group(2)}"  # a task's pathspec names its run

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.flow is None and self.run is None:
            raise ValueError("give flow='FlowName' (latest successful run) or run='FlowName/id'")
        if self.flow is not None and self.run is not None:
            run_flow = self.run.split("/", 1)[0]
            if run_flow != self.flow:
                raise ValueError(
                    f"run {self.run!r} belongs to flow {run_flow!r}, not {self.flow!r}; "
                    "drop flow or make them agree"
                )
        return self

    def pinned(self, run: str) -> ArtifactBinding:
        """This binding pinned to ``run`` (same flow and namespace), checked as declared."""
        return ArtifactBinding(flow=self.flow_name, run=run, namespace=self.namespace)

    @property
    def flow_name(self) -> str:
        """The flow this binding reads from."""
        if self.flow is not None:
            return self.flow
        assert self.run is not None
        return self.run.split("/", 1)[0]


class Artifacts(ArtifactBinding):
    """Declares the Metaflow run a service loads its model from.

    ``artifacts = Artifacts(flow="TrainFlow")`` binds to the latest successful run at
    deploy time; ``Artifacts(run="TrainFlow/123")`` pins one run. On an instance,
    ``self.artifacts.run`` is the pinned pathspec and ``self.artifacts.flow.<name>``
    reads an artifact of that run.

    Runs are found and read in a Metaflow namespace, never the global one:
    ``namespace=`` (e.g. ``"production:trainflow-0-abcd"`` for a scheduled flow's runs),
    else the platform's (``FLOWHOST_METAFLOW_NAMESPACE``), else Metaflow's default,
    ``user:<USERNAME>``.
    """

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> Artifacts: ...
    @overload
    def __get__(self, instance: object, owner: type[Any]) -> BoundArtifacts: ...
    def __get__(self, instance: object | None, owner: type[Any]) -> Artifacts | BoundArtifacts:
        """On the class: this declaration. On an instance: the bound run (set at start)."""
        if instance is None:
            return self
        raise ArtifactError(
            f"{type(instance).__name__}.artifacts: not bound yet. Artifacts are bound when an "
            "instance starts, before initialize(); in a test, use "
            "flowhost.services.testing.start(ServiceClass, run=...)."
        )

    def binding(self) -> ArtifactBinding:
        """The plain data form, as stored in the ``ServiceDefinition``."""
        return ArtifactBinding.model_validate(self.model_dump())


class Environment(_Setting):
    """The Python environment a service runs in: a requirements file, or a named environment.

    A requirements path is relative to the file that defines the service.
    """

    requirements: str | None = None
    name: str | None = None

    hints: ClassVar[dict[str, str]] = {
        "requirements": "Give a path relative to the service file, e.g. 'requirements.txt'.",
        "name": "Give the name of an environment the platform defines.",
    }

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.requirements is None) == (self.name is None):
            raise ValueError(
                "give exactly one of requirements='requirements.txt' or name='<environment>'"
            )
        return self

    @classmethod
    def parse(cls, value: str) -> Environment:
        """A plain string: a ``*.txt`` path is a requirements file, anything else a name."""
        if value.endswith(".txt") or "/" in value:
            return cls(requirements=value)
        return cls(name=value)
