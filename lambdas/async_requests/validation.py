"""Checks on a submitted request, made without the service's class: the body against the
endpoint's published JSON Schema, the options against their limits.

The schema is the contract shown in Swagger. The instance validates JSON bodies in
pydantic's strict mode, which agrees with JSON Schema (``"3"`` is not an integer, ``false``
is not a number, ``1.0`` is the integer 1), so anything accepted here the instance accepts
too when the job runs, and validates again with the model.

The option headers are checked against the constraints the OpenAPI publishes for them
(``flowhost.services.openapi.ASYNC_HEADERS``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, ValidationError

from flowhost.lambdas.async_requests.settings import AsyncSettings
from flowhost.lambdas.callbacks import non_public_address
from flowhost.services.definition import EndpointDefinition
from flowhost.services.openapi import (
    CALLBACK_URL_PATTERN,
    IDEMPOTENCY_KEY_PATTERN,
    MAX_CALLBACK_URL,
    MAX_IDEMPOTENCY_KEY,
)
from flowhost.services.runtime.responses import HttpError, malformed_json, validation_failed

__all__ = ["PayloadValidator", "SubmitOptions", "parse_options"]

IDEMPOTENCY_HEADER = b"idempotency-key"
CALLBACK_HEADER = b"flowhost-callback-url"
TIMEOUT_HEADER = b"flowhost-timeout"
MAX_KEY = MAX_IDEMPOTENCY_KEY
MAX_URL = MAX_CALLBACK_URL


@dataclass(frozen=True)
class SubmitOptions:
    idempotency_key: str | None
    callback_url: str | None
    timeout: float
    traceparent: str | None = None  # kept for the job's span when well-formed, else dropped


# JSON integers only (``1`` but not ``1.0``), as pydantic's strict mode and JSON parsers see them.
_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
_URL = re.compile(CALLBACK_URL_PATTERN)
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")  # a JSON number
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


def _splits(url: str) -> bool:
    try:
        urlsplit(url)
    except ValueError:  # e.g. a bracketed host that is no IPv6 address
        return False
    return True


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1").strip()
    return None


def parse_options(headers: list[tuple[bytes, bytes]], settings: AsyncSettings) -> SubmitOptions:
    key = _header(headers, IDEMPOTENCY_HEADER)
    if key is not None and not (len(key) <= MAX_KEY and _KEY.fullmatch(key)):
        raise HttpError(
            400,
            "invalid_idempotency_key",
            f"Idempotency-Key: must be 1 to {MAX_KEY} visible ASCII characters, spaces only "
            f"inside (got {key[:100]!r}, {len(key)} characters). Use a UUID per logical request.",
        )
    url = _header(headers, CALLBACK_HEADER)
    if url is not None:
        if not _URL.fullmatch(url) or len(url) > MAX_URL or not _splits(url):
            raise HttpError(
                400,
                "invalid_callback_url",
                f"Flowhost-Callback-Url: must be an absolute http(s) URL of at most {MAX_URL} "
                f"characters (got {url[:100]!r}). Example: https://example.com/hooks/flowhost.",
            )
        host = urlsplit(url).hostname or ""
        if not settings.callback.allow_private and non_public_address(host) is not None:
            raise HttpError(
                400,
                "invalid_callback_url",
                f"Flowhost-Callback-Url: {host!r} is not a public address; this platform "
                "calls back only to public hosts. Use a public URL (https://...).",
            )
    timeout = settings.default_timeout
    raw = _header(headers, TIMEOUT_HEADER)
    if raw is not None:
        timeout = float(raw) if _NUMBER.fullmatch(raw) else math.nan
        if not 1 <= timeout <= settings.max_timeout:
            raise HttpError(
                400,
                "invalid_timeout",
                f"Flowhost-Timeout: must be a number of seconds between 1 and "
                f"{settings.max_timeout:g} (got {raw!r}). Asynchronous requests run for at "
                "most 12 hours.",
            )
    parent = _header(headers, b"traceparent")
    if parent is not None and not _TRACEPARENT.fullmatch(parent):
        parent = None  # W3C: a malformed traceparent is ignored, never an error
    return SubmitOptions(key, url, timeout, parent)


class PayloadValidator:
    """Validates bodies against endpoint schemas; one compiled validator per schema."""

    def __init__(self) -> None:
        self._validators: dict[str, Draft202012Validator] = {}

    def _validator(self, schema: dict[str, Any]) -> Draft202012Validator:
        key = json.dumps(schema, sort_keys=True)
        validator = self._validators.get(key)
        if validator is None:
            validator = self._validators[key] = Draft202012Validator(schema)
        return validator

    def validate(self, endpoint: EndpointDefinition, body: bytes) -> bytes:
        """The payload to store: the body if it matches the schema, else an HttpError."""
        if endpoint.request.kind == "none":
            return b"null"
        try:
            document = json.loads(body)
        except ValueError as exc:
            hint = "the body is empty" if not body.strip() else str(exc)
            raise malformed_json(endpoint.name, hint) from None
        validator = self._validator(endpoint.request.json_schema)
        found: list[ValidationError] = list(validator.iter_errors(document))  # pyright: ignore[reportUnknownMemberType]
        if found:
            found.sort(key=lambda e: [str(p) for p in e.absolute_path])
            details = [
                {
                    "field": ".".join(str(p) for p in e.absolute_path) or "(body)",
                    "message": e.message,
                    "type": str(e.validator),
                }
                for e in found[:20]
            ]
            raise validation_failed(endpoint.name, details)
        return body
