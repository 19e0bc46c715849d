"""The serving runtime: one service class becomes one ASGI app (one instance)."""

from flowhost.services.runtime.app import ServingApp, create_app
from flowhost.services.runtime.server import serve
from flowhost.services.runtime.settings import RuntimeSettings

__all__ = ["RuntimeSettings", "ServingApp", "create_app", "serve"]
