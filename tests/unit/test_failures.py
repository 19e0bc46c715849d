"""What callers see of an endpoint's exception (never its text), and what deployers get."""

from __future__ import annotations

import pytest

from flowhost.services.runtime.failures import (
    MAX_DETAIL_CHARS,
    endpoint_error_message,
    failure_detail,
)

SECRET = "postgres://admin:hunter2@db.internal/prod"


class VaultError(Exception):
    pass


def raised(exc: Exception) -> Exception:
    try:
        raise exc
    except Exception as caught:  # with its traceback, as the worker catches it
        return caught


def test_the_callers_message_names_the_endpoint_type_and_request_id_only() -> None:
    message = endpoint_error_message("predict", raised(RuntimeError(SECRET)), "req_1")

    assert message == (
        "endpoint 'predict' raised RuntimeError; request id req_1. "
        "The traceback is in the instance log."
    )
    assert "hunter2" not in message


def test_the_detail_keeps_type_message_and_traceback() -> None:
    detail = failure_detail(raised(VaultError(SECRET)))

    assert detail["type"] == f"{__name__}.VaultError"
    assert detail["message"] == SECRET
    assert detail["traceback"].startswith("Traceback (most recent call last)")
    assert f"VaultError: {SECRET}" in detail["traceback"]
    assert failure_detail(raised(KeyError("k")))["type"] == "KeyError"


@pytest.mark.parametrize("size", [MAX_DETAIL_CHARS + 1, 10 * MAX_DETAIL_CHARS])
def test_a_huge_message_is_cut_keeping_its_end(size: int) -> None:
    text = "a" * (size - 3) + "END"

    detail = failure_detail(raised(ValueError(text)))

    assert len(detail["message"]) <= MAX_DETAIL_CHARS + len("...(cut)\n")
    assert detail["message"].startswith("...(cut)")
    assert detail["message"].endswith("END")
    assert detail["traceback"].rstrip().endswith("END")
