"""``@endpoint``: what it records, and the misuse it rejects at decoration time."""

import re
from typing import Any

import pytest
from pydantic import BaseModel

from flowhost.errors import SpecError
from flowhost.services import WebServiceSpec, endpoint
from flowhost.services.endpoint import ENDPOINT_ATTR, EndpointOptions


def parts(*literals: str) -> str:
    """A ``match=`` pattern: the literal pieces, in this order, anywhere in the message."""
    return "(?s)" + ".*".join(re.escape(p) for p in literals)


class In(BaseModel):
    text: str


class Out(BaseModel):
    label: str


def options_of(fn: Any) -> EndpointOptions:
    options = getattr(fn, ENDPOINT_ATTR)
    assert isinstance(options, EndpointOptions)
    return options


def test_returns_the_function_unchanged_and_records_options() -> None:
    def predict(self: Any, request: In) -> Out: ...

    assert endpoint(predict) is predict
    assert options_of(predict) == EndpointOptions(
        name="predict", description=None, methods=("POST",), timeout=60.0
    )

    def show(self: Any, request_dict: dict) -> dict: ...

    decorated = endpoint(name="show-data", description="Show.", methods="get", timeout="2m")(show)
    assert decorated is show
    assert options_of(show) == EndpointOptions(
        name="show-data", description="Show.", methods=("GET",), timeout=120.0
    )


def test_methods_are_uppercased_and_deduplicated() -> None:
    @endpoint(methods=["post", "GET", "POST", "get"])
    def predict(self: Any, request: In) -> Out: ...

    assert options_of(predict).methods == ("POST", "GET")


def test_no_request_parameter_is_allowed() -> None:
    @endpoint
    async def ping(self: Any) -> dict: ...

    assert options_of(ping).name == "ping"


def test_bad_http_method() -> None:
    with pytest.raises(
        SpecError,
        match=parts(
            "Sentiment.predict", "unknown HTTP method (got 'FETCH')", "Use one of: GET, POST"
        ),
    ):

        class Sentiment(WebServiceSpec):
            @endpoint(methods=["POST", "FETCH"])
            def predict(self, request: In) -> Out: ...


def test_empty_methods() -> None:
    with pytest.raises(
        SpecError, match=parts("<locals>.predict'", "methods is empty", "methods=['POST']")
    ):

        @endpoint(methods=[])
        def predict(self: Any, request: In) -> Out: ...


@pytest.mark.parametrize("timeout", ["21m", 1201, "1h", 0, "0s"])
def test_timeout_out_of_range(timeout: str | int) -> None:
    with pytest.raises(
        SpecError,
        match=parts(
            "Sentiment.predict",
            f"timeout must be above 0 and at most 20 minutes (got {timeout!r})",
            "call the endpoint asynchronously",
        ),
    ):

        class Sentiment(WebServiceSpec):
            @endpoint(timeout=timeout)
            def predict(self, request: In) -> Out: ...


def test_timeout_of_exactly_twenty_minutes_is_allowed() -> None:
    @endpoint(timeout="20m")
    def predict(self: Any, request: In) -> Out: ...

    assert options_of(predict).timeout == 1200.0


def test_unreadable_timeout() -> None:
    with pytest.raises(
        SpecError,
        match=parts("<locals>.predict'", "timeout: cannot read 'soon' as a duration", "'30s'"),
    ):

        @endpoint(timeout="soon")
        def predict(self: Any, request: In) -> Out: ...


@pytest.mark.parametrize("name", ["healthz", "readyz", "info", "metrics", "docs"])
def test_reserved_name(name: str) -> None:
    with pytest.raises(
        SpecError,
        match=parts(
            "Sentiment.predict", f"endpoint name {name!r} is reserved", "Pick another name"
        ),
    ) as info:

        class Sentiment(WebServiceSpec):
            @endpoint(name=name)
            def predict(self, request: In) -> Out: ...

    assert "reserved: docs, healthz, info, metrics, openapi.json, readyz." in info.value.message


def test_reserved_name_from_the_method_name() -> None:
    with pytest.raises(SpecError, match=parts("Sentiment.healthz", "'healthz' is reserved")):

        class Sentiment(WebServiceSpec):
            @endpoint
            def healthz(self) -> dict: ...


@pytest.mark.parametrize("name", ["Predict", "my endpoint", "1st", "-x", "a/b", "", "x" * 64])
def test_non_slug_name(name: str) -> None:
    with pytest.raises(
        SpecError,
        match=parts(
            "Sentiment.predict",
            "endpoint name must be lowercase letters, digits",
            f"(got {name!r})",
            "Pass name='my-endpoint'",
        ),
    ):

        class Sentiment(WebServiceSpec):
            @endpoint(name=name)
            def predict(self, request: In) -> Out: ...


def test_method_name_must_be_a_slug_unless_renamed() -> None:
    with pytest.raises(SpecError, match=parts("Sentiment.Predict", "(got 'Predict')")):

        class Sentiment(WebServiceSpec):
            @endpoint
            def Predict(self, request: In) -> Out: ...

    class Renamed(WebServiceSpec):
        @endpoint(name="predict")
        def Predict(self, request: In) -> Out: ...

    assert options_of(Renamed.Predict).name == "predict"


def test_extra_parameters() -> None:
    with pytest.raises(
        SpecError,
        match=parts(
            "Sentiment.predict",
            "takes one request parameter (got extra: threshold, debug)",
            "Put all fields in one pydantic model",
        ),
    ):

        class Sentiment(WebServiceSpec):
            @endpoint
            def predict(self, request: In, threshold: float, debug: bool = False) -> Out: ...


@pytest.mark.parametrize(
    "source",
    [
        "def predict(self, *requests: In) -> Out: ...",
        "def predict(self, **request: In) -> Out: ...",
        "def predict(self, *, request: In) -> Out: ...",
    ],
)
def test_request_must_be_positional(source: str) -> None:
    namespace: dict[str, Any] = {"In": In, "Out": Out}
    exec(source, namespace)
    with pytest.raises(
        SpecError,
        match=parts("@endpoint 'predict'", "must be a plain positional parameter", "keyword-only"),
    ):
        endpoint(namespace["predict"])


def test_first_parameter_must_be_self() -> None:
    with pytest.raises(
        SpecError, match=parts("<locals>.predict'", "its first parameter must be self")
    ):

        @endpoint
        def predict(request: In) -> Out: ...


@pytest.mark.parametrize(
    ("wrapper", "kind"), [(staticmethod, "staticmethod"), (classmethod, "classmethod")]
)
def test_staticmethod_and_classmethod(wrapper: Any, kind: str) -> None:
    def predict(request: In) -> Out: ...

    with pytest.raises(
        SpecError,
        match=parts(
            "'test_staticmethod_and_classmethod.<locals>.predict'",
            f"must decorate a plain method (got a {kind})",
            "Remove @staticmethod/@classmethod",
        ),
    ):
        endpoint(wrapper(predict))


def test_staticmethod_in_a_class_body() -> None:
    with pytest.raises(SpecError, match=parts("Sentiment.predict", "(got a staticmethod)")):

        class Sentiment(WebServiceSpec):
            @endpoint
            @staticmethod
            def predict(request: In) -> Out: ...


def test_classmethod_in_a_class_body() -> None:
    """A classmethod object is not callable; it still gets the classmethod message."""
    with pytest.raises(SpecError, match=parts("Sentiment.predict", "(got a classmethod)")):

        class Sentiment(WebServiceSpec):
            @endpoint
            @classmethod
            def predict(cls, request: In) -> Out: ...


def test_applied_twice() -> None:
    with pytest.raises(
        SpecError,
        match=parts("Sentiment.predict", "@endpoint is applied twice", "Keep one @endpoint(...)"),
    ):

        class Sentiment(WebServiceSpec):
            @endpoint(name="predict")
            @endpoint(name="predict-again")
            def predict(self, request: In) -> Out: ...


def test_generators_are_rejected() -> None:
    with pytest.raises(
        SpecError, match=parts("<locals>.predict'", "not a generator", "Use return")
    ):

        @endpoint
        def predict(self: Any, request: In):
            yield Out(label="x")


def test_non_function_is_rejected() -> None:
    class Callable:
        def __call__(self, request: In) -> Out: ...

    with pytest.raises(SpecError, match=parts("@endpoint decorates methods (got Callable)", "def")):
        endpoint(Callable())


def test_options_must_be_keywords() -> None:
    with pytest.raises(
        SpecError,
        match=parts("options must be passed by keyword (got 'predict')", "@endpoint(name="),
    ):
        endpoint("predict")  # pyright: ignore[reportCallIssue, reportArgumentType]
