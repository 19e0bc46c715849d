"""A service whose package is not in the runtime: it runs only in its built environment."""

from __future__ import annotations

from typing import Any

from flowhost.services import Environment, WebServiceSpec, endpoint


class Greeting(WebServiceSpec):
    """Greets through flowhost-greeting, a package from the platform's private index."""

    name = "greeting"
    environment = Environment(requirements="requirements.txt")

    def initialize(self) -> None:
        import flowhost_greeting  # pyright: ignore[reportMissingImports]  # only in its environment

        self.greet = flowhost_greeting.greet

    @endpoint
    def hello(self, request_dict: dict[str, Any]) -> dict[str, Any]:
        import flowhost_greeting  # pyright: ignore[reportMissingImports]

        return {
            "greeting": self.greet(request_dict.get("name", "you")),
            "from": flowhost_greeting.__file__ or "",
        }
