"""What an instance tells its operators: Prometheus metrics, offline docs, OpenAPI, access log."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.support import SERVICES, ServeFactory, Server, poll


def samples(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` from the instance's /metrics."""
    response = server.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def by_label(
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, keys: Iterable[str]
) -> dict[tuple[str, ...], float]:
    """The samples called ``name``, keyed by the values of the ``keys`` labels."""
    keys = tuple(keys)
    return {
        tuple(dict(labels)[k] for k in keys): value
        for (sample, labels), value in values.items()
        if sample == name
    }


def test_metrics_count_requests_errors_and_latency(serve: ServeFactory) -> None:
    server = serve(str(SERVICES / "toolbox.py"))
    ok, failing = 3, 2
    for i in range(ok):
        assert server.client.post("/echo", json={"text": f"t{i}"}).status_code == 200
    assert server.client.post("/echo", json={"count": 1}).status_code == 422
    assert server.client.post("/explode", json={}).status_code == 500
    assert server.client.get("/lookup", params={"name": "n"}).status_code == 200

    def settled() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        # metrics are recorded just after the response is sent: wait until all are in
        values = samples(server)
        counts = by_label(values, "flowhost_request_duration_seconds_count", ["endpoint"])
        return values if sum(counts.values()) == ok + failing + 1 else None

    values = poll("all requests to be counted", settled)

    assert by_label(values, "flowhost_requests_total", ["endpoint", "status"]) == {
        ("echo", "200"): ok,
        ("echo", "422"): 1,
        ("explode", "500"): 1,
        ("lookup", "200"): 1,
    }
    assert by_label(values, "flowhost_request_errors_total", ["endpoint", "code"]) == {
        ("echo", "validation_error"): 1,
        ("explode", "endpoint_error"): 1,
    }
    latency = by_label(values, "flowhost_request_duration_seconds_count", ["endpoint"])
    assert {k: v for k, v in latency.items() if v} == {
        ("echo",): ok + 1,
        ("explode",): 1,
        ("lookup",): 1,
    }
    echo_inf = by_label(values, "flowhost_request_duration_seconds_bucket", ["endpoint", "le"])
    assert echo_inf[("echo", "+Inf")] == ok + 1
    assert by_label(values, "flowhost_requests_in_flight", ["endpoint"])[("echo",)] == 0
    assert values[("flowhost_instance_ready", ())] == 1
    assert values[("flowhost_service_info", (("service", "toolbox"),))] == 1


def test_docs_are_served_offline(toolbox: Server) -> None:
    response = toolbox.client.get("/docs")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "SwaggerUIBundle" in html
    assert "url: '/openapi.json'" in html
    assets = re.findall(r"<(?:script|link)\b[^>]*?\b(?:src|href)=\"([^\"]+)\"", html)
    assert len(assets) >= 2, html
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html, re.IGNORECASE), html
    for asset in assets:
        assert asset.startswith("/"), asset
        fetched = toolbox.client.get(asset)
        assert fetched.status_code == 200, asset
        assert len(fetched.content) > 0, asset
    scripts = re.findall(r"<script\b[^>]*?\bsrc=\"([^\"]+)\"", html)
    assert any("swagger-ui-bundle" in s for s in scripts), scripts


def test_openapi_describes_endpoints_and_request_schemas(toolbox: Server) -> None:
    response = toolbox.client.get("/openapi.json")

    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.1")
    assert doc["info"]["title"] == "toolbox"
    assert set(doc["paths"]) == {
        "/echo", "/shout", "/lookup", "/explode", "/stall", "/stall_async", "/wrong_shape",
    }  # fmt: skip
    schemas = doc["components"]["schemas"]
    echo = doc["paths"]["/echo"]["post"]
    assert set(doc["paths"]["/echo"]) == {"post"}
    ref = echo["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    echo_in = resolve(doc, ref)
    assert echo_in["required"] == ["text"]
    assert set(echo_in["properties"]) == {"text", "count"}
    assert echo_in["properties"]["count"]["minimum"] == 1
    assert echo["description"] == "Repeat the text count times."
    assert {"200", "400", "413", "422", "500", "503", "504"} <= set(echo["responses"])
    assert echo["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    assert "Error" in schemas
    lookup = doc["paths"]["/lookup"]["get"]
    assert "requestBody" not in lookup
    params = {p["name"]: p for p in lookup["parameters"]}
    assert set(params) == {"name", "times"}
    assert {p["in"] for p in params.values()} == {"query"}
    assert doc["paths"]["/stall"]["post"]["x-flowhost-timeout-seconds"] == 0.2


def resolve(doc: dict[str, Any], ref: str) -> dict[str, Any]:
    assert ref.startswith("#/")
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_each_request_writes_one_access_log_line(toolbox: Server) -> None:
    calls = [
        ("access-ok", "/echo", {"text": "a"}, 200, None),
        ("access-bad", "/echo", {"text": "a", "count": 99}, 422, "validation_error"),
        ("access-boom", "/explode", {}, 500, "endpoint_error"),
    ]
    for request_id, path, body, status, _ in calls:
        response = toolbox.client.post(path, json=body, headers={"X-Request-Id": request_id})
        assert response.status_code == status

    def logged() -> list[list[dict[str, Any]]] | None:
        lines = [toolbox.access_records(request_id) for request_id, *_ in calls]
        return lines if all(lines) else None

    for (_, path, _, status, code), lines in zip(
        calls, poll("access log lines", logged), strict=True
    ):
        [line] = lines
        assert line["level"] == "info"
        assert line["message"] == "request"
        assert line["status"] == status
        assert line["endpoint"] == path.removeprefix("/")
        assert line["path"] == path
        assert line["method"] == "POST"
        assert line["error_code"] == code
        assert isinstance(line["duration_ms"], float | int)
        assert line["duration_ms"] >= 0
        assert line["response_bytes"] > 0
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", line["ts"])
