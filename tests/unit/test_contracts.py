"""Schema contracts: which differences between two versions break clients of the current one.

Every definition here is compiled from a real ``WebServiceSpec`` class.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict

from flowhost.lambdas.contracts import breaking_changes
from flowhost.services import ServiceDefinition, WebServiceSpec, definition_of, endpoint


class In(BaseModel):
    text: str
    count: int = 1


class Out(BaseModel):
    label: str
    score: float


def service(
    request: Any = In, response: Any = Out, *, methods: tuple[str, ...] = ("POST",)
) -> ServiceDefinition:
    """A service with one endpoint, ``predict(request) -> response``."""

    def handler(self: WebServiceSpec, request: Any) -> Any:
        raise NotImplementedError

    handler.__annotations__.update(request=request, **{"return": response})

    class Svc(WebServiceSpec):
        name = "svc"
        predict = endpoint(name="predict", methods=methods)(handler)

    return definition_of(Svc)


def changes(old: ServiceDefinition, new: ServiceDefinition) -> list[str]:
    return breaking_changes(old, new)


REQ = "endpoint 'predict' request: "
RESP = "endpoint 'predict' response: "


def test_no_change_breaks_nothing() -> None:
    assert changes(service(), service()) == []


def test_a_removed_endpoint_breaks() -> None:
    class V1(WebServiceSpec):
        name = "svc"

        @endpoint
        def predict(self, request: In) -> Out:
            raise NotImplementedError

        @endpoint(name="explain")
        def explain(self, request_dict: dict) -> dict:
            raise NotImplementedError

    class V2(WebServiceSpec):
        name = "svc"

        @endpoint
        def predict(self, request: In) -> Out:
            raise NotImplementedError

    assert changes(definition_of(V1), definition_of(V2)) == ["endpoint 'explain' was removed"]
    assert changes(definition_of(V2), definition_of(V1)) == []  # a new endpoint is fine


def test_a_removed_http_method_breaks() -> None:
    both, post = service(methods=("GET", "POST")), service(methods=("POST",))
    assert changes(both, post) == ["endpoint 'predict': HTTP method GET is no longer accepted"]
    assert changes(post, both) == []


def test_a_new_required_request_field_breaks() -> None:
    class In2(In):
        language: str

    assert changes(service(In), service(In2)) == [f"{REQ}field 'language' is a new required field"]


def test_an_optional_request_field_that_becomes_required_breaks() -> None:
    class In2(BaseModel):
        text: str
        count: int

    assert changes(service(In), service(In2)) == [f"{REQ}field 'count' became required"]
    assert changes(service(In2), service(In)) == []  # required -> optional is fine


def test_a_new_optional_request_field_is_fine() -> None:
    class In2(In):
        language: str = "en"
        hint: str | None = None

    assert changes(service(In), service(In2)) == []


def test_a_request_field_type_change_breaks_but_widening_is_fine() -> None:
    class Str(BaseModel):
        value: str

    class Int(BaseModel):
        value: int

    class IntOrNone(BaseModel):
        value: int | None

    assert changes(service(Str), service(Int)) == [
        f"{REQ}field 'value' changed type (string -> integer)"
    ]
    assert changes(service(Int), service(IntOrNone)) == []
    assert changes(service(IntOrNone), service(Int)) == [
        f"{REQ}field 'value' changed type (integer|null -> integer)"
    ]


def test_a_removed_request_field_breaks_only_when_extra_fields_are_rejected() -> None:
    class Lenient(BaseModel):
        text: str

    class Strict(BaseModel):
        model_config = ConfigDict(extra="forbid")
        text: str

    assert changes(service(In), service(Lenient)) == []
    assert changes(service(In), service(Strict)) == [
        f"{REQ}field 'count' was removed and is now rejected"
    ]


def test_a_request_body_where_there_was_none() -> None:
    class NoBody(WebServiceSpec):
        name = "svc"

        @endpoint
        def predict(self) -> Out:
            raise NotImplementedError

    class Optional(BaseModel):
        hint: str = ""

    none = definition_of(NoBody)
    assert changes(none, service(In)) == [f"{REQ}field 'text' is a new required field"]
    assert changes(none, service(Optional)) == []
    assert changes(service(In), none) == ["endpoint 'predict' request: the body is no longer read"]


def test_a_removed_response_field_breaks_and_a_new_one_is_fine() -> None:
    class Less(BaseModel):
        label: str

    class More(Out):
        model_version: str

    assert changes(service(response=Out), service(response=Less)) == [
        f"{RESP}field 'score' was removed"
    ]
    assert changes(service(response=Out), service(response=More)) == []


def test_a_response_field_type_change_breaks_but_narrowing_is_fine() -> None:
    class Str(BaseModel):
        label: str

    class Int(BaseModel):
        label: int

    class IntOrNone(BaseModel):
        label: int | None

    assert changes(service(response=Str), service(response=Int)) == [
        f"{RESP}field 'label' changed type (string -> integer)"
    ]
    assert changes(service(response=Int), service(response=IntOrNone)) == [
        f"{RESP}field 'label' changed type (integer -> integer|null)"
    ]
    assert changes(service(response=IntOrNone), service(response=Int)) == []


class Inner(BaseModel):
    weight: float


class SameShape(BaseModel):
    weight: float


def test_a_nested_model_field_is_compared_through_its_ref() -> None:
    class Nested(BaseModel):
        inner: Inner

    class Renamed(BaseModel):
        inner: SameShape

    class Scalar(BaseModel):
        inner: float

    class NestedOrNone(BaseModel):
        inner: Inner | None = None

    nested = service(Nested, Nested)
    assert "$ref" in str(nested.endpoints[0].request.json_schema["properties"]["inner"])
    assert changes(nested, service(Renamed, Renamed)) == []
    assert changes(nested, service(Scalar, Scalar)) == [
        f"{REQ}field 'inner' changed type (object -> number)",
        f"{RESP}field 'inner' changed type (object -> number)",
    ]
    assert changes(nested, service(NestedOrNone, Nested)) == []
    assert changes(service(NestedOrNone, Nested), nested) == [
        f"{REQ}field 'inner' became required",
        f"{REQ}field 'inner' changed type (null|object -> object)",
    ]


class Node(BaseModel):
    """Self-referencing, so its whole schema is a ``$ref`` into ``$defs``."""

    model_config = ConfigDict(extra="forbid")
    value: int
    note: str = ""
    children: "list[Node]" = []


class Node2(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: int
    label: str
    children: "list[Node2]" = []


def test_a_top_level_ref_is_resolved() -> None:
    old, new = service(Node, Node), service(Node2, Node2)
    assert "$ref" in old.endpoints[0].request.json_schema
    assert changes(old, old) == []
    assert changes(old, new) == [
        f"{REQ}field 'label' is a new required field",
        f"{REQ}field 'note' was removed and is now rejected",
        f"{RESP}field 'note' was removed",
    ]
