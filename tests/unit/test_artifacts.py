"""Artifacts(namespace=...): checked when the class is defined, kept when a run is pinned,
and the platform's default namespace read from FLOWHOST_METAFLOW_NAMESPACE."""

from __future__ import annotations

import pytest

from flowhost.errors import SpecError
from flowhost.services import Artifacts, WebServiceSpec, endpoint
from flowhost.services.artifacts import NAMESPACE_ENV, platform_namespace
from flowhost.services.spec import definition_of


def test_the_namespace_is_part_of_the_definition() -> None:
    class Scored(WebServiceSpec):
        name = "scored"
        artifacts = Artifacts(flow="TrainFlow", namespace="production:trainflow-0-abcd")

        @endpoint
        def score(self, request_dict: dict[str, str]) -> dict[str, str]:
            return request_dict

    binding = definition_of(Scored).artifacts
    assert binding is not None
    assert binding.namespace == "production:trainflow-0-abcd"
    pinned = binding.pinned("TrainFlow/42/end/7")
    assert (pinned.run, pinned.namespace) == ("TrainFlow/42", "production:trainflow-0-abcd")


@pytest.mark.parametrize("bad", ["", "user: alice", "x" * 501])
def test_a_bad_namespace_fails_at_class_definition(bad: str) -> None:
    with pytest.raises(SpecError, match=r"Bad: Artifacts: namespace: not a Metaflow namespace"):

        class Bad(WebServiceSpec):  # pyright: ignore[reportUnusedClass]
            artifacts = Artifacts(flow="TrainFlow", namespace=bad)


def test_a_pin_of_another_flow_is_refused() -> None:
    with pytest.raises(SpecError, match="belongs to flow 'OtherFlow'"):
        Artifacts(flow="TrainFlow", namespace="team:ml").pinned("OtherFlow/1")


def test_the_platform_namespace() -> None:
    assert platform_namespace({NAMESPACE_ENV: " team:ml "}) == "team:ml"
    assert platform_namespace({NAMESPACE_ENV: ""}) is None
    assert platform_namespace({}) is None
