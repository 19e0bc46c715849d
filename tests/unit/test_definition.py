"""ServiceDefinition: frozen, JSON-serializable, complete enough that no one re-reads the class."""

from typing import Any

import pydantic
import pytest
from pydantic import BaseModel, Field

from flowhost.errors import FlowhostError, NotFoundError
from flowhost.services import (
    Artifacts,
    Resources,
    Scaling,
    ServiceDefinition,
    WebServiceSpec,
    definition_of,
    endpoint,
)
from flowhost.services.config import ArtifactBinding


class Inner(BaseModel):
    weight: float


class PredictIn(BaseModel):
    """One text to score."""

    text: str = Field(description="the text")
    inner: Inner
    threshold: float = 0.5


class PredictOut(BaseModel):
    label: str
    score: float


class Sentiment(WebServiceSpec):
    """Scores the sentiment of short texts.

    Second paragraph.
    """

    name = "sentiment"
    artifacts = Artifacts(run="SentimentFlow/12")
    resources = Resources(cpu=2, memory="1Gi", gpu=1, gpu_type="g5")
    scaling = Scaling(min_instances=1, max_instances=3, idle_timeout="5m", target_concurrency=8)

    @endpoint(description="Score one text.", timeout="30s")
    def predict(self, request: PredictIn) -> PredictOut:
        """Ignored: description= wins over the docstring."""
        return PredictOut(label="positive", score=1.0)

    @endpoint(name="show-data", methods=["GET", "POST"])
    async def show_data(self, request_dict: dict) -> dict:
        """Shows the data.

        In two paragraphs.
        """
        return {}

    @endpoint
    def ping(self) -> dict[str, str]:
        return {}


def test_definition_fields() -> None:
    d = definition_of(Sentiment)
    assert (d.schema_version, d.name, d.class_name) == (1, "sentiment", "Sentiment")
    assert d.description == "Scores the sentiment of short texts.\n\nSecond paragraph."
    assert d.entrypoint == "test_definition.py:Sentiment"
    assert d.resources == Resources(cpu=2, memory=1024, gpu=1, gpu_type="g5")
    assert d.uses_gpu
    assert d.scaling.idle_timeout == 300.0
    assert d.scaling.target_concurrency == 8
    assert d.artifacts == ArtifactBinding(run="SentimentFlow/12")
    assert d.environment is None
    assert [ep.name for ep in d.endpoints] == ["predict", "show-data", "ping"]
    assert [ep.method for ep in d.endpoints] == ["predict", "show_data", "ping"]


def test_defaults_when_nothing_is_declared() -> None:
    class Bare(WebServiceSpec):
        @endpoint
        def ping(self) -> dict: ...

    d = definition_of(Bare)
    assert d.resources == Resources()
    assert d.scaling == Scaling()
    assert (d.artifacts, d.environment, d.uses_gpu) == (None, None, False)


def test_endpoint_options() -> None:
    d = definition_of(Sentiment)
    predict, show, ping = d.endpoints
    assert (predict.http_methods, predict.timeout) == (("POST",), 30.0)
    assert (show.http_methods, show.timeout) == (("GET", "POST"), 60.0)
    assert (predict.is_coroutine, show.is_coroutine, ping.is_coroutine) == (False, True, False)


def test_descriptions() -> None:
    d = definition_of(Sentiment)
    assert d.endpoint("predict").description == "Score one text."
    assert d.endpoint("show-data").description == "Shows the data.\n\nIn two paragraphs."
    assert d.endpoint("ping").description == ""


def test_service_docstring_is_not_inherited() -> None:
    assert WebServiceSpec.__doc__  # the base class has one; it must not leak into services

    class Undocumented(WebServiceSpec):
        @endpoint
        def ping(self) -> dict: ...

    class Child(Sentiment):
        pass

    assert definition_of(Undocumented).description == ""
    assert definition_of(Child).description == ""


def test_model_payloads_carry_json_schemas() -> None:
    predict = definition_of(Sentiment).endpoint("predict")
    request, response = predict.request, predict.response
    assert (request.kind, request.type_name) == ("model", "PredictIn")
    assert (response.kind, response.type_name) == ("model", "PredictOut")
    schema = request.json_schema
    assert set(schema["properties"]) == {"text", "inner", "threshold"}
    assert schema["required"] == ["text", "inner"]
    assert schema["description"] == "One text to score."
    assert schema["properties"]["text"]["description"] == "the text"
    assert schema["properties"]["inner"] == {"$ref": "#/$defs/Inner"}
    assert schema["$defs"]["Inner"]["required"] == ["weight"]
    assert response.json_schema["required"] == ["label", "score"]
    assert response.json_schema["properties"]["score"]["type"] == "number"


def test_dict_and_empty_payloads() -> None:
    d = definition_of(Sentiment)
    show, ping = d.endpoint("show-data"), d.endpoint("ping")
    assert show.request.kind == "dict"
    assert show.request.type_name is None
    assert show.request.json_schema["type"] == "object"
    assert show.response.kind == "dict"
    assert ping.request.kind == "none"
    assert ping.request.json_schema == {}
    assert ping.response.kind == "dict"
    assert ping.response.json_schema["additionalProperties"] == {"type": "string"}


def test_unknown_endpoint_lists_the_known_ones() -> None:
    d = definition_of(Sentiment)
    with pytest.raises(NotFoundError, match="no endpoint 'nope'") as info:
        d.endpoint("nope")
    assert info.value.message == (
        "service 'sentiment': no endpoint 'nope'. Endpoints: predict, show-data, ping."
    )
    assert isinstance(info.value, FlowhostError)
    assert (info.value.status, info.value.code) == (404, "not_found")


def test_definition_is_frozen() -> None:
    d = definition_of(Sentiment)
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        d.name = "other"  # pyright: ignore[reportAttributeAccessIssue]
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        d.endpoints[0].timeout = 1.0  # pyright: ignore[reportAttributeAccessIssue]
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        d.scaling.max_instances = 100  # pyright: ignore[reportAttributeAccessIssue]
    with pytest.raises(TypeError):
        d.endpoints[0] = d.endpoints[1]  # pyright: ignore[reportIndexIssue]


def test_definition_json_round_trip() -> None:
    d = definition_of(Sentiment)
    text = d.model_dump_json()
    back = ServiceDefinition.model_validate_json(text)
    assert back == d
    assert back.model_dump_json() == text
    assert type(back.resources) is Resources
    assert type(back.artifacts) is ArtifactBinding
    assert ServiceDefinition.model_validate(d.model_dump(mode="json")) == d


def test_definition_rejects_unknown_fields() -> None:
    data: dict[str, Any] = definition_of(Sentiment).model_dump(mode="json")
    data["surprise"] = True
    with pytest.raises(pydantic.ValidationError, match="surprise"):
        ServiceDefinition.model_validate(data)


def test_definition_is_the_same_object_every_time() -> None:
    assert definition_of(Sentiment) is definition_of(Sentiment)
