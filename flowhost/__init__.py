"""flowhost: one Python class becomes a versioned, autoscaling web service.

Data scientists import the SDK from :mod:`flowhost.services`; platform teams import
Pulumi components from :mod:`flowhost.infra`.
"""

from importlib.metadata import PackageNotFoundError, version

from flowhost.errors import ArtifactError, DeployError, FlowhostError, NotFoundError, SpecError

try:
    __version__ = version("flowhost")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = [
    "ArtifactError",
    "DeployError",
    "FlowhostError",
    "NotFoundError",
    "SpecError",
    "__version__",
]
