"""EMF lines from the instance's Prometheus registry: the contract in docs/aws.md."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from flowhost.services import WebServiceSpec, endpoint
from flowhost.services.runtime import RuntimeSettings, create_app
from flowhost.services.runtime.emf import EmfPublisher, version_dimension
from flowhost.services.runtime.metrics import InstanceMetrics

BASE = ["Environment", "Service", "Version"]


class Output:
    """An injected writer: every flush's bytes, as parsed JSON lines."""

    def __init__(self) -> None:
        self.flushes: list[list[dict[str, Any]]] = []

    def __call__(self, data: bytes) -> None:
        self.flushes.append([json.loads(line) for line in data.decode().splitlines()])


def publisher(metrics: InstanceMetrics, output: Output, now: list[float]) -> EmfPublisher:
    return EmfPublisher(
        metrics,
        service="sentiment",
        version="v3",
        environment="prod",
        clock=lambda: now[0],
        write=output,
    )


def by_endpoint(lines: list[dict[str, Any]]) -> dict[str | None, dict[str, Any]]:
    return {line.get("Endpoint"): line for line in lines}


def test_flushes_follow_the_contract_and_send_deltas() -> None:
    metrics = InstanceMetrics("sentiment", ["predict", "ping"])
    predict = metrics.endpoints["predict"]
    for status, seconds in [(200, 0.003), (200, 0.02), (422, 0.0004), (500, 2.0), (503, 2000.0)]:
        predict.record(status, seconds, None if status < 400 else "some_error")
    metrics.endpoints["ping"].record(200, 0.001, None)
    predict.in_flight.inc()
    predict.in_flight.inc()
    metrics.ready.set(1)
    output, now = Output(), [1_700_000_000.5]
    emf = publisher(metrics, output, now)

    emf.flush()
    first = by_endpoint(output.flushes[0])
    assert set(first) == {"predict", "ping", None}  # one line per endpoint, one for the service
    for name, line in first.items():
        (directive,) = line["_aws"]["CloudWatchMetrics"]
        assert line["_aws"]["Timestamp"] == 1_700_000_000_500
        assert directive["Namespace"] == "flowhost/services"
        assert directive["Dimensions"] == [BASE if name is None else [*BASE, "Endpoint"]]
        assert (line["Environment"], line["Service"], line["Version"]) == ("prod", "sentiment", "3")
        assert len(directive["Metrics"]) <= 100
        for metric in directive["Metrics"]:
            assert metric["Name"] in line
        units = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
        expected = {
            "Requests": "Count",
            "ServerErrors": "Count",
            "ClientErrors": "Count",
            "InFlight": "Count",
            "RequestDuration": "Seconds",
        }
        assert units == expected | ({"ColdStarts": "Count"} if name is None else {})
    p, service = first["predict"], first[None]
    assert (p["Requests"], p["ServerErrors"], p["ClientErrors"], p["InFlight"]) == (5, 2, 1, 2)
    assert (first["ping"]["Requests"], first["ping"]["InFlight"]) == (1, 0)
    assert (service["Requests"], service["ServerErrors"], service["ClientErrors"]) == (6, 2, 1)
    assert service["ColdStarts"] == 1
    duration = p["RequestDuration"]
    assert sum(duration["Counts"]) == duration["Count"] == 5
    assert duration["Values"] == sorted(duration["Values"])
    assert duration["Values"][0] == 0.0005  # (0, 1 ms] sent at its midpoint
    assert duration["Max"] == 1200.0  # the unbounded bucket at its lower bound
    assert abs(duration["Sum"] - 2002.0234) < 1e-9  # the sum is exact
    assert sum(service["RequestDuration"]["Counts"]) == 6

    predict.record(200, 0.003, None)
    predict.in_flight.dec()
    now[0] += 60
    emf.flush()
    second = by_endpoint(output.flushes[1])
    p, service = second["predict"], second[None]
    assert (p["Requests"], p["ServerErrors"], p["ClientErrors"], p["InFlight"]) == (1, 0, 0, 1)
    assert p["RequestDuration"]["Counts"] == [1]
    assert p["RequestDuration"]["Values"] == [0.00375]  # (2.5 ms, 5 ms]
    assert second["ping"]["Requests"] == 0
    assert "RequestDuration" not in second["ping"]  # no requests, no distribution
    assert service["Requests"] == 1
    assert "ColdStarts" not in service
    assert second[None]["_aws"]["Timestamp"] == 1_700_000_060_500


def test_cold_start_waits_for_ready() -> None:
    metrics = InstanceMetrics("sentiment", ["predict"])
    output = Output()
    emf = publisher(metrics, output, [0.0])
    emf.flush()
    metrics.ready.set(1)
    emf.flush()
    emf.flush()
    cold = [by_endpoint(lines)[None].get("ColdStarts") for lines in output.flushes]
    assert cold == [None, 1, None]


def test_version_dimension_is_the_bare_number() -> None:
    assert version_dimension("v3") == "3"
    assert version_dimension("v12") == "12"
    assert version_dimension("dev") == "dev"


class Echo(WebServiceSpec):
    @endpoint
    def ping(self) -> dict[str, int]:
        return {"ok": 1}


def run_lifespan(settings: RuntimeSettings, output: Output | None = None) -> set[str]:
    """Start and stop the app's lifespan; the names of the tasks running once it started."""
    app = create_app(Echo, settings)
    if output is not None:
        assert app.emf is not None
        app.emf.write = output

    async def main() -> set[str]:
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        lifespan = asyncio.create_task(app({"type": "lifespan"}, inbox.get, sent.put))
        await inbox.put({"type": "lifespan.startup"})
        assert (await sent.get())["type"] == "lifespan.startup.complete"
        names = {task.get_name() for task in asyncio.all_tasks()}
        await inbox.put({"type": "lifespan.shutdown"})
        assert (await sent.get())["type"] == "lifespan.shutdown.complete"
        await lifespan
        return names

    return asyncio.run(main())


def test_default_settings_start_no_publisher() -> None:
    assert RuntimeSettings().metrics == "prometheus"
    assert create_app(Echo).emf is None
    assert "flowhost-emf" not in run_lifespan(RuntimeSettings())


def test_emf_settings_start_the_publisher_and_flush_at_shutdown() -> None:
    output = Output()
    names = run_lifespan(RuntimeSettings(metrics="emf", environment="prod", version="v3"), output)
    assert "flowhost-emf" in names
    (lines,) = output.flushes  # the final flush
    service = by_endpoint(lines)[None]
    assert (service["Environment"], service["Version"]) == ("prod", "3")
