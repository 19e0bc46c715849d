"""Compiles a ``WebServiceSpec`` subclass into a ``ServiceDefinition`` plus its handlers.

This is the only place that reads the user's class. It runs once, when the class is
defined, and fails there (``SpecError``) rather than at the first request.
"""

from __future__ import annotations

import inspect
import re
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from flowhost.errors import SpecError
from flowhost.services.audit import AUDIT_ATTR
from flowhost.services.config import Artifacts, Environment, Resources, Scaling
from flowhost.services.definition import EndpointDefinition, Payload, ServiceDefinition
from flowhost.services.endpoint import ENDPOINT_ATTR, EndpointOptions

__all__ = ["CompiledService", "EndpointBinding", "compile_service", "default_service_name"]

SERVICE_NAME = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
# First path segments the platform answers itself (control plane, Swagger, async requests).
RESERVED_NAMES = frozenset({"api", "docs", "healthz", "requests", "static-offline-docs"})


@dataclass(frozen=True)
class EndpointBinding:
    """The runtime half of an endpoint: the Python types its payloads validate against."""

    definition: EndpointDefinition
    request_type: Any  # a BaseModel subclass, a dict type, or None
    response_type: Any


@dataclass(frozen=True)
class CompiledService:
    definition: ServiceDefinition
    bindings: dict[str, EndpointBinding]


def default_service_name(class_name: str) -> str:
    """``SentimentService`` -> ``sentiment-service``."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", class_name)
    return re.sub(r"[^a-z0-9-]+", "-", words.lower()).strip("-")


def _payload_kind(tp: Any) -> str | None:
    if tp is None or tp is type(None):
        return None
    if inspect.isclass(tp) and issubclass(tp, BaseModel):
        return "model"
    origin = typing.get_origin(tp) or tp
    if origin is dict:
        args = typing.get_args(tp)
        if not args or args[0] is str:
            return "dict"
    return None


def _shown(tp: Any) -> str:
    """``'str'`` for a class; ``dict[int, str]`` for a generic alias (its __name__ is 'dict')."""
    return repr(tp.__name__) if inspect.isclass(tp) else repr(tp)


def _payload(tp: Any, mode: typing.Literal["validation", "serialization"]) -> Payload:
    if tp is None:
        return Payload(kind="none", json_schema={})
    kind = _payload_kind(tp)
    if kind == "model":
        return Payload(
            kind="model", type_name=tp.__name__, json_schema=tp.model_json_schema(mode=mode)
        )
    schema = TypeAdapter(tp).json_schema(mode=mode)
    return Payload(kind="dict", json_schema=schema)


def _type_hints(fn: Any, where: str) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except NameError as exc:
        raise SpecError(
            f"{where}: cannot resolve a type annotation ({exc}). Define or import the type "
            "before the service class."
        ) from None


def _compile_endpoint(cls: type, attr: str, fn: Any, options: EndpointOptions) -> EndpointBinding:
    where = f"@endpoint {cls.__name__}.{attr}"
    hints = _type_hints(fn, where)
    params = list(inspect.signature(fn).parameters.values())[1:]
    request_type: Any = None
    if params:
        param = params[0]
        if param.name not in hints:
            raise SpecError(
                f"{where}: the request parameter {param.name!r} has no type annotation. "
                f"Annotate it as a pydantic model ({param.name}: PredictIn) or as "
                f"request_dict: dict."
            )
        request_type = hints[param.name]
        if _payload_kind(request_type) is None:
            raise SpecError(
                f"{where}: the request type must be a pydantic model or dict "
                f"(got {_shown(request_type)}). Annotate the "
                "parameter as a BaseModel subclass or dict."
            )
    if "return" not in hints:
        raise SpecError(
            f"{where}: the return type is not annotated. Add '-> MyResponse' (a pydantic model) "
            "or '-> dict'; responses are validated against it."
        )
    response_type = hints["return"]
    if _payload_kind(response_type) is None:
        raise SpecError(
            f"{where}: the return type must be a pydantic model or dict "
            f"(got {_shown(response_type)}). Return a BaseModel "
            "subclass or dict."
        )
    description = options.description or inspect.cleandoc(fn.__doc__ or "")
    definition = EndpointDefinition(
        name=options.name,
        method=attr,
        description=description,
        http_methods=options.methods,  # pyright: ignore[reportArgumentType]
        timeout=options.timeout,
        request=_payload(request_type, "validation"),
        response=_payload(response_type, "serialization"),
        is_coroutine=inspect.iscoroutinefunction(fn),
    )
    return EndpointBinding(definition, request_type, response_type)


def _members(cls: type) -> dict[str, Any]:
    """Class attributes as Python resolves them: subclasses override their bases."""
    members: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        members.update(vars(klass))
    return members


def _collect_endpoints(cls: type) -> dict[str, tuple[Any, EndpointOptions]]:
    return {
        attr: (fn, getattr(fn, ENDPOINT_ATTR))
        for attr, fn in _members(cls).items()
        if hasattr(fn, ENDPOINT_ATTR)
    }


def _collect_audits(cls: type) -> tuple[str, ...]:
    members = _members(cls)
    return tuple(sorted(attr for attr, fn in members.items() if getattr(fn, AUDIT_ATTR, False)))


def _setting(cls: type, attr: str, kind: type[Any], default: Any) -> Any:
    value = getattr(cls, attr, None)
    if value is None:
        return default
    if isinstance(value, kind):
        return value
    if isinstance(value, dict):
        try:
            return kind(**value)
        except SpecError as exc:
            raise SpecError(f"{cls.__name__}.{attr}: {exc.message}") from None
    if kind is Environment and isinstance(value, str):
        return Environment.parse(value)
    raise SpecError(
        f"{cls.__name__}.{attr}: expected {kind.__name__}(...) (got {type(value).__name__} "
        f"{value!r}). Write {attr} = {kind.__name__}(...)."
    )


def _source_file(cls: type) -> Path | None:
    module = sys.modules.get(cls.__module__)
    file = getattr(module, "__file__", None)
    return Path(file).resolve() if file else None


def _check_environment(cls: type, env: Environment | None, source: Path | None) -> None:
    if env is None or env.requirements is None or source is None:
        return
    path = (source.parent / env.requirements).resolve()
    if not path.is_file():
        raise SpecError(
            f"{cls.__name__}.environment: requirements file not found (got "
            f"{env.requirements!r}, looked at {path}). Give a path relative to {source.name}."
        )


def compile_service(cls: type) -> CompiledService:
    """Check everything ``cls`` declares and build its ``ServiceDefinition``."""
    raw_name = cls.__dict__.get("name")
    name = raw_name if raw_name is not None else default_service_name(cls.__name__)
    if not isinstance(name, str) or not SERVICE_NAME.match(name):
        raise SpecError(
            f"{cls.__name__}.name: must be a DNS-safe slug: lowercase letters, digits and '-', "
            f"starting with a letter, at most 63 characters (got {name!r}). "
            f"For example name = {default_service_name(cls.__name__) or 'my-service'!r}."
        )
    if name in RESERVED_NAMES:
        raise SpecError(
            f"{cls.__name__}.name: {name!r} is reserved: the platform serves /{name}/ itself "
            f"(reserved: {', '.join(sorted(RESERVED_NAMES))}). Pick another name, e.g. "
            f"name = '{name}-service'."
        )
    bindings: dict[str, EndpointBinding] = {}
    owners: dict[str, str] = {}
    for attr, (fn, options) in _collect_endpoints(cls).items():
        if options.name in owners:
            raise SpecError(
                f"{cls.__name__}: two endpoints are named {options.name!r} (methods "
                f"{owners[options.name]!r} and {attr!r}). Give one of them another "
                "name=... in @endpoint."
            )
        owners[options.name] = attr
        bindings[options.name] = _compile_endpoint(cls, attr, fn, options)
    if not bindings:
        raise SpecError(
            f"{cls.__name__}: a service needs at least one @endpoint method. Decorate a method "
            "with @endpoint, or set abstract = True on a shared base class."
        )
    init = getattr(cls, "initialize", None)
    if init is not None and inspect.iscoroutinefunction(init):
        raise SpecError(
            f"{cls.__name__}.initialize: must be a plain def (got async def). Load models "
            "synchronously; it runs once per instance before traffic."
        )
    source = _source_file(cls)
    environment = _setting(cls, "environment", Environment, None)
    artifacts = _setting(cls, "artifacts", Artifacts, None)
    _check_environment(cls, environment, source)
    definition = ServiceDefinition(
        name=name,
        class_name=cls.__name__,
        description=inspect.cleandoc(cls.__dict__.get("__doc__") or ""),
        entrypoint=f"{source.name if source else cls.__module__}:{cls.__qualname__}",
        endpoints=tuple(b.definition for b in bindings.values()),
        resources=_setting(cls, "resources", Resources, Resources()),
        scaling=_setting(cls, "scaling", Scaling, Scaling()),
        artifacts=artifacts.binding() if artifacts is not None else None,
        environment=environment,
        audits=_collect_audits(cls),
    )
    return CompiledService(definition, bindings)
