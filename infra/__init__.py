"""Pulumi components for the flowhost platform (``Platform``) and its services (``ServiceSpec``).

Importing this package creates nothing: the platform program is ``infra/__main__.py``
(run by ``pulumi up`` through ``Pulumi.yaml``), which calls :func:`main`.
"""

from flowhost.infra.config import PlatformConfig, PlatformConfigError, load_config
from flowhost.infra.platform_component import EKS_OUTPUTS, OUTPUTS, Platform, PlatformArgs
from flowhost.infra.platform_ref import PlatformRef
from flowhost.infra.program import main
from flowhost.infra.service.deploy import Deploy
from flowhost.infra.service.spec import ServiceSpec
from flowhost.infra.service.validation import ServiceOptions

__all__ = [
    "EKS_OUTPUTS",
    "OUTPUTS",
    "Deploy",
    "Platform",
    "PlatformArgs",
    "PlatformConfig",
    "PlatformConfigError",
    "PlatformRef",
    "ServiceOptions",
    "ServiceSpec",
    "load_config",
    "main",
]
