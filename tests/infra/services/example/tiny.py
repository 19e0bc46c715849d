"""A tiny CPU service for the ServiceSpec tests (its directory is the code package)."""

from __future__ import annotations

from pydantic import BaseModel

from flowhost.services import Artifacts, Resources, Scaling, WebServiceSpec, endpoint


class EchoIn(BaseModel):
    text: str


class EchoOut(BaseModel):
    text: str


class Tiny(WebServiceSpec):
    """Echoes its input."""

    name = "tiny"
    resources = Resources(cpu=0.5, memory="1536Mi")
    scaling = Scaling(min_instances=0, max_instances=6, target_concurrency=3)

    @endpoint(description="Echo the text.")
    def echo(self, request: EchoIn) -> EchoOut:
        return EchoOut(text=request.text)


class Scored(WebServiceSpec):
    """Scores with a pinned Metaflow run's model."""

    name = "scored"
    artifacts = Artifacts(flow="TrainFlow")
    resources = Resources(cpu=1, memory="2Gi")
    scaling = Scaling(min_instances=1, max_instances=3)

    @endpoint()
    def score(self, request_dict: dict) -> dict:  # type: ignore[type-arg]
        return request_dict


class Big(WebServiceSpec):
    """Needs a GPU."""

    name = "big"
    resources = Resources(cpu=4, memory="16Gi", gpu=1)

    @endpoint()
    def generate(self, request_dict: dict) -> dict:  # type: ignore[type-arg]
        return request_dict
