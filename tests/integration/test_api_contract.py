"""The control plane answers what its OpenAPI says: every error in the one Error model,
405 with Allow naming every method of the path, path patterns enforced, and a deploy that
names the wrong service, or breaks a rule of the definition, a 4xx naming the field."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from openapi_spec_validator import validate
from pydantic import BaseModel

from flowhost.lambdas.api import create_api
from flowhost.lambdas.deployments import Deployments
from flowhost.lambdas.local.compute import LocalCompute
from flowhost.lambdas.local.fleet import LocalFleet
from flowhost.lambdas.local.launcher import Launcher
from flowhost.lambdas.local.routes import RouteTable
from flowhost.lambdas.local.scaler import Scaler
from flowhost.lambdas.objectstore import LocalObjectStore
from flowhost.lambdas.store import StateStore
from flowhost.services import WebServiceSpec, definition_of, endpoint


class In(BaseModel):
    text: str


class Echo(WebServiceSpec):
    """Echoes."""

    @endpoint
    def echo(self, request: In) -> In:
        return request


DIGEST = "sha256-" + "0" * 64


class Api:
    """The API in-process, over httpx's ASGI transport (one short client per call)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
                return await http.request(method, path, **options)

        return asyncio.run(call())

    def get(self, path: str) -> httpx.Response:
        return self.request("GET", path)

    def post(self, path: str, **options: Any) -> httpx.Response:
        return self.request("POST", path, **options)

    def put(self, path: str) -> httpx.Response:
        return self.request("PUT", path)


@pytest.fixture
def api(tmp_path: Path) -> Api:
    store = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    store.migrate()
    objects = LocalObjectStore(tmp_path / "objects")
    compute = LocalCompute(tmp_path, objects, Launcher())  # never started: no instances here
    routes = RouteTable()
    fleet = LocalFleet(compute, routes, Scaler(compute, routes.all_pools))
    store.create_version(
        definition_of(Echo), code_digest="sha256-1", artifact_run=None,
        environment_digest="sha256-e", actor="bob",
    )  # fmt: skip
    store.set_status("echo", 1, "ready")
    return Api(create_api(Deployments(store, objects, fleet)))


def error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    return body["error"]


def deploy_body(**definition: Any) -> dict[str, Any]:
    return {
        "definition": {**definition_of(Echo).model_dump(mode="json"), **definition},
        "package_digest": DIGEST,
    }


def test_a_deploy_naming_another_service_is_a_conflict_naming_the_field(api: Api) -> None:
    response = api.post("/api/services/other/versions", json=deploy_body())

    found = error(response, 409, "service_name_mismatch")
    assert found["message"].startswith("definition.name: the URL deploys service 'other'")
    assert "/api/services/echo/versions" in found["message"]


@pytest.mark.parametrize(
    ("definition", "field"),
    [
        ({"scaling": {"min_instances": 5, "max_instances": 1}}, "body.definition"),
        ({"scaling": {"max_instances": 4, "surprise": 1}}, "body.definition"),
        ({"resources": {"cpu": 1, "gpu": 0, "gpu_type": "g5"}}, "body.definition"),
        ({"name": 5}, "body.definition.name"),
    ],
)
def test_an_invalid_definition_is_422_naming_the_field(
    api: Api, definition: dict[str, Any], field: str
) -> None:
    response = api.post("/api/services/echo/versions", json=deploy_body(**definition))

    found = error(response, 422, "validation_error")
    assert found["details"][0]["field"] == field, found


@pytest.mark.parametrize(
    "path", ["/api/services/echo/versions", "/api/services/echo/aliases/production"]
)
@pytest.mark.parametrize("body", [b"{nope", b"\xff\xfe"])
def test_a_body_that_is_not_json_is_400_malformed_json(api: Api, path: str, body: bytes) -> None:
    response = api.post(path, content=body, headers={"content-type": "application/json"})

    assert "not valid JSON" in error(response, 400, "malformed_json")["message"]


def test_405_names_every_method_of_the_path(api: Api) -> None:
    response = api.request("OPTIONS", "/api/services/echo/versions/1")

    found = error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "DELETE, GET"
    assert "DELETE, GET" in found["message"]
    assert api.put("/api/services").headers["allow"] == "GET"


def test_unknown_paths_answer_the_error_model(api: Api) -> None:
    error(api.get("/api/nowhere"), 404, "not_found")


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/services/Not_A_Name", "path.service"),
        ("/api/services/echo/versions/0", "path.number"),
        ("/api/services/echo/aliases/Prod/rollback", "path.alias"),
    ],
)
def test_path_parameters_are_checked_against_their_patterns(
    api: Api, path: str, field: str
) -> None:
    method = "POST" if path.endswith("rollback") else "GET"
    found = error(api.request(method, path), 422, "validation_error")
    assert found["details"][0]["field"] == field


def test_the_document_lists_every_error_with_the_error_model(api: Api) -> None:
    doc = api.get("/api/openapi.json").json()
    validate(doc)
    schemas = doc["components"]["schemas"]
    assert schemas["Error"]["required"] == ["error"]
    assert "HTTPValidationError" not in schemas
    deploy = doc["paths"]["/api/services/{service}/versions"]["post"]
    assert deploy["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/DeployRequest"
    }
    assert {"409", "422"} <= set(deploy["responses"])
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for status, response in op["responses"].items():
                if status.startswith(("4", "5")):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, path)
            for param in op.get("parameters", []):
                if param["in"] == "path" and param["name"] == "service":
                    assert param["schema"]["pattern"].startswith("^[a-z]")
                if param["in"] == "path" and param["name"] == "number":
                    assert param["schema"]["minimum"] == 1
