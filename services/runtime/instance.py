"""The life of one instance: resolve artifacts, construct the class, run ``initialize``."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Literal

from flowhost.errors import FlowhostError
from flowhost.services.artifacts import bind_run, resolve_run
from flowhost.services.definition import ServiceDefinition
from flowhost.services.spec import WebServiceSpec

__all__ = ["InstanceState", "construct"]

log = logging.getLogger("flowhost.instance")

Status = Literal["starting", "ready", "failed"]


def construct(
    cls: type[WebServiceSpec], definition: ServiceDefinition, pinned_run: str | None
) -> tuple[WebServiceSpec, str | None]:
    """Make a ready instance: pin and bind the artifact run, then run ``initialize``."""
    instance = cls()
    run: str | None = None
    binding = definition.artifacts
    if binding is not None:
        if pinned_run is not None:  # its form and flow, as Artifacts(run=...) checks them
            binding.pinned(pinned_run)
        run = pinned_run or resolve_run(binding)
        # shadows the class's declaration; read in the binding's namespace (or the platform's)
        instance.__dict__["artifacts"] = bind_run(run, binding.namespace)
        log.info("artifacts pinned", extra={"fields": {"run": run}})
    instance.initialize()
    return instance, run


class InstanceState:
    """Whether the instance takes traffic, and the object that serves it."""

    def __init__(self, cls: type[WebServiceSpec], definition: ServiceDefinition) -> None:
        self.cls = cls
        self.definition = definition
        self.status: Status = "starting"
        self.error: str | None = None
        self.run: str | None = None
        self.instance: WebServiceSpec | None = None
        self.started_at = time.time()
        self.initialize_seconds: float | None = None
        self._listeners: list[Callable[[InstanceState], None]] = []

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    def on_change(self, listener: Callable[[InstanceState], None]) -> None:
        self._listeners.append(listener)

    def _set(self, status: Status, error: str | None = None) -> None:
        self.status, self.error = status, error
        for listener in self._listeners:
            listener(self)

    def start(self, pinned_run: str | None) -> threading.Thread:
        """Initialize in a background thread, so health checks answer meanwhile."""
        thread = threading.Thread(
            target=self._initialize, args=(pinned_run,), name="flowhost-initialize", daemon=True
        )
        thread.start()
        return thread

    def _initialize(self, pinned_run: str | None) -> None:
        started = time.perf_counter()
        try:
            instance, self.run = construct(self.cls, self.definition, pinned_run)
        except FlowhostError as exc:
            log.error("initialize failed: %s", exc.message)
            self._set("failed", exc.message)
            return
        except Exception as exc:
            log.exception("initialize raised")
            self._set(
                "failed",
                f"{self.definition.class_name}.initialize raised {type(exc).__name__}: {exc}",
            )
            return
        self.initialize_seconds = time.perf_counter() - started
        self.instance = instance
        log.info(
            "instance ready",
            extra={"fields": {"initialize_seconds": round(self.initialize_seconds, 3)}},
        )
        self._set("ready")
