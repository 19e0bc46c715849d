"""Named environments on SQLite: revisions, identical registrations, lookups, the
requirements' form (the OpenAPI pattern and the line checks agree), and the routes."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.requirements import Requirement
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from flowhost.errors import NotFoundError
from flowhost.lambdas.api import create_api
from flowhost.lambdas.deployments import Deployments
from flowhost.lambdas.store import StateStore
from flowhost.lambdas.store.environments import (
    REQUIREMENTS_PATTERN,
    EnvironmentConflict,
    EnvironmentRegistry,
    EnvironmentRevision,
    InvalidEnvironment,
    environment_ref,
    normalise_requirements,
)
from flowhost.lambdas.store.models import EnvironmentRow

SLOW_DATA = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
FAST = settings(max_examples=300, deadline=None, suppress_health_check=SLOW_DATA)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    state = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    state.migrate()
    yield state
    state.engine.dispose()


@pytest.fixture
def registry(store: StateStore) -> EnvironmentRegistry:
    return EnvironmentRegistry(store.engine)


def test_revisions_count_up_and_identical_requirements_return_the_latest(
    registry: EnvironmentRegistry,
) -> None:
    first = registry.register("sentiment-train", "scikit-learn==1.5.2\n", "requirements.txt", "ann")
    again = registry.register(
        "sentiment-train", "# pinned\n\nscikit-learn==1.5.2  # the model\n", "other.txt", "bob"
    )
    changed = registry.register("sentiment-train", "scikit-learn==1.6.0", "flow.py:train", "bob")

    assert (first.revision, first.requirements, first.actor) == (1, "scikit-learn==1.5.2", "ann")
    assert again == first  # same requirements after normalising: the same revision, unchanged
    assert (changed.revision, changed.source, changed.actor) == (2, "flow.py:train", "bob")
    assert changed.ref == "sentiment-train@2"
    assert registry.get("sentiment-train") == changed
    assert registry.get("sentiment-train", 1) == first
    assert [r.revision for r in registry.revisions("sentiment-train")] == [1, 2]


def test_going_back_to_older_requirements_is_a_new_revision(registry: EnvironmentRegistry) -> None:
    registry.register("env", "numpy<2", "a", "ann")
    registry.register("env", "numpy>=2", "b", "ann")
    back = registry.register("env", "numpy<2", "c", "ann")
    assert back.revision == 3  # only the latest is compared: revisions never change


def test_put_says_whether_it_created(registry: EnvironmentRegistry) -> None:
    assert registry.put("env", "numpy", "a", "ann")[1] is True
    assert registry.put("env", " numpy ", "b", "ann")[1] is False


def test_names_lists_the_latest_of_each(registry: EnvironmentRegistry) -> None:
    registry.register("b-env", "numpy", "s", "ann")
    registry.register("a-env", "pandas", "s", "ann")
    registry.register("b-env", "numpy\nscipy", "s", "ann")
    assert [(r.name, r.revision, r.requirements) for r in registry.names()] == [
        ("a-env", 1, "pandas"), ("b-env", 2, "numpy\nscipy"),
    ]  # fmt: skip


def test_unknown_names_and_revisions_name_the_fix(registry: EnvironmentRegistry) -> None:
    with pytest.raises(NotFoundError) as missing:
        registry.get("ghost")
    assert missing.value.code == "environment_not_found"
    assert missing.value.message == (
        "environment 'ghost': not registered on this platform. Register it with 'flowhost env "
        "register ghost --from requirements.txt', or see 'flowhost env list'."
    )
    with pytest.raises(NotFoundError, match="not registered"):
        registry.revisions("ghost")
    registry.register("env", "numpy", "s", "ann")
    with pytest.raises(NotFoundError, match=r"'env': no revision 4 \(revisions 1 to 1\)"):
        registry.get("env", 4)


def test_a_registration_that_loses_the_race_takes_the_next_number(
    registry: EnvironmentRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registration that read revision 1 as the latest while another wrote revision 2
    (on PostgreSQL both may read before either commits) is refused revision 2 by the
    unique constraint and retries once, on top of it."""
    registry.register("env", "numpy", "s", "ann")
    registry.register("env", "scipy", "s", "eve")  # the other registration, first to commit
    latest = EnvironmentRegistry._latest  # pyright: ignore[reportPrivateUsage]
    calls: list[str] = []

    def stale_once(s: Session, name: str) -> EnvironmentRow | None:
        calls.append(name)
        if len(calls) == 1:  # what this registration read before the other one committed
            return s.scalars(select(EnvironmentRow).where(EnvironmentRow.revision == 1)).one()
        return latest(s, name)

    monkeypatch.setattr(EnvironmentRegistry, "_latest", staticmethod(stale_once))
    assert registry.register("env", "pandas", "s", "bob").revision == 3
    assert len(calls) == 2
    assert [(r.revision, r.actor) for r in registry.revisions("env")] == [
        (1, "ann"), (2, "eve"), (3, "bob"),
    ]  # fmt: skip


def test_a_registration_retries_only_once(
    registry: EnvironmentRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.register("env", "numpy", "s", "ann")
    registry.register("env", "scipy", "s", "eve")

    def always_stale(s: Session, name: str) -> EnvironmentRow | None:
        return s.scalars(select(EnvironmentRow).where(EnvironmentRow.revision == 1)).one()

    monkeypatch.setattr(EnvironmentRegistry, "_latest", staticmethod(always_stale))
    with pytest.raises(EnvironmentConflict, match=r"nothing was registered\. Register again\."):
        registry.register("env", "pandas", "s", "bob")
    assert [r.revision for r in registry.revisions("env")] == [1, 2]


def test_the_unique_constraint_holds_revisions_apart(store: StateStore) -> None:
    registry = EnvironmentRegistry(store.engine)
    registry.register("env", "numpy", "s", "ann")
    with pytest.raises(IntegrityError), registry._tx() as s:  # pyright: ignore[reportPrivateUsage]
        s.add(EnvironmentRow(name="env", revision=1, requirements="x", source="", actor="a"))


@pytest.mark.parametrize(
    ("name", "ok"),
    [("sentiment-train", True), ("a", True), ("Sentiment", False), ("-x", False),
     ("x-", False), ("a" * 64, False), ("under_score", False), ("env\n", False)],
)  # fmt: skip
def test_names_are_dns_safe_slugs(registry: EnvironmentRegistry, name: str, ok: bool) -> None:
    if ok:
        assert registry.register(name, "numpy", "s", "ann").name == name
    else:
        with pytest.raises(InvalidEnvironment, match=r"environment name: must be a DNS-safe slug"):
            registry.register(name, "numpy", "s", "ann")


def test_refs_name_the_latest_or_a_revision() -> None:
    assert environment_ref("sentiment-train") == ("sentiment-train", None)
    assert environment_ref("sentiment-train@3") == ("sentiment-train", 3)
    for bad in ("sentiment-train@", "sentiment-train@0", "sentiment-train@v3"):
        with pytest.raises(InvalidEnvironment, match="must be a number from 1"):
            environment_ref(bad)


def test_requirements_are_stripped_of_comments_and_blanks_in_order() -> None:
    text = "# training deps\n\n  torch==2.4.1  # cuda\r\nscikit-learn>=1.5,<2\n\tnumpy[extra]\n"
    assert normalise_requirements(text) == "torch==2.4.1\nscikit-learn>=1.5,<2\nnumpy[extra]"


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("numpy\n-r base.txt", "requirements line 2: '-r base.txt' is a pip option (-r)"),
        ("-e .", "line 1: '-e .' is a pip option (-e), which the platform does not take"),
        ("--index-url https://x/simple", "(--index-url), which the platform does not take: its"),
        ("-i https://x/simple", "(-i), which the platform does not take: its package index"),
        ("numpy==", "line 1: 'numpy==' is not a requirement"),
        ("num py", "line 1: 'num py' is not a requirement"),
        ("pkg @ https://example.com/pkg.whl", "a form the platform does not take"),
        ("numpy===1.0", "a form the platform does not take"),
        ("# only a comment\n\n", "requirements: no requirements"),
        ("x" * 70000, "more than 65536"),
    ],
)
def test_bad_requirements_name_the_line_and_the_fix(text: str, said: str) -> None:
    with pytest.raises(InvalidEnvironment) as caught:
        normalise_requirements(text)
    assert said in caught.value.message
    assert (caught.value.status, caught.value.code) == (422, "invalid_environment")


_PATTERN = re.compile(REQUIREMENTS_PATTERN)


@settings(max_examples=60, deadline=None, suppress_health_check=SLOW_DATA)
@given(st.from_regex(REQUIREMENTS_PATTERN))
def test_text_the_published_pattern_allows_is_accepted(text: str) -> None:
    for line in normalise_requirements(text).split("\n"):
        Requirement(line)


_PIECES = st.sampled_from(
    [*"ab1.-_=<>~!*[], ;#\n\r\t\"", "numpy", "==1.0", ">=2", "python_version", " and ",
     "~=1.2", "-r x", "+cu1", "@ https://x"]
)  # fmt: skip


@FAST
@given(st.lists(_PIECES, max_size=12).map("".join))
def test_text_is_accepted_exactly_when_the_published_pattern_allows_it(text: str) -> None:
    try:
        normalise_requirements(text)
        accepted = True
    except InvalidEnvironment:
        accepted = False
    assert accepted == bool(_PATTERN.search(text))


def test_a_revision_is_immutable() -> None:
    revision = EnvironmentRevision(
        name="env", revision=1, requirements="numpy", source="", actor="a",
        created_at="2026-12-08T00:00:00Z",  # pyright: ignore[reportArgumentType]
    )  # fmt: skip
    with pytest.raises(ValueError, match="frozen"):
        revision.revision = 2  # pyright: ignore[reportAttributeAccessIssue]


# -- the routes, on the control-plane app ---------------------------------------------


class Api:
    """The control-plane app, called in process (as ``ann``)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def one() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://local", headers={"x-flowhost-actor": "ann"}
            ) as client:
                return await client.request(method, path, **kwargs)

        return asyncio.run(one())

    def get(self, path: str) -> httpx.Response:
        return self.call("GET", path)

    def put(self, path: str, json: Any) -> httpx.Response:
        return self.call("PUT", path, json=json)


@pytest.fixture
def api(store: StateStore) -> Api:
    return Api(create_api(cast(Deployments, SimpleNamespace(store=store))))


def test_the_routes_register_list_and_show(api: Api) -> None:
    body = {"requirements": "numpy==2.1.0\n", "source": "requirements.txt"}
    created = api.put("/api/environments/sentiment-train", json=body)
    same = api.put("/api/environments/sentiment-train", json={"requirements": "numpy==2.1.0"})
    changed = api.put("/api/environments/sentiment-train", json={"requirements": "numpy==2.2.0"})

    assert (created.status_code, created.json()["revision"], created.json()["created"]) == (
        201, 1, True,
    )  # fmt: skip
    assert created.json()["actor"] == "ann"
    assert (same.status_code, same.json()["revision"], same.json()["created"]) == (200, 1, False)
    assert (changed.status_code, changed.json()["revision"]) == (201, 2)
    listed = api.get("/api/environments").json()
    assert [(e["name"], e["revision"]) for e in listed] == [("sentiment-train", 2)]
    shown = api.get("/api/environments/sentiment-train").json()
    assert shown["latest"]["revision"] == 2
    assert [r["requirements"] for r in shown["revisions"]] == ["numpy==2.1.0", "numpy==2.2.0"]
    first = api.get("/api/environments/sentiment-train/revisions/1").json()
    assert (first["source"], first["requirements"]) == ("requirements.txt", "numpy==2.1.0")


def test_the_routes_answer_errors_in_the_platform_shape(api: Api) -> None:
    bad = api.put("/api/environments/env", json={"requirements": "numpy\n-r base.txt"})
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "invalid_environment"
    assert "requirements line 2: '-r base.txt'" in bad.json()["error"]["message"]
    missing = api.get("/api/environments/ghost")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "environment_not_found")
    assert "flowhost env register ghost" in missing.json()["error"]["message"]
    api.put("/api/environments/env", json={"requirements": "numpy"})
    no_revision = api.get("/api/environments/env/revisions/7")
    assert no_revision.status_code == 404
    slug = api.put("/api/environments/Bad_Name", json={"requirements": "numpy"})
    assert (slug.status_code, slug.json()["error"]["code"]) == (422, "validation_error")
    extra = api.put("/api/environments/env", json={"requirements": "numpy", "index": "x"})
    assert extra.status_code == 422


def test_the_document_states_the_requirements_pattern(api: Api) -> None:
    doc = api.get("/api/openapi.json").json()
    body = doc["components"]["schemas"]["EnvironmentRegistration"]
    assert body["properties"]["requirements"]["pattern"] == REQUIREMENTS_PATTERN
    assert set(doc["paths"]["/api/environments/{name}"]) == {"get", "put"}
    put = doc["paths"]["/api/environments/{name}"]["put"]["responses"]
    assert {"200", "201", "422"} <= set(put)
