"""Binds a service to the artifacts of a Metaflow run, through the real Metaflow client.

At deploy (or serve) time the binding is resolved once to a run pathspec, which is
then pinned: every response names it. Artifacts are read lazily, on first access,
and cached for the life of the instance.

Runs are found and read in one Metaflow namespace, never the global one: the binding's
``Artifacts(namespace=...)``, else the platform's (``FLOWHOST_METAFLOW_NAMESPACE``), else
Metaflow's default (``user:<USERNAME>``, or ``production:<token>`` under
``METAFLOW_PRODUCTION_TOKEN``). Metaflow keeps its namespace per process, so the calls
that look runs up hold a lock while they set it; the objects they return keep theirs.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Generator, Mapping
from contextlib import contextmanager
from typing import Any

from flowhost.errors import ArtifactError
from flowhost.services.config import ArtifactBinding

__all__ = [
    "NAMESPACE_ENV",
    "ArtifactNamespace",
    "BoundArtifacts",
    "bind_run",
    "check_run",
    "metaflow_settings",
    "platform_namespace",
    "resolve_run",
]

NAMESPACE_ENV = "FLOWHOST_METAFLOW_NAMESPACE"
_INTERNAL = frozenset({"name"})
_LOCK = threading.RLock()  # metaflow.namespace() is process-wide
_CHECK_FIX = (
    "Check the Metaflow settings in play (metadata provider, datastore root, namespace) and "
    "that this process may read the datastore root"
)


def platform_namespace(env: Mapping[str, str] | None = None) -> str | None:
    """The platform's default namespace (``FLOWHOST_METAFLOW_NAMESPACE``), if set."""
    value = (os.environ if env is None else env).get(NAMESPACE_ENV, "").strip()
    return value or None


@contextmanager
def _metaflow(namespace: str | None) -> Generator[tuple[Any, str]]:
    """Metaflow, switched to ``namespace`` (or the platform's, or Metaflow's default) for
    the duration; yields the module and the namespace in use."""
    import metaflow  # imported on use: it is slow to import and not every instance needs it
    from metaflow.exception import MetaflowUnknownUser

    with _LOCK:
        chosen = namespace or platform_namespace()
        if chosen is None:
            try:
                chosen = str(metaflow.default_namespace())  # pyright: ignore[reportPrivateImportUsage]
            except MetaflowUnknownUser:
                raise ArtifactError(
                    "artifacts: no Metaflow namespace to read runs in (got no USERNAME, no "
                    f"{NAMESPACE_ENV}). Set Artifacts(namespace=...), {NAMESPACE_ENV}, or "
                    "USERNAME."
                ) from None
        metaflow.namespace(chosen)  # pyright: ignore[reportPrivateImportUsage]
        yield metaflow, chosen


def _missing(mf: Any) -> tuple[type[BaseException], ...]:
    """What Metaflow raises for an object that does not exist in the namespace."""
    return (mf.exception.MetaflowNotFound, mf.exception.MetaflowNamespaceMismatch)


def _where(mf: Any) -> str:
    try:
        return str(mf.get_metadata())
    except Exception:  # pragma: no cover - metadata provider misconfigured
        return "the configured Metaflow metadata"


def _known_flows(mf: Any) -> str:
    try:
        names = sorted(f.id for f in mf.Metaflow().flows)
    except Exception:
        return "unknown"
    return ", ".join(names) or "none"


def metaflow_settings() -> str:
    """The Metaflow settings in play, for an error line: metadata provider, service URL,
    datastore and its root (never the service's auth key)."""
    from metaflow import metaflow_config as config

    metadata = str(getattr(config, "DEFAULT_METADATA", "local"))
    parts = [f"METAFLOW_DEFAULT_METADATA={metadata}"]
    if metadata == "service":
        parts[0] += f" (METAFLOW_SERVICE_URL={getattr(config, 'SERVICE_URL', None) or 'unset'})"
    datastore = str(getattr(config, "DEFAULT_DATASTORE", "local"))
    root_name = f"DATASTORE_SYSROOT_{datastore.upper()}"
    root = getattr(config, root_name, None) or "unset"
    parts.append(f"METAFLOW_DEFAULT_DATASTORE={datastore} (METAFLOW_{root_name}={root})")
    return ", ".join(parts)


def resolve_run(binding: ArtifactBinding) -> str:
    """The pathspec of the run ``binding`` names: pinned, or the latest successful one,
    looked up in the binding's namespace (see the module's docstring)."""
    with _metaflow(binding.namespace) as (mf, ns):
        return _resolve(mf, ns, binding)


def _resolve(mf: Any, ns: str, binding: ArtifactBinding) -> str:
    flow_name = binding.flow_name
    try:
        flow = mf.Flow(flow_name)
    except _missing(mf):
        raise ArtifactError(
            f"Artifacts(flow={flow_name!r}): no such flow in namespace {ns!r} of {_where(mf)}. "
            f"Flows found: {_known_flows(mf)}. Run the flow first (python flow.py run), fix "
            "the name, or set the namespace its runs are in (Artifacts(namespace=...))."
        ) from None
    if binding.run is not None:
        try:
            run = mf.Run(binding.run)
        except _missing(mf):
            recent = ", ".join(r.pathspec for _, r in zip(range(5), flow, strict=False))
            raise ArtifactError(
                f"Artifacts(run={binding.run!r}): no such run of flow {flow_name!r} in "
                f"namespace {ns!r}. Recent runs there: {recent or 'none'}. Pin one of them, "
                f"use flow={flow_name!r}, or set the namespace the run is in."
            ) from None
        if run.finished and not run.successful:
            raise ArtifactError(
                f"Artifacts(run={binding.run!r}): the run failed. Pin a successful run, or use "
                f"flow={flow_name!r} for the latest successful one."
            )
        # A run still in progress is allowed: a flow's own step may deploy what it trained.
        return str(run.pathspec)
    run = flow.latest_successful_run
    if run is None:
        raise ArtifactError(
            f"Artifacts(flow={flow_name!r}): the flow has no successful run in namespace "
            f"{ns!r} of {_where(mf)}. Run it to completion first (python flow.py run)."
        )
    return str(run.pathspec)


def check_run(pathspec: str, namespace: str | None = None, fix: str = _CHECK_FIX) -> None:
    """Check that the artifacts of run ``pathspec`` can be read here: the run in the
    namespace, its latest finished task, and one small artifact from the datastore.
    Otherwise one ArtifactError line names the run, the namespace, the settings in play
    (:func:`metaflow_settings`), what failed, and ``fix``."""
    with _metaflow(namespace) as (mf, ns):
        try:
            task = _latest_task(mf.Run(pathspec))
            if task is None:
                raise ArtifactError(
                    f"artifacts: run {pathspec} has no finished step yet in namespace {ns!r}. "
                    "Deploy after the step that produces the model."
                )
            _ = task["name"].data  # every task has it: reading it proves the datastore works
        except ArtifactError:
            raise
        except Exception as exc:
            raise ArtifactError(
                f"artifacts: run {pathspec} is not readable in namespace {ns!r} with "
                f"{metaflow_settings()}: {_reason(exc)}. {fix}."
            ) from None


def _reason(exc: BaseException) -> str:
    """``MetaflowNotFound`` or ``OSError (first line of the message)``, kept short."""
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else ""
    if not first or first == type(exc).__name__:
        return type(exc).__name__
    return f"{type(exc).__name__} ({first[:160]})"


def _latest_task(run: Any) -> Any:
    """The task whose artifacts the binding reads: the end step's, or, while the run is
    still going (a step deploying what it trained), the most recently finished task's.
    Metaflow carries every artifact forward, so that task sees all of them."""
    end = run.end_task
    if end is not None and end.finished:
        return end
    finished = [task for step in run for task in step if task.finished]
    return max(finished, key=lambda t: t.finished_at, default=None)


class ArtifactNamespace:
    """``self.artifacts.flow``: the artifacts of the pinned run, by attribute name."""

    def __init__(self, pathspec: str, namespace: str | None = None) -> None:
        self._pathspec = pathspec
        self._namespace = namespace
        self._lock = threading.Lock()
        self._artifacts: dict[str, Any] | None = None  # name -> metaflow DataArtifact
        self._values: dict[str, Any] = {}

    def _index(self) -> dict[str, Any]:
        if self._artifacts is None:
            with _metaflow(self._namespace) as (mf, ns):
                try:
                    task = _latest_task(mf.Run(self._pathspec))
                except _missing(mf):
                    raise ArtifactError(
                        f"artifacts of run {self._pathspec!r}: no such run in namespace {ns!r} "
                        f"of {_where(mf)}. Redeploy against a run that exists there."
                    ) from None
            if task is None:
                raise ArtifactError(
                    f"artifacts of run {self._pathspec!r}: no step of the run has finished yet. "
                    "Deploy after the step that produces the model."
                )
            self._artifacts = {
                a.id: a for a in task if not a.id.startswith("_") and a.id not in _INTERNAL
            }
        return self._artifacts

    def names(self) -> list[str]:
        """The artifact names the run produced."""
        with self._lock:
            return sorted(self._index())

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        with self._lock:
            if name in self._values:
                return self._values[name]
            index = self._index()
            if name not in index:
                raise ArtifactError(
                    f"artifacts of run {self._pathspec!r}: no artifact {name!r}. Artifacts: "
                    f"{', '.join(sorted(index)) or 'none'}."
                )
            value = index[name].data
            self._values[name] = value
            return value

    def __dir__(self) -> list[str]:
        return self.names()

    def __repr__(self) -> str:
        return f"ArtifactNamespace({self._pathspec!r})"


class BoundArtifacts:
    """``self.artifacts`` on a running instance: the pinned ``run`` and its ``flow`` artifacts."""

    def __init__(self, pathspec: str, namespace: str | None = None) -> None:
        self.run = pathspec
        self.flow = ArtifactNamespace(pathspec, namespace)

    def __repr__(self) -> str:
        return f"BoundArtifacts(run={self.run!r})"


def bind_run(pathspec: str, namespace: str | None = None) -> BoundArtifacts:
    """Bind to one run by pathspec (already resolved and pinned), read in ``namespace``
    (None: the platform's, else Metaflow's default)."""
    return BoundArtifacts(pathspec, namespace)
