"""The router of ``flowhost up``: production and pinned routes, and 404s that name what exists.

All tests here share one platform with the example service as production v1 (read-only).
"""

from __future__ import annotations

import re

import httpx
import pytest
from openapi_spec_validator import validate

from tests.e2e.harness import Platform


def error_of(response: httpx.Response) -> dict[str, str]:
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["request_id"] == response.headers["x-request-id"]
    return error


def test_production_route_answers_from_v1_with_its_run(
    sentiment_platform: Platform, sentiment_run: str
) -> None:
    response = sentiment_platform.http.post("/sentiment/predict", json={"text": "great, love it"})

    assert response.status_code == 200, response.text
    assert response.headers["x-flowhost-version"] == "v1"
    assert response.headers["x-flowhost-service"] == "sentiment"
    assert response.headers["x-flowhost-run"] == sentiment_run
    body = response.json()
    assert body["label"] == "positive"
    assert 0.5 < body["score"] <= 1
    # The router adds its own Date and Server; the instance's must not be repeated.
    assert len(response.headers.get_list("date")) == 1
    assert len(response.headers.get_list("server")) == 1


def test_pinned_version_route_answers(sentiment_platform: Platform, sentiment_run: str) -> None:
    response = sentiment_platform.http.post(
        "/sentiment@v1/predict", json={"text": "awful, hate it"}
    )

    assert response.status_code == 200, response.text
    assert response.headers["x-flowhost-version"] == "v1"
    assert response.headers["x-flowhost-run"] == sentiment_run
    assert response.json()["label"] == "negative"


def test_alias_route_and_request_id_pass_through(sentiment_platform: Platform) -> None:
    response = sentiment_platform.http.post(
        "/sentiment@production/predict",
        json={"text": "great"},
        headers={"x-request-id": "e2e-route-42"},
    )

    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == "e2e-route-42"
    assert response.headers["x-flowhost-version"] == "v1"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/nosuch/predict", "no service 'nosuch'. Services: sentiment."),
        (
            "/sentiment@staging/predict",
            "service 'sentiment' has no alias 'staging'. Aliases: production; or name a "
            "version like v1.",
        ),
        ("/sentiment@v7/predict", "service 'sentiment' has no running version v7. Versions: v1."),
        ("/sentiment/classify", "sentiment@v1 has no endpoint 'classify'. Endpoints: predict."),
        ("/sentiment", "sentiment@v1 has no endpoint ''. Endpoints: predict."),
    ],
    ids=["service", "alias", "version", "endpoint", "no-endpoint"],
)
def test_unknown_target_is_404_naming_what_exists(
    sentiment_platform: Platform, path: str, message: str
) -> None:
    response = sentiment_platform.http.post(path, json={"text": "great"})

    assert response.status_code == 404, response.text
    error = error_of(response)
    assert error["code"] == "not_found"
    assert error["message"] == message


def test_instance_errors_pass_through_the_router(sentiment_platform: Platform) -> None:
    response = sentiment_platform.http.post("/sentiment/predict", json={"text": ""})

    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert response.headers["x-flowhost-version"] == "v1"


def test_docs_are_served_offline(sentiment_platform: Platform) -> None:
    response = sentiment_platform.http.get("/docs")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "swagger-ui" in html.lower()
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert assets, html
    assert all(asset.startswith("/") for asset in assets), assets  # nothing from a CDN
    assert "cdn" not in html.lower()
    for asset in assets:
        assert sentiment_platform.http.get(asset).status_code == 200, asset
    assert "url: '/openapi.json'" in html


def test_combined_openapi_lists_production_endpoints(sentiment_platform: Platform) -> None:
    response = sentiment_platform.http.get("/openapi.json")

    assert response.status_code == 200
    spec = response.json()
    validate(spec)
    assert set(spec["paths"]) == {
        "/sentiment/predict",
        "/sentiment/predict/async",
        "/requests/{id}",
        "/requests/{id}/result",
    }
    assert "post" in spec["paths"]["/sentiment/predict"]


def test_version_openapi_lists_pinned_endpoints(sentiment_platform: Platform) -> None:
    response = sentiment_platform.http.get("/api/services/sentiment/versions/1/openapi.json")

    assert response.status_code == 200, response.text
    spec = response.json()
    validate(spec)
    assert set(spec["paths"]) == {"/sentiment@v1/predict"}
    assert spec["info"]["version"] == "v1"

    missing = sentiment_platform.http.get("/api/services/sentiment/versions/9/openapi.json")
    assert missing.status_code == 404
    assert "v1" in missing.json()["error"]["message"]
