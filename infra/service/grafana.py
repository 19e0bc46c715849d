"""A CloudWatch dashboard body, rebuilt as a Grafana dashboard with grafana-foundation-sdk.

Each CloudWatch metric widget becomes a time-series panel at the same grid position with
the same title, and each of its metrics a CloudWatch data-source query (same namespace,
metric, dimensions, statistic, period and region). The data source is a dashboard
variable, ``datasource``, of type ``cloudwatch``: pick yours when importing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from grafana_foundation_sdk.builders import cloudwatch as cwb
from grafana_foundation_sdk.builders import common as commonb
from grafana_foundation_sdk.builders import dashboard as dashb
from grafana_foundation_sdk.builders import timeseries as tsb
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import cloudwatch as cwm
from grafana_foundation_sdk.models import common as commonm
from grafana_foundation_sdk.models import dashboard as dashm

__all__ = ["DATASOURCE", "grafana_dashboard", "grafana_uid"]

DATASOURCE = dashm.DataSourceRef(type_val="cloudwatch", uid="${datasource}")
SECONDS = frozenset({"TargetResponseTime", "RequestDuration", "ApproximateAgeOfOldestMessage"})
REF_IDS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def grafana_uid(title: str) -> str:
    """The title, if it fits Grafana's 40-character uid; else a prefix and a short hash."""
    if len(title) <= 40:
        return title
    return f"{title[:31]}-{hashlib.sha256(title.encode()).hexdigest()[:8]}"


def _expression(metric: Sequence[Any]) -> Mapping[str, Any] | None:
    """The widget entry's math or SEARCH expression (``[{"expression": ...}]``), if it is one."""
    first = metric[0] if len(metric) == 1 else None
    return first if isinstance(first, dict) and "expression" in first else None


def _in_seconds(metric: Sequence[Any]) -> bool:
    expression = _expression(metric)
    if expression is None:
        return metric[1] in SECONDS
    return any(f'"{name}"' in str(expression["expression"]) for name in SECONDS)


def _query(
    ref_id: str, metric: Sequence[Any], region: str, period: int
) -> cwb.CloudWatchMetricsQuery:
    expression = _expression(metric)
    if expression is not None:  # a SEARCH expression: code mode, the expression as written
        return (
            cwb.CloudWatchMetricsQuery()
            .datasource(DATASOURCE)
            .ref_id(ref_id)
            .query_mode(cwm.CloudWatchQueryMode.METRICS)
            .metric_query_type(cwm.MetricQueryType.SEARCH)
            .metric_editor_mode(cwm.MetricEditorMode.CODE)
            .region(region)
            .expression(str(expression["expression"]))
            .id(str(expression.get("id", ref_id.lower())))
            .period(str(period))
            .label(str(expression.get("label") or ""))
        )
    namespace, name, *rest = metric
    options: Mapping[str, Any] = rest.pop() if rest and isinstance(rest[-1], dict) else {}
    dims: dict[str, str | list[str]] = {
        str(k): str(v) for k, v in zip(rest[::2], rest[1::2], strict=True)
    }
    return (
        cwb.CloudWatchMetricsQuery()
        .datasource(DATASOURCE)
        .ref_id(ref_id)
        .query_mode(cwm.CloudWatchQueryMode.METRICS)
        .metric_query_type(cwm.MetricQueryType.SEARCH)
        .metric_editor_mode(cwm.MetricEditorMode.BUILDER)
        .region(region)
        .namespace(namespace)
        .metric_name(name)
        .dimensions(dims)
        .match_exact(True)
        .statistic(options.get("stat", "Average"))
        .period(str(period))
        .label(options.get("label", name))
    )


def _panel(widget: Mapping[str, Any]) -> tsb.Panel:
    props = widget["properties"]
    metrics: list[Sequence[Any]] = props["metrics"]
    seconds = [_in_seconds(m) for m in metrics]
    panel = (
        tsb.Panel()
        .title(props["title"])
        .datasource(DATASOURCE)
        .grid_pos(
            dashm.GridPos(h=widget["height"], w=widget["width"], x=widget["x"], y=widget["y"])
        )
        .unit("s" if all(seconds) else "short")
        .min(0)
        .line_width(1)
        .fill_opacity(10)
        .legend(
            commonb.VizLegendOptions()
            .display_mode(commonm.LegendDisplayMode.LIST)
            .placement(commonm.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .tooltip(commonb.VizTooltipOptions().mode(commonm.TooltipDisplayMode.MULTI))
    )
    for ref_id, metric, secs in zip(REF_IDS, metrics, seconds, strict=False):
        panel = panel.with_target(_query(ref_id, metric, props["region"], props["period"]))
        if secs and not all(seconds):
            right = isinstance(metric[-1], dict) and metric[-1].get("yAxis") == "right"
            overrides = [dashm.DynamicConfigValue(id_val="unit", value="s")]
            if right:
                overrides.append(
                    dashm.DynamicConfigValue(id_val="custom.axisPlacement", value="right")
                )
            panel = panel.override_by_query(ref_id, overrides)
    return panel


def grafana_dashboard(title: str, body: Mapping[str, Any], tags: Sequence[str] = ()) -> str:
    """The Grafana dashboard JSON mirroring the CloudWatch dashboard ``body``."""
    builder = (
        dashb.Dashboard(title)
        .uid(grafana_uid(title))
        .tags(list(tags))
        .time("now-6h", "now")
        .refresh("1m")
        .with_variable(
            dashb.DatasourceVariable("datasource").label("CloudWatch").type("cloudwatch")
        )
    )
    for widget in body["widgets"]:
        builder = builder.with_panel(_panel(widget))
    return json.dumps(builder.build(), cls=JSONEncoder, sort_keys=True, indent=2)
