"""The scaler on AWS, run on a schedule: idle versions go to zero, queued work wakes
versions at zero, and the async sweep (expiry, dead letters, callbacks) runs.

Scaling out between one and ``max_instances`` is Application Auto Scaling's job (target
tracking on requests per target, step scaling on the queue: see the ServiceSpec
component); this tick only does what it cannot: leave zero for queued work, and reach
zero after ``idle_timeout`` without requests (ALB ``RequestCount`` for the version's
target group) and with an empty queue.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flowhost.errors import NotFoundError
from flowhost.lambdas.async_requests import AsyncRequests, QueueProvider
from flowhost.lambdas.aws.fleet import EcsFleet
from flowhost.lambdas.deployments import Deployments
from flowhost.lambdas.store import StateStore, VersionRecord

__all__ = ["AwsScaler", "TickReport", "metric_dimension"]

log = logging.getLogger("flowhost.scaler")


def metric_dimension(arn: str) -> str:
    """CloudWatch's name for a load balancer or target group: the ARN's resource part
    (``app/name/id``, ``targetgroup/name/id``); a listener ARN gives its balancer's."""
    resource = arn.split(":", 5)[-1]
    if resource.startswith("listener/"):
        return "/".join(resource.split("/")[1:4])
    return resource


_RETIRED = ("undeployed", "failed")
_SWEPT = 50


@dataclass
class TickReport:
    woken: list[str] = field(default_factory=list[str])
    deploys_unfinished: int = 0
    parked: list[str] = field(default_factory=list[str])
    skipped: list[str] = field(default_factory=list[str])
    unretired: int = 0  # retired versions whose resources could not all go yet


class AwsScaler:
    def __init__(
        self,
        store: StateStore,
        fleet: EcsFleet,
        queues: QueueProvider,
        cloudwatch: Any,
        requests: AsyncRequests,
        *,
        listener_arn: str,
        clock: Callable[[], float] = time.time,
        deployments: Deployments | None = None,
    ) -> None:
        """``deployments``: advance unfinished deploys once per tick (the safety net under
        the API function's self-invocations)."""
        self.store = store
        self.fleet = fleet
        self.queues = queues
        self.cloudwatch = cloudwatch
        self.requests = requests
        self.balancer = metric_dimension(listener_arn)
        self.clock = clock
        self.deployments = deployments

    def requests_since(self, target_group_arn: str, seconds: float) -> float:
        """ALB requests the target group received in the last ``seconds``."""
        now = self.clock()
        found = self.cloudwatch.get_metric_statistics(
            Namespace="AWS/ApplicationELB",
            MetricName="RequestCount",
            Dimensions=[
                {"Name": "TargetGroup", "Value": metric_dimension(target_group_arn)},
                {"Name": "LoadBalancer", "Value": self.balancer},
            ],
            StartTime=datetime.fromtimestamp(now - seconds, UTC),
            EndTime=datetime.fromtimestamp(now + 60, UTC),  # the current minute's period too
            Period=60,
            Statistics=["Sum"],
        )
        return float(sum(p.get("Sum", 0.0) for p in found.get("Datapoints", [])))

    async def tick(self) -> TickReport:
        report = TickReport()
        if self.deployments is not None:
            try:
                report.deploys_unfinished = await self.deployments.advance()
            except Exception:  # scaling goes on; the next tick or invocation retries
                log.exception("advancing deploys failed")
        versions = self.store.all_versions()
        for version in versions:
            if version.status == "ready":
                await self._evaluate(version, report)
        retired = sorted((v for v in versions if v.status in _RETIRED), key=lambda v: v.created_at)
        try:  # the newest retired versions: older ones were swept by earlier ticks
            report.unretired = self.fleet.sweep([(v.service, v.number) for v in retired[-_SWEPT:]])
        except Exception:
            log.exception("sweeping retired versions failed")
        await self.requests.tick()
        return report

    async def _evaluate(self, version: VersionRecord, report: TickReport) -> None:
        key, service, number = (
            f"{version.service}@v{version.number}",
            version.service,
            version.number,
        )
        try:
            target, status = self.fleet.target_group(service, number)
            queued = self.queues.queue(service, number).depth().total
        except NotFoundError:  # no ECS service or queue (yet): the user stack owns them
            report.skipped.append(key)
            return
        scaling = version.definition.scaling
        if status.at_zero and queued > 0:
            await self.fleet.wake(service, number)
            report.woken.append(key)
        elif (
            not status.at_zero
            and scaling.min_instances == 0
            and queued == 0
            and self.requests_since(target, scaling.idle_timeout) == 0
        ):
            self.fleet.park(service, number)
            report.parked.append(key)
        if report.woken[-1:] == [key] or report.parked[-1:] == [key]:
            log.info("scaled", extra={"fields": {"version": key, "queued": queued}})
