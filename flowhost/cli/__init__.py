"""The ``flowhost`` command."""

from flowhost.cli.main import app, main

__all__ = ["app", "main"]
