"""``WebServiceSpec``: the one class a data scientist writes."""

from __future__ import annotations

from typing import Any, ClassVar

from flowhost.services.compile import CompiledService, compile_service
from flowhost.services.config import Environment, Resources, Scaling
from flowhost.services.definition import ServiceDefinition

__all__ = ["WebServiceSpec", "compiled", "definition_of"]

_COMPILED = "__flowhost_compiled__"


class WebServiceSpec:
    """Subclass this to define a web service.

    Class attributes (all optional): ``name`` (a DNS-safe slug; defaults from the class
    name), ``resources``, ``scaling``, ``artifacts``, ``environment``; the docstring
    becomes the service description. ``initialize`` runs once per instance before it
    takes traffic; ``@endpoint`` methods become routes. Everything is checked when the
    class is defined.
    """

    name: ClassVar[str]
    resources: ClassVar[Resources | None] = None
    scaling: ClassVar[Scaling | None] = None
    environment: ClassVar[Environment | str | None] = None
    abstract: ClassVar[bool] = False
    # ``artifacts = Artifacts(...)`` is declared by subclasses that load a Metaflow run; on
    # an instance it reads as the bound run (``self.artifacts.run``, ``.flow.<name>``).

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("abstract", False):
            return
        setattr(cls, _COMPILED, compile_service(cls))

    def initialize(self) -> None:
        """Load models and other state; runs once per instance before it takes traffic."""


def compiled(cls: type[WebServiceSpec]) -> CompiledService:
    """The compiled form of a service class (definition plus endpoint types)."""
    value = cls.__dict__.get(_COMPILED)
    if not isinstance(value, CompiledService):
        from flowhost.errors import SpecError

        raise SpecError(
            f"{cls.__name__}: is abstract or not a WebServiceSpec subclass. "
            "Serve a concrete subclass that declares @endpoint methods."
        )
    return value


def definition_of(cls: type[WebServiceSpec]) -> ServiceDefinition:
    """The ``ServiceDefinition`` of a service class."""
    return compiled(cls).definition
