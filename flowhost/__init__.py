"""flowhost: one Python class becomes a versioned, autoscaling web service.

Data scientists import the SDK from :mod:`flowhost.services`; platform teams import
Pulumi components from :mod:`flowhost.infra`. ``flowhost.deploy(..., target="prod")``
and ``flowhost.Client(target="prod")`` reach a platform named in the targets config
(:mod:`flowhost.targets`), with its credentials.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from flowhost.errors import ArtifactError, DeployError, FlowhostError, NotFoundError, SpecError

if TYPE_CHECKING:
    from flowhost.client import Client, deploy

try:
    __version__ = version("flowhost")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = [
    "ArtifactError",
    "Client",
    "DeployError",
    "FlowhostError",
    "NotFoundError",
    "SpecError",
    "__version__",
    "deploy",
]


def __getattr__(name: str) -> Any:
    """``flowhost.deploy`` (and ``flowhost.Client``), imported on first use."""
    if name in ("deploy", "Client"):
        return getattr(import_module("flowhost.client"), name)
    raise AttributeError(f"module 'flowhost' has no attribute {name!r}")
