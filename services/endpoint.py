"""The ``@endpoint`` decorator: marks a method of a ``WebServiceSpec`` as a web endpoint.

The decorator checks what it can at once (options, parameter shape), records its
options on the function, and returns the function unchanged. Types are resolved
when the class is defined (see :mod:`flowhost.services.compile`).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from flowhost.errors import SpecError
from flowhost.services.units import parse_duration

__all__ = ["ENDPOINT_ATTR", "EndpointOptions", "endpoint"]

ENDPOINT_ATTR = "__flowhost_endpoint__"
MAX_SYNC_TIMEOUT = 1200.0  # synchronous requests run up to 20 minutes
ENDPOINT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
RESERVED_NAMES = frozenset({"healthz", "readyz", "info", "metrics", "docs", "openapi.json"})
ALLOWED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class EndpointOptions:
    """What ``@endpoint(...)`` declared for one method."""

    name: str
    description: str | None
    methods: tuple[str, ...]
    timeout: float


def _check_name(name: str, where: str) -> str:
    if not ENDPOINT_NAME.match(name):
        raise SpecError(
            f"{where}: endpoint name must be lowercase letters, digits, '-' or '_', starting "
            f"with a letter (got {name!r}). Pass name='my-endpoint' or rename the method."
        )
    if name in RESERVED_NAMES:
        raise SpecError(
            f"{where}: endpoint name {name!r} is reserved by the serving runtime. "
            f"Pick another name; reserved: {', '.join(sorted(RESERVED_NAMES))}."
        )
    return name


def _check_methods(methods: Iterable[str] | str, where: str) -> tuple[str, ...]:
    if isinstance(methods, str):
        methods = [methods]
    out: list[str] = []
    for m in methods:
        upper = str(m).upper()
        if upper not in ALLOWED_METHODS:
            raise SpecError(
                f"{where}: unknown HTTP method (got {m!r}). "
                f"Use one of: {', '.join(ALLOWED_METHODS)}."
            )
        if upper not in out:
            out.append(upper)
    if not out:
        raise SpecError(f"{where}: methods is empty. Give at least one, e.g. methods=['POST'].")
    return tuple(out)


def _check_timeout(timeout: float | str, where: str) -> float:
    try:
        seconds = parse_duration(timeout)
    except ValueError as exc:
        raise SpecError(f"{where}: timeout: {exc}.") from None
    if not 0 < seconds <= MAX_SYNC_TIMEOUT:
        raise SpecError(
            f"{where}: timeout must be above 0 and at most 20 minutes (got {timeout!r}). "
            "For longer work, call the endpoint asynchronously."
        )
    return seconds


def _check_shape(fn: Callable[..., Any], where: str) -> None:
    if isinstance(fn, staticmethod | classmethod):
        kind = "staticmethod" if isinstance(fn, staticmethod) else "classmethod"
        raise SpecError(
            f"{where}: @endpoint must decorate a plain method (got a {kind}). "
            "Remove @staticmethod/@classmethod."
        )
    if not inspect.isfunction(fn):
        raise SpecError(
            f"{where}: @endpoint decorates methods (got {type(fn).__name__}). "
            "Put @endpoint directly above a def or async def."
        )
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise SpecError(f"{where}: endpoints return one value, not a generator. Use return.")
    params = list(inspect.signature(fn).parameters.values())
    if not params or params[0].name != "self":
        raise SpecError(f"{where}: an endpoint is a method; its first parameter must be self.")
    extra = params[2:]
    if extra:
        names = ", ".join(p.name for p in extra)
        raise SpecError(
            f"{where}: an endpoint takes one request parameter (got extra: {names}). "
            "Put all fields in one pydantic model or use request_dict: dict."
        )
    if len(params) == 2 and params[1].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        raise SpecError(
            f"{where}: the request parameter {params[1].name!r} must be a plain positional "
            "parameter, not *args/**kwargs or keyword-only."
        )


@overload
def endpoint(func: F, /) -> F: ...
@overload
def endpoint(
    *,
    name: str | None = None,
    description: str | None = None,
    methods: Iterable[str] | str = ("POST",),
    timeout: float | str = 60.0,
) -> Callable[[F], F]: ...
def endpoint(
    func: Any = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    methods: Iterable[str] | str = ("POST",),
    timeout: float | str = 60.0,
) -> Any:
    """Expose a method as ``/{service}/{name}``.

    The method takes one request (a pydantic model, or ``request_dict: dict``) and
    returns a pydantic model or a dict. ``def`` methods run in a worker thread,
    ``async def`` methods on the event loop. ``timeout`` (seconds or ``"5m"``, at
    most 20 minutes) bounds one synchronous call.
    """

    def register(fn: F) -> F:
        where = f"@endpoint {getattr(fn, '__qualname__', repr(fn))!r}"
        _check_shape(fn, where)
        if hasattr(fn, ENDPOINT_ATTR):
            raise SpecError(f"{where}: @endpoint is applied twice. Keep one @endpoint(...).")
        options = EndpointOptions(
            name=_check_name(name if name is not None else fn.__name__, where),
            description=description,
            methods=_check_methods(methods, where),
            timeout=_check_timeout(timeout, where),
        )
        setattr(fn, ENDPOINT_ATTR, options)
        return fn

    if func is not None:
        # a classmethod object is not callable; register() rejects it with a clear message
        if not callable(func) and not hasattr(func, "__func__"):
            raise SpecError(
                f"@endpoint: options must be passed by keyword (got {func!r}). "
                "Write @endpoint(name='predict')."
            )
        return register(func)
    return register
