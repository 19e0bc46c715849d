"""Compiling a WebServiceSpec class: the mistakes that fail when the class is defined."""

import re
from typing import Any

import pytest
from pydantic import BaseModel

from flowhost.errors import SpecError
from flowhost.services import WebServiceSpec, definition_of, endpoint
from flowhost.services.compile import default_service_name
from flowhost.services.spec import compiled


def parts(*literals: str) -> str:
    """A ``match=`` pattern: the literal pieces, in this order, anywhere in the message."""
    return "(?s)" + ".*".join(re.escape(p) for p in literals)


class In(BaseModel):
    text: str


class Out(BaseModel):
    label: str


# -- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("class_name", "expected"),
    [
        ("SentimentService", "sentiment-service"),
        ("Sentiment", "sentiment"),
        ("HTTPModel", "http-model"),
        ("MyHTTPService2", "my-http-service2"),
        ("ABC", "abc"),
        ("Svc_V2", "svc-v2"),
        ("model3D", "model3-d"),
    ],
)
def test_default_service_name(class_name: str, expected: str) -> None:
    assert default_service_name(class_name) == expected


def test_name_defaults_from_the_class_name() -> None:
    class SentimentService(WebServiceSpec):
        @endpoint
        def predict(self, request: In) -> Out: ...

    assert definition_of(SentimentService).name == "sentiment-service"


def test_name_is_not_inherited() -> None:
    class Base(WebServiceSpec):
        name = "base"

        @endpoint
        def predict(self, request: In) -> Out: ...

    class TextRanker(Base):
        pass

    assert definition_of(Base).name == "base"
    assert definition_of(TextRanker).name == "text-ranker"


@pytest.mark.parametrize("slug", ["My_Service", "-bad", "bad-", "9lives", "a" * 64, "", "a.b"])
def test_service_name_must_be_a_slug(slug: str) -> None:
    with pytest.raises(
        SpecError,
        match=parts(
            "Sentiment.name: must be a DNS-safe slug",
            f"(got {slug!r})",
            "For example name = 'sentiment'.",
        ),
    ):

        class Sentiment(WebServiceSpec):
            name = slug

            @endpoint
            def predict(self, request: In) -> Out: ...


def test_service_name_of_63_characters_is_allowed() -> None:
    class Long(WebServiceSpec):
        name = "a" * 63

        @endpoint
        def predict(self, request: In) -> Out: ...

    assert definition_of(Long).name == "a" * 63


def test_service_name_must_be_a_string() -> None:
    with pytest.raises(SpecError, match=parts("Sentiment.name:", "(got 5)")):

        class Sentiment(WebServiceSpec):
            name = 5  # pyright: ignore[reportAssignmentType]

            @endpoint
            def predict(self, request: In) -> Out: ...


def test_two_endpoints_with_one_name() -> None:
    with pytest.raises(
        SpecError,
        match=parts(
            "Sentiment: two endpoints are named 'predict' (methods 'predict' and 'predict_v2')",
            "Give one of them another name=... in @endpoint.",
        ),
    ):

        class Sentiment(WebServiceSpec):
            @endpoint
            def predict(self, request: In) -> Out: ...

            @endpoint(name="predict")
            def predict_v2(self, request: In) -> Out: ...


# -- request and response types ----------------------------------------------------------------


def test_unannotated_request() -> None:
    with pytest.raises(
        SpecError,
        match=parts(
            "@endpoint Sentiment.predict: the request parameter 'request' has no type annotation",
            "(request: PredictIn) or as request_dict: dict.",
        ),
    ):

        class Sentiment(WebServiceSpec):
            @endpoint
            def predict(self, request) -> Out: ...  # pyright: ignore[reportMissingParameterType]


@pytest.mark.parametrize(
    ("request_type", "shown"),
    [
        (str, "'str'"),
        (int, "'int'"),
        (list[In], "list["),
        (dict[int, str], "dict[int, str])"),  # not 'dict': the keys are the problem
    ],
)
def test_request_type_must_be_a_model_or_dict(request_type: Any, shown: str) -> None:
    with pytest.raises(
        SpecError,
        match=parts(
            "@endpoint Sentiment.predict: the request type must be a pydantic model or dict",
            f"(got {shown}",
            "Annotate the parameter as a BaseModel subclass or dict.",
        ),
    ):

        class Sentiment(WebServiceSpec):
            @endpoint
            def predict(self, request: request_type) -> Out: ...  # pyright: ignore[reportInvalidTypeForm]


def test_missing_return_annotation() -> None:
    with pytest.raises(
        SpecError,
        match=parts(
            "@endpoint Sentiment.predict: the return type is not annotated",
            "Add '-> MyResponse' (a pydantic model) or '-> dict'",
        ),
    ):

        class Sentiment(WebServiceSpec):
            @endpoint
            def predict(self, request: In): ...


@pytest.mark.parametrize(("response_type", "shown"), [(str, "'str'"), (type(None), "'NoneType'")])
def test_return_type_must_be_a_model_or_dict(response_type: Any, shown: str) -> None:
    with pytest.raises(
        SpecError,
        match=parts(
            "@endpoint Sentiment.predict: the return type must be a pydantic model or dict",
            f"(got {shown})",
            "Return a BaseModel subclass or dict.",
        ),
    ):

        class Sentiment(WebServiceSpec):
            @endpoint
            def predict(self, request: In) -> response_type: ...  # pyright: ignore[reportInvalidTypeForm]


def test_unresolvable_annotation() -> None:
    with pytest.raises(
        SpecError,
        match=parts(
            "@endpoint Sentiment.predict: cannot resolve a type annotation",
            "'NotDefinedYet' is not defined",
            "Define or import the type before the service class.",
        ),
    ):

        class Sentiment(WebServiceSpec):
            @endpoint
            def predict(self, request: "NotDefinedYet") -> Out: ...  # noqa: F821  # pyright: ignore[reportUndefinedVariable]


# -- the class as a whole ----------------------------------------------------------------------


def test_a_service_needs_an_endpoint() -> None:
    with pytest.raises(
        SpecError,
        match=parts(
            "Sentiment: a service needs at least one @endpoint method",
            "or set abstract = True on a shared base class.",
        ),
    ):

        class Sentiment(WebServiceSpec):
            def predict(self, request: In) -> Out: ...


def test_abstract_base_and_concrete_subclass() -> None:
    class Base(WebServiceSpec):
        abstract = True

        def initialize(self) -> None:
            self.ready = True

    class WithEndpoints(Base):
        abstract = True

        @endpoint
        def predict(self, request: In) -> Out: ...

    class Concrete(WithEndpoints):
        @endpoint(methods=["GET"])
        def ping(self) -> dict: ...

    with pytest.raises(SpecError, match=parts("Base: is abstract", "Serve a concrete subclass")):
        compiled(Base)
    with pytest.raises(SpecError, match="WithEndpoints: is abstract"):
        definition_of(WithEndpoints)
    assert [ep.name for ep in definition_of(Concrete).endpoints] == ["predict", "ping"]
    assert compiled(Concrete).bindings["predict"].request_type is In


def test_abstract_is_not_inherited() -> None:
    class Base(WebServiceSpec):
        abstract = True

    with pytest.raises(SpecError, match="Concrete: a service needs at least one @endpoint"):

        class Concrete(Base):
            pass


def test_subclass_overrides_an_inherited_endpoint() -> None:
    class Base(WebServiceSpec):
        @endpoint(timeout="10s")
        def predict(self, request: In) -> Out: ...

    class Child(Base):
        @endpoint(timeout="20s")
        def predict(self, request: In) -> Out: ...

    (ep,) = definition_of(Child).endpoints
    assert ep.timeout == 20.0
    assert definition_of(Base).endpoints[0].timeout == 10.0


def test_async_initialize_is_rejected() -> None:
    with pytest.raises(
        SpecError,
        match=parts(
            "Sentiment.initialize: must be a plain def (got async def)",
            "Load models synchronously",
        ),
    ):

        class Sentiment(WebServiceSpec):
            async def initialize(self) -> None: ...  # pyright: ignore[reportIncompatibleMethodOverride]

            @endpoint
            def predict(self, request: In) -> Out: ...


def test_compiled_holds_the_runtime_types() -> None:
    class Sentiment(WebServiceSpec):
        @endpoint
        def predict(self, request: In) -> Out: ...

        @endpoint
        def raw(self, request_dict: dict[str, Any]) -> dict: ...

        @endpoint
        def ping(self) -> dict: ...

    bindings = compiled(Sentiment).bindings
    assert (bindings["predict"].request_type, bindings["predict"].response_type) == (In, Out)
    assert (bindings["raw"].request_type, bindings["raw"].response_type) == (dict[str, Any], dict)
    assert bindings["ping"].request_type is None
    assert bindings["predict"].definition is definition_of(Sentiment).endpoint("predict")


@pytest.mark.parametrize("reserved", ["requests", "api", "docs", "healthz"])
def test_names_the_platform_serves_itself_are_reserved(reserved: str) -> None:
    with pytest.raises(SpecError, match=parts(f"{reserved!r} is reserved", "Pick another name")):

        class Clash(WebServiceSpec):
            name = reserved

            @endpoint
            def predict(self, request: In) -> Out: ...
