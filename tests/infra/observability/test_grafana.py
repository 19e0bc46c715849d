"""The Grafana JSON: parses, round-trips through the SDK's model, mirrors every widget."""

from __future__ import annotations

import json
from typing import Any

import pytest
from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import cloudwatch as cwm
from grafana_foundation_sdk.models import dashboard as dashm

from flowhost.infra.service.grafana import grafana_uid
from tests.infra.observability.harness import Run

CLOUDWATCH = {"type": "cloudwatch", "uid": "${datasource}"}


@pytest.fixture(params=["ecs", "eks"])
def variant(request: pytest.FixtureRequest) -> Run:
    return request.getfixturevalue(request.param)


def test_round_trips_through_the_sdk_model(variant: Run) -> None:
    data = json.loads(variant.grafana_json)
    plugins.register_default_plugins()
    model = dashm.Dashboard.from_json(data)
    assert json.loads(json.dumps(model, cls=JSONEncoder)) == data
    assert model.panels is not None
    for panel in model.panels:
        assert isinstance(panel, dashm.Panel)
        assert panel.targets
        assert all(isinstance(t, cwm.CloudWatchMetricsQuery) for t in panel.targets)


def test_dashboard_identity_and_datasource_variable(variant: Run) -> None:
    data = json.loads(variant.grafana_json)
    assert data["title"] == data["uid"] == "flowhost-dev-sentiment-v3"
    assert data["tags"] == ["flowhost", "env:dev", "service:sentiment", "version:3"]
    (variable,) = data["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource", "datasource", "cloudwatch"
    )  # fmt: skip


def test_panels_mirror_the_cloudwatch_widgets(variant: Run) -> None:
    panels: list[dict[str, Any]] = json.loads(variant.grafana_json)["panels"]
    widgets = variant.body["widgets"]
    assert [p["title"] for p in panels] == [w["properties"]["title"] for w in widgets]
    for panel, widget in zip(panels, widgets, strict=True):
        assert panel["type"] == "timeseries"
        assert panel["datasource"] == CLOUDWATCH
        position = {"x": "x", "y": "y", "w": "width", "h": "height"}
        assert panel["gridPos"] == {k: widget[j] for k, j in position.items()}
        metrics = widget["properties"]["metrics"]
        assert len(panel["targets"]) == len(metrics)
        assert len({t["refId"] for t in panel["targets"]}) == len(metrics)
        for target, (namespace, name, *rest) in zip(panel["targets"], metrics, strict=True):
            *flat, options = rest
            assert target["datasource"] == CLOUDWATCH
            assert (target["queryMode"], target["matchExact"]) == ("Metrics", True)
            assert (target["namespace"], target["metricName"]) == (namespace, name)
            assert target["dimensions"] == dict(zip(flat[::2], flat[1::2], strict=True))
            assert (target["statistic"], target["label"]) == (options["stat"], options["label"])
            assert target["region"] == widget["properties"]["region"]
            assert target["period"] == str(widget["properties"]["period"])


def test_units(ecs: Run) -> None:
    panels = {p["title"]: p for p in json.loads(ecs.grafana_json)["panels"]}
    assert panels["Latency (p50, p99)"]["fieldConfig"]["defaults"]["unit"] == "s"
    queue = panels["Queue depth and age"]["fieldConfig"]
    assert queue["defaults"]["unit"] == "short"
    (override,) = queue["overrides"]
    assert override["matcher"] == {"id": "byFrameRefID", "options": "B"}
    assert {p["id"]: p["value"] for p in override["properties"]} == {
        "unit": "s", "custom.axisPlacement": "right"
    }  # fmt: skip


def test_uid_fits_grafana() -> None:
    long = "flowhost-staging-" + "a" * 60 + "-v12"
    assert len(grafana_uid(long)) == 40
    assert grafana_uid(long) != grafana_uid(long[:-1] + "3")
    assert grafana_uid("short") == "short"
