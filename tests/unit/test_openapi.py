"""OpenAPI 3.1 documents built from ServiceDefinitions alone."""

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from openapi_spec_validator import validate
from pydantic import BaseModel

from flowhost.lambdas.async_requests.settings import AsyncSettings
from flowhost.lambdas.async_requests.validation import parse_options
from flowhost.services import WebServiceSpec, definition_of, endpoint
from flowhost.services.openapi import ERROR_RESPONSES, build_openapi
from flowhost.services.runtime.responses import HttpError

PREFIX = "#/components/schemas/"
ASYNC_HEADER_NAMES = ("Idempotency-Key", "Flowhost-Callback-Url", "Flowhost-Timeout")


class Deeper(BaseModel):
    z: int


class Inner(BaseModel):
    deeper: Deeper
    note: str = ""


class PredictIn(BaseModel):
    text: str
    inner: Inner
    limit: int = 10


class PredictOut(BaseModel):
    label: str
    inner: Inner | None = None


class Query(BaseModel):
    q: str
    page: int = 1
    inner: Inner | None = None


class Sentiment(WebServiceSpec):
    """Scores the sentiment of short texts."""

    name = "sentiment"

    @endpoint(description="Score one text.\n\nLonger text.", timeout="30s")
    def predict(self, request: PredictIn) -> PredictOut: ...

    @endpoint(name="predict-batch")
    def predict_batch(self, request: PredictIn) -> PredictOut: ...

    @endpoint(methods=["GET"])
    def search(self, request: Query) -> PredictOut: ...

    @endpoint(methods=["GET", "POST"])
    def show(self, request_dict: dict) -> dict: ...

    @endpoint
    def ping(self) -> dict[str, int]: ...


def doc_for(*services: tuple[str, type[WebServiceSpec]]) -> dict[str, Any]:
    doc = build_openapi(
        [(prefix, definition_of(cls)) for prefix, cls in services], title="t", version="1.2.3"
    )
    json.dumps(doc)  # JSON-serializable as it is
    return doc


def walk(node: Any) -> Iterator[tuple[Any, Any]]:
    """Every (key, value) pair in a JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():  # pyright: ignore[reportUnknownVariableType]
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:  # pyright: ignore[reportUnknownVariableType]
            yield from walk(value)


def resolve(doc: dict[str, Any], ref: str) -> dict[str, Any]:
    assert ref.startswith(PREFIX), ref
    return doc["components"]["schemas"][ref.removeprefix(PREFIX)]


def assert_well_formed(doc: dict[str, Any]) -> None:
    """Valid OpenAPI 3.1 (openapi-spec-validator); refs resolve, no stray $defs, ids unique."""
    validate(doc)  # pyright: ignore[reportArgumentType]
    schemas = doc["components"]["schemas"]
    for key, value in walk(doc):
        assert key != "$defs", "a $defs block was left in place"
        if key == "$ref":
            assert value.startswith(PREFIX), value
            assert value.removeprefix(PREFIX) in schemas, f"dangling {value}"
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    for path, item in doc["paths"].items():
        assert path.startswith("/")
        assert set(item) <= {"get", "post", "put", "patch", "delete"}
        for op in item.values():
            assert {"200", "202"} & set(op["responses"])
            for param in op.get("parameters", []):
                assert {"name", "in", "schema"} <= set(param) <= {
                    "name", "in", "schema", "required", "description", "example"
                }  # fmt: skip


def test_document_shape() -> None:
    doc = doc_for(("", Sentiment))
    assert_well_formed(doc)
    assert doc["openapi"] == "3.1.0"
    assert doc["info"] == {"title": "t", "version": "1.2.3", "description": ""}
    assert doc["tags"] == [
        {"name": "sentiment", "description": "Scores the sentiment of short texts."}
    ]


def test_one_path_per_endpoint_and_one_operation_per_method() -> None:
    paths = doc_for(("", Sentiment))["paths"]
    assert set(paths) == {"/predict", "/predict-batch", "/search", "/show", "/ping"}
    assert set(paths["/predict"]) == {"post"}
    assert set(paths["/search"]) == {"get"}
    assert set(paths["/show"]) == {"get", "post"}
    predict = paths["/predict"]["post"]
    assert predict["operationId"] == "sentiment_predict_post"
    assert paths["/predict-batch"]["post"]["operationId"] == "sentiment_predict_batch_post"
    assert predict["summary"] == "Score one text."  # the first line
    assert predict["description"] == "Score one text.\n\nLonger text."
    assert paths["/ping"]["post"]["summary"] == "ping"
    assert predict["tags"] == ["sentiment"]
    assert predict["x-flowhost-timeout-seconds"] == 30.0


def test_platform_prefix() -> None:
    paths = doc_for(("/sentiment", Sentiment))["paths"]
    assert "/sentiment/predict" in paths
    assert "/predict" not in paths


def test_nested_models_are_hoisted_into_components() -> None:
    doc = doc_for(("", Sentiment))
    assert_well_formed(doc)
    schemas = doc["components"]["schemas"]
    body = doc["paths"]["/predict"]["post"]["requestBody"]
    assert body["required"] is True
    ref = body["content"]["application/json"]["schema"]
    assert ref == {"$ref": PREFIX + "PredictIn"}
    predict_in = resolve(doc, ref["$ref"])
    assert predict_in["required"] == ["text", "inner"]
    assert predict_in["properties"]["inner"] == {"$ref": PREFIX + "Inner"}
    assert resolve(doc, PREFIX + "Inner")["properties"]["deeper"] == {"$ref": PREFIX + "Deeper"}
    assert schemas["Deeper"]["properties"]["z"]["type"] == "integer"
    response = doc["paths"]["/predict"]["post"]["responses"]["200"]
    assert response["content"]["application/json"]["schema"] == {"$ref": PREFIX + "PredictOut"}


def test_a_model_used_twice_is_one_component() -> None:
    schemas = doc_for(("", Sentiment))["components"]["schemas"]
    assert sorted(schemas) == ["Deeper", "Error", "Inner", "PredictIn", "PredictOut", "Query"]


def test_get_endpoints_take_query_parameters() -> None:
    doc = doc_for(("", Sentiment))
    search = doc["paths"]["/search"]["get"]
    assert "requestBody" not in search
    params = {p["name"]: p for p in search["parameters"]}
    assert set(params) == {"q", "page", "inner"}
    assert all(p["in"] == "query" for p in params.values())
    assert params["q"]["schema"]["type"] == "string"
    assert params["page"]["schema"]["default"] == 1
    inner_refs = [v for k, v in walk(params["inner"]["schema"]) if k == "$ref"]
    assert inner_refs == [PREFIX + "Inner"]  # hoisted like a body's refs, not '#/$defs/Inner'


def test_dict_and_empty_requests() -> None:
    doc = doc_for(("", Sentiment))
    show = doc["paths"]["/show"]
    assert show["post"]["requestBody"]["content"]["application/json"]["schema"]["type"] == "object"
    assert show["get"]["parameters"] == []  # a free-form dict names no fields
    ping = doc["paths"]["/ping"]["post"]
    assert "requestBody" not in ping
    assert "parameters" not in ping
    out = ping["responses"]["200"]["content"]["application/json"]["schema"]
    assert out == {"additionalProperties": {"type": "integer"}, "type": "object"}


def test_error_responses_reference_the_error_schema() -> None:
    doc = doc_for(("", Sentiment))
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    assert error["properties"]["error"]["required"] == ["code", "message"]
    assert {"400", "413", "422", "500", "503", "504"} <= set(ERROR_RESPONSES)
    for item in doc["paths"].values():
        for op in item.values():
            for status, text in ERROR_RESPONSES.items():
                response = op["responses"][status]
                assert response["description"] == text
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": PREFIX + "Error"}


def _service_a() -> type[WebServiceSpec]:
    class Inner(BaseModel):
        a: int

    class Item(BaseModel):
        inner: Inner

    class ServiceA(WebServiceSpec):
        @endpoint
        def put(self, request: Item) -> Item: ...

    return ServiceA


def _service_b() -> type[WebServiceSpec]:
    class Inner(BaseModel):
        b: str

    class Item(BaseModel):
        inner: Inner
        extra: bool = False

    class ServiceB(WebServiceSpec):
        @endpoint
        def put(self, request: Item) -> Item: ...

    return ServiceB


def test_same_model_names_in_two_services_get_distinct_components() -> None:
    doc = doc_for(("/a", _service_a()), ("/b", _service_b()))
    assert_well_formed(doc)
    assert {"Item", "Item2", "Inner", "Inner2"} <= set(doc["components"]["schemas"])

    def inner_fields(path: str) -> set[str]:
        body = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        item = resolve(doc, body["schema"]["$ref"])
        return set(resolve(doc, item["properties"]["inner"]["$ref"])["properties"])

    assert inner_fields("/a/put") == {"a"}
    assert inner_fields("/b/put") == {"b"}
    assert [t["name"] for t in doc["tags"]] == ["service-a", "service-b"]


def test_a_model_named_error_does_not_replace_the_error_schema() -> None:
    class Error(BaseModel):
        reason: str

    class Clash(WebServiceSpec):
        @endpoint
        def fail(self, request: Error) -> dict: ...

    doc = doc_for(("", Clash))
    assert_well_formed(doc)
    body = doc["paths"]["/fail"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": PREFIX + "Error2"}
    assert resolve(doc, PREFIX + "Error")["required"] == ["error"]
    assert resolve(doc, PREFIX + "Error2")["required"] == ["reason"]


def test_the_platform_documents_async_variants_and_request_lookups() -> None:
    doc = build_openapi(
        [("/sentiment", definition_of(Sentiment))], title="t", version="1", asynchronous=True
    )
    assert_well_formed(doc)
    submit = doc["paths"]["/sentiment/predict/async"]["post"]
    assert submit["requestBody"] == doc["paths"]["/sentiment/predict"]["post"]["requestBody"]
    assert submit["responses"]["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AsyncRequest"
    }
    assert [p["name"] for p in submit["parameters"]] == [
        "Idempotency-Key", "Flowhost-Callback-Url", "Flowhost-Timeout"
    ]  # fmt: skip
    assert set(doc["paths"]["/requests/{id}/result"]["get"]["responses"]) == {
        "200", "404", "405", "409", "410", "503"
    }  # fmt: skip
    assert set(submit["responses"]) == {"202", "400", "404", "405", "413", "422", "503"}
    plain = build_openapi([("/sentiment", definition_of(Sentiment))], title="t", version="1")
    assert not any(path.endswith("/async") or "requests" in path for path in plain["paths"])


def test_async_headers_state_what_the_async_api_enforces() -> None:
    doc = build_openapi(
        [("/sentiment", definition_of(Sentiment))], title="t", version="1", asynchronous=True
    )
    params = {p["name"]: p for p in doc["paths"]["/sentiment/predict/async"]["post"]["parameters"]}
    key, url, timeout = (params[n]["schema"] for n in ASYNC_HEADER_NAMES)
    assert (key["minLength"], key["maxLength"]) == (1, 255)
    assert (url["minLength"], url["maxLength"]) == (1, 2048)
    assert (timeout["type"], timeout["minimum"], timeout["maximum"]) == ("number", 1, 43200)
    settings = AsyncSettings()
    for name, param in params.items():  # every documented example is accepted
        parse_options([(name.lower().encode(), str(param["example"]).encode())], settings)
    accepted = ["https://example.com/h?x=1", "http://127.0.0.1:8000/hook", "http://[::1]/h"]
    refused = [
        "", "0", "ftp://example.com", "http://user@example.com/", "http:///x", "http://a b",
        "http://[6]/h", "http://[1:2:3:4:5:6:7:8:9]/", "http://example.com:65536/",
    ]  # fmt: skip
    pattern = re.compile(url["pattern"])
    for value in accepted:
        assert pattern.search(value), value
        parse_options([(b"flowhost-callback-url", value.encode())], settings)
    for value in refused:
        assert not pattern.search(value), value
        with pytest.raises(HttpError) as caught:
            parse_options([(b"flowhost-callback-url", value.encode())], settings)
        assert caught.value.code == "invalid_callback_url"
    key_pattern = re.compile(key["pattern"])
    for value in ["k", "a b", "7d7c2f8e-0b7a"]:
        assert key_pattern.search(value)
        parse_options([(b"idempotency-key", value.encode())], settings)
    for value in [" a", "a\x7f", "é"]:
        assert not key_pattern.search(value)
    for raw in ["1", "600", "43200", "1.5", "1e3"]:
        assert parse_options([(b"flowhost-timeout", raw.encode())], settings).timeout == float(raw)
    for raw in ["0.5", "43201", "1_0", "inf", "nan", "ten"]:
        with pytest.raises(HttpError, match="Flowhost-Timeout"):
            parse_options([(b"flowhost-timeout", raw.encode())], settings)


def test_get_query_parameters_say_which_are_required() -> None:
    doc = doc_for(("", Sentiment))
    params = {p["name"]: p["required"] for p in doc["paths"]["/search"]["get"]["parameters"]}
    assert params == {"q": True, "page": False, "inner": False}


def test_routed_operations_add_the_router_errors_and_405_names_allow() -> None:
    routed = doc_for(("/sentiment", Sentiment))["paths"]["/sentiment/predict"]["post"]
    bare = doc_for(("", Sentiment))["paths"]["/predict"]["post"]
    assert {"404", "502"} <= set(routed["responses"])
    assert not {"404", "502"} & set(bare["responses"])
    assert "Allow" in routed["responses"]["405"]["headers"]
