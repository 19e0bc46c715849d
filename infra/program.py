"""The platform program: read the stack's config once, build the Platform, export its outputs."""

from __future__ import annotations

import pulumi
from pulumi.runtime import config as runtime_config

from flowhost.infra.config import PlatformConfig, PlatformConfigError, load_config
from flowhost.infra.platform_component import Platform, PlatformArgs

__all__ = ["main", "read_config"]


def _raw_config() -> dict[str, object]:
    """Every config key the engine passed in (``PULUMI_CONFIG``, then set values)."""
    raw: dict[str, object] = dict(runtime_config.get_config_env())
    raw.update(runtime_config.CONFIG.get())
    return raw


def read_config() -> PlatformConfig:
    """The validated config; a bad value stops the program with a one-line-per-key message."""
    try:
        return load_config(_raw_config(), pulumi.get_stack())
    except PlatformConfigError as exc:
        raise pulumi.RunError(exc.message) from None


def main() -> Platform:
    config = read_config()
    platform = Platform(f"flowhost-{config.environment}", PlatformArgs(config))
    for key, value in platform.outputs.items():
        pulumi.export(key, value)
    return platform
