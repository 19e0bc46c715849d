"""What an environment is built from, and its digest.

An :class:`EnvironmentRequest` names everything a build depends on: the requirements, the
Python and platform of the serving runtime, the package index, and the runtime's own pins
(the packages flowhost's runtime needs, at the versions the runtime image has), which the
lock must keep. Its digest names the environment: two requests with the same digest share
one build, and a version pins the digest it was deployed with. The lock is made by the
build, where the index is reachable (the control plane may have no route to it), and is
recorded in the environment's manifest.
"""

from __future__ import annotations

import hashlib
import json
import sys
from functools import cache
from importlib.metadata import PackageNotFoundError, distribution

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "EnvironmentRequest",
    "TargetPlatform",
    "runtime_pins",
]


class TargetPlatform(BaseModel):
    """Where services run: the runtime's Python and the platform wheels must fit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    python: str = Field(pattern=r"^3\.\d+$", description="e.g. 3.11")
    platform: str | None = Field(
        default=None,
        description="uv's --python-platform, e.g. x86_64-manylinux_2_28; None: this machine",
    )
    index_url: str | None = Field(default=None, description="the package index (no secrets)")

    @classmethod
    def here(cls, index_url: str | None = None) -> TargetPlatform:
        """This interpreter on this machine (the local platform)."""
        return cls(python=f"{sys.version_info.major}.{sys.version_info.minor}", index_url=index_url)

    def describe(self) -> str:
        return f"Python {self.python} on {self.platform or 'this machine'}"


class EnvironmentRequest(BaseModel):
    """One environment to build; ``source`` says where it came from and is not digested."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    requirements: str = Field(description="normalised pip requirements, one per line")
    target: TargetPlatform
    runtime: str = Field(description="the runtime's pins as 'name==version' lines")
    source: str = Field(default="", description="e.g. 'requirements.txt of sentiment'")

    @property
    def digest(self) -> str:
        body = self.model_dump(mode="json", exclude={"source"})
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return "sha256-" + hashlib.sha256(text.encode()).hexdigest()

    @property
    def packages(self) -> list[str]:
        return [line for line in self.requirements.splitlines() if line]


@cache
def runtime_pins() -> str:
    """flowhost's runtime and everything it needs, as installed here: 'name==version' lines.

    The serving runtime imports these, so an environment's lock keeps them at these
    versions (they are constraints of the lock) and the build leaves them out of the
    archive (the runtime image has them).
    """
    pins: dict[str, str] = {}
    todo: list[tuple[str, frozenset[str]]] = [("flowhost", frozenset())]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue  # a marker-selected dependency not installed here
        pins[canonicalize_name(name)] = dist.version
        for raw in dist.requires or []:
            req = Requirement(raw)
            wanted = extras or frozenset({""})
            if req.marker is not None and not any(
                req.marker.evaluate({"extra": extra}) for extra in wanted
            ):
                continue
            todo.append((req.name, frozenset(req.extras)))
    pins.pop("flowhost", None)  # the platform itself is never a requirement
    return "".join(f"{name}=={pins[name]}\n" for name in sorted(pins))
