"""A service that runs in a named environment: the latest revision of 'greetings' at deploy."""

from __future__ import annotations

from typing import Any

from flowhost.services import Environment, WebServiceSpec, endpoint


class Greeter(WebServiceSpec):
    name = "greeter"
    environment = Environment(name="greetings")

    @endpoint
    def hello(self, request_dict: dict[str, Any]) -> dict[str, Any]:
        import flowhost_greeting  # pyright: ignore[reportMissingImports]

        return {"greeting": flowhost_greeting.greet(request_dict.get("name", "you"))}
