"""Binds a service to the artifacts of a Metaflow run, through the real Metaflow client.

At deploy (or serve) time the binding is resolved once to a run pathspec, which is
then pinned: every response names it. Artifacts are read lazily, on first access,
and cached for the life of the instance.
"""

from __future__ import annotations

import threading
from typing import Any

from flowhost.errors import ArtifactError
from flowhost.services.config import ArtifactBinding

__all__ = ["ArtifactNamespace", "BoundArtifacts", "bind_run", "resolve_run"]

_INTERNAL = frozenset({"name"})


def _metaflow() -> Any:
    import metaflow  # imported on use: it is slow to import and not every instance needs it

    metaflow.namespace(None)  # pyright: ignore[reportPrivateImportUsage] - a service reads runs made by any user or scheduler
    return metaflow


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


def resolve_run(binding: ArtifactBinding) -> str:
    """The pathspec of the run ``binding`` names: pinned, or the latest successful one."""
    mf = _metaflow()
    flow_name = binding.flow_name
    try:
        flow = mf.Flow(flow_name)
    except mf.exception.MetaflowNotFound:
        raise ArtifactError(
            f"Artifacts(flow={flow_name!r}): no such flow in {_where(mf)}. Flows found: "
            f"{_known_flows(mf)}. Run the flow first (python flow.py run) or fix the name."
        ) from None
    if binding.run is not None:
        try:
            run = mf.Run(binding.run)
        except mf.exception.MetaflowNotFound:
            recent = ", ".join(r.pathspec for _, r in zip(range(5), flow, strict=False))
            raise ArtifactError(
                f"Artifacts(run={binding.run!r}): no such run of flow {flow_name!r}. Recent "
                f"runs: {recent or 'none'}. Pin one of them or use flow={flow_name!r}."
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
            f"Artifacts(flow={flow_name!r}): the flow has no successful run in {_where(mf)}. "
            "Run it to completion first (python flow.py run)."
        )
    return str(run.pathspec)


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

    def __init__(self, pathspec: str) -> None:
        self._pathspec = pathspec
        self._lock = threading.Lock()
        self._artifacts: dict[str, Any] | None = None  # name -> metaflow DataArtifact
        self._values: dict[str, Any] = {}

    def _index(self) -> dict[str, Any]:
        if self._artifacts is None:
            mf = _metaflow()
            try:
                task = _latest_task(mf.Run(self._pathspec))
            except mf.exception.MetaflowNotFound:
                raise ArtifactError(
                    f"artifacts of run {self._pathspec!r}: the run is gone from {_where(mf)}. "
                    "Redeploy against a run that exists."
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

    def __init__(self, pathspec: str) -> None:
        self.run = pathspec
        self.flow = ArtifactNamespace(pathspec)

    def __repr__(self) -> str:
        return f"BoundArtifacts(run={self.run!r})"


def bind_run(pathspec: str) -> BoundArtifacts:
    """Bind to one run by pathspec (already resolved and pinned)."""
    return BoundArtifacts(pathspec)
