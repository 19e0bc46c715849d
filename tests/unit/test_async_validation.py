"""Checks on submitted async requests, made from the definition alone (no service class)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, Field

from flowhost.lambdas.async_requests.settings import AsyncSettings
from flowhost.lambdas.async_requests.validation import PayloadValidator, parse_options
from flowhost.lambdas.callbacks import CallbackPolicy
from flowhost.services import WebServiceSpec, endpoint
from flowhost.services.runtime.responses import HttpError
from flowhost.services.spec import definition_of


class Item(BaseModel):
    name: str = Field(min_length=1)
    count: int = Field(ge=0)


class Order(BaseModel):
    items: list[Item]
    note: str | None = None


class Shop(WebServiceSpec):
    name = "shop"

    @endpoint
    def order(self, request: Order) -> dict[str, Any]:
        return {}

    @endpoint
    def anything(self, request_dict: dict[str, Any]) -> dict[str, Any]:
        return request_dict

    @endpoint(methods=["GET"])
    def ping(self) -> dict[str, str]:
        return {}


DEFINITION = definition_of(Shop)
SETTINGS = AsyncSettings()


def validate(endpoint_name: str, body: bytes) -> bytes:
    return PayloadValidator().validate(DEFINITION.endpoint(endpoint_name), body)


def test_a_valid_body_is_kept_as_sent() -> None:
    body = json.dumps({"items": [{"name": "pen", "count": 2}]}).encode()
    assert validate("order", body) == body


def test_nested_field_errors_name_the_path() -> None:
    body = json.dumps({"items": [{"name": "", "count": -1}]}).encode()
    with pytest.raises(HttpError) as caught:
        validate("order", body)
    err = caught.value
    assert (err.status, err.code) == (422, "validation_error")
    assert err.details is not None
    fields = {d["field"] for d in err.details}
    assert fields == {"items.0.name", "items.0.count"}
    assert "items.0.count" in err.message
    assert "/docs" in err.message


def test_missing_required_field() -> None:
    with pytest.raises(HttpError) as caught:
        validate("order", b"{}")
    assert caught.value.details == [
        {"field": "(body)", "message": "'items' is a required property", "type": "required"}
    ]


@pytest.mark.parametrize(("body", "hint"), [(b"", "the body is empty"), (b"{nope", "Expecting")])
def test_malformed_json(body: bytes, hint: str) -> None:
    with pytest.raises(HttpError) as caught:
        validate("order", body)
    assert (caught.value.status, caught.value.code) == (400, "malformed_json")
    assert hint in caught.value.message


def test_schema_is_stricter_than_lax_pydantic() -> None:
    # "2" would pass pydantic's lax mode; the published schema says integer.
    with pytest.raises(HttpError, match=r"items\.0\.count"):
        validate("order", b'{"items": [{"name": "pen", "count": "2"}]}')


def test_dict_endpoints_take_any_object_and_no_request_endpoints_store_null() -> None:
    assert validate("anything", b'{"x": [1, 2]}') == b'{"x": [1, 2]}'
    assert validate("ping", b"") == b"null"


def headers(**values: str) -> list[tuple[bytes, bytes]]:
    return [(k.replace("_", "-").encode(), v.encode()) for k, v in values.items()]


def test_options_default_and_parse() -> None:
    default = parse_options([], SETTINGS)
    assert (default.idempotency_key, default.callback_url) == (None, None)
    assert default.timeout == SETTINGS.default_timeout
    given = parse_options(
        headers(
            idempotency_key="k-1",
            flowhost_callback_url="https://example.com/hook",
            flowhost_timeout="43200",
        ),
        SETTINGS,
    )
    assert (given.idempotency_key, given.callback_url, given.timeout) == (
        "k-1",
        "https://example.com/hook",
        43200.0,
    )


@pytest.mark.parametrize(
    ("name", "value", "code"),
    [
        ("flowhost_timeout", "43201", "invalid_timeout"),  # over 12 hours
        ("flowhost_timeout", "0", "invalid_timeout"),
        ("flowhost_timeout", "soon", "invalid_timeout"),
        ("flowhost_timeout", "nan", "invalid_timeout"),
        ("flowhost_callback_url", "ftp://example.com/x", "invalid_callback_url"),
        ("flowhost_callback_url", "/relative", "invalid_callback_url"),
        ("idempotency_key", "x" * 256, "invalid_idempotency_key"),
    ],
)
def test_bad_options_name_the_header(name: str, value: str, code: str) -> None:
    with pytest.raises(HttpError) as caught:
        parse_options(headers(**{name: value}), SETTINGS)
    assert (caught.value.status, caught.value.code) == (400, code)
    header = {"flowhost_timeout": "Flowhost-Timeout", "idempotency_key": "Idempotency-Key"}
    assert header.get(name, "Flowhost-Callback-Url") in caught.value.message


PUBLIC_ONLY = AsyncSettings(callback=CallbackPolicy(allow_private=False))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.0.3.7/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:9000/hook",
        "http://[fd00::5]/hook",
        "https://192.168.1.20/hook",
    ],
)
def test_a_non_public_callback_address_is_refused_when_only_public_ones_are_allowed(
    url: str,
) -> None:
    with pytest.raises(HttpError) as caught:
        parse_options(headers(flowhost_callback_url=url), PUBLIC_ONLY)
    assert (caught.value.status, caught.value.code) == (400, "invalid_callback_url")
    assert "not a public address" in caught.value.message
    assert parse_options(headers(flowhost_callback_url=url), SETTINGS).callback_url == url


@pytest.mark.parametrize("url", ["https://example.com/hook", "http://93.184.215.14/hook"])
def test_public_callback_hosts_pass(url: str) -> None:
    assert parse_options(headers(flowhost_callback_url=url), PUBLIC_ONLY).callback_url == url
