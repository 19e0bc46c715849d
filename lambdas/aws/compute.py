"""The Compute port on ECS: each version is one ECS service whose desired count we set.

``EcsCompute`` sets a service's desired count and reads back what ECS reports: running
and pending tasks, the primary deployment's rollout state and the latest service
events (where ECS says why tasks do not start: no capacity, image pull errors, failing
health checks). The ECS service itself, its task definition and target group are
created by the user stack (``flowhost.infra.ServiceSpec``); this module never creates
or deletes one.

The boto3 ECS client is typed ``Any``: the project installs boto3 stubs for S3 and SQS
only. Everything read from it is checked into ``ServiceStatus`` here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flowhost.errors import DeployError, NotFoundError
from flowhost.lambdas.aws.errors import AwsError, aws_errors

__all__ = ["EcsCompute", "ServiceStatus"]

_MISSING = ("ServiceNotFoundException", "ClusterNotFoundException")
_EVENTS_KEPT = 5


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    """One ECS service as ``DescribeServices`` reports it."""

    cluster: str
    name: str
    status: str  # ACTIVE, DRAINING or INACTIVE
    desired: int
    running: int
    pending: int
    rollout: str | None  # the PRIMARY deployment's rolloutState: IN_PROGRESS, COMPLETED, FAILED
    rollout_reason: str | None
    target_group_arns: tuple[str, ...]
    events: tuple[str, ...]  # the latest service event messages, newest first

    @classmethod
    def from_description(cls, cluster: str, raw: Mapping[str, Any]) -> ServiceStatus:
        deployments: list[Mapping[str, Any]] = list(raw.get("deployments") or [])
        primary = next((d for d in deployments if d.get("status") == "PRIMARY"), None)
        events: list[Mapping[str, Any]] = list(raw.get("events") or [])
        balancers: list[Mapping[str, Any]] = list(raw.get("loadBalancers") or [])
        return cls(
            cluster=cluster,
            name=str(raw.get("serviceName", "")),
            status=str(raw.get("status", "")),
            desired=int(raw.get("desiredCount", 0)),
            running=int(raw.get("runningCount", 0)),
            pending=int(raw.get("pendingCount", 0)),
            rollout=None if primary is None else primary.get("rolloutState"),
            rollout_reason=None if primary is None else primary.get("rolloutStateReason"),
            target_group_arns=tuple(
                str(b["targetGroupArn"]) for b in balancers if b.get("targetGroupArn")
            ),
            events=tuple(str(e.get("message", "")) for e in events[:_EVENTS_KEPT]),
        )

    @property
    def at_zero(self) -> bool:
        """Nothing runs or starts: routes to this service belong on the activator."""
        return self.desired == 0 and self.running == 0 and self.pending == 0

    @property
    def steady(self) -> bool:
        """ECS has reached the desired count and is not rolling anything out."""
        return (
            self.status == "ACTIVE"
            and self.running == self.desired
            and self.pending == 0
            and self.rollout in (None, "COMPLETED")
        )

    @property
    def failed(self) -> bool:
        """The rollout failed (the deployment circuit breaker tripped)."""
        return self.rollout == "FAILED"

    def describe(self) -> str:
        """One line for progress messages and errors."""
        line = (
            f"{self.running}/{self.desired} running, {self.pending} pending"
            f", rollout {self.rollout or 'unknown'}"
        )
        return line + (f" ({self.rollout_reason})" if self.rollout == "FAILED" else "")


class EcsCompute:
    """Desired counts and health of the ECS services in one cluster."""

    def __init__(
        self,
        client: Any,
        cluster: str,
        *,
        start_timeout: float = 600.0,
        poll_interval: float = 5.0,
    ) -> None:
        self.client: Any = client
        self.cluster = cluster
        self.start_timeout = start_timeout  # seconds wait_until_running waits
        self.poll_interval = poll_interval

    def _where(self, service: str) -> str:
        return f"ECS service {service!r} in cluster {self.cluster!r}"

    def _missing_fix(self, service: str) -> str:
        return (
            f"Create it with ServiceSpec in the user stack (pulumi up), or check the "
            f"cluster name and region; ECS services are per version, named like {service!r}"
        )

    def status(self, service: str) -> ServiceStatus:
        where = self._where(service)
        with aws_errors(
            where, "DescribeServices", missing=_MISSING, missing_fix=self._missing_fix(service)
        ):
            found = self.client.describe_services(cluster=self.cluster, services=[service])
        services: list[Mapping[str, Any]] = found.get("services") or []
        if not services or services[0].get("status") == "INACTIVE":
            failures: list[Mapping[str, Any]] = found.get("failures") or [{}]
            reason = str(failures[0].get("reason", "INACTIVE"))
            raise NotFoundError(f"{where}: not found (got {reason}). {self._missing_fix(service)}.")
        return ServiceStatus.from_description(self.cluster, services[0])

    def set_desired(self, service: str, count: int) -> ServiceStatus:
        """Ask ECS for ``count`` tasks; returns the service as ECS reports it right after."""
        if count < 0:
            raise ValueError(f"{self._where(service)}: desired count must be >= 0 (got {count}).")
        with aws_errors(
            self._where(service),
            "UpdateService",
            missing=_MISSING,
            missing_fix=self._missing_fix(service),
        ):
            found = self.client.update_service(
                cluster=self.cluster, service=service, desiredCount=count
            )
        return ServiceStatus.from_description(self.cluster, found["service"])

    async def wait_until_running(
        self,
        service: str,
        count: int,
        *,
        progress: Callable[[str], None] | None = None,
    ) -> ServiceStatus:
        """Poll until at least ``count`` tasks run; ``DeployError`` (with ECS's latest
        events) when the rollout fails or ``start_timeout`` seconds pass first."""
        timeout, interval = self.start_timeout, self.poll_interval
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            try:
                current = await asyncio.to_thread(self.status, service)
            except AwsError:  # throttled or a network blip: try again until the deadline
                if time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(interval)
                continue
            line = current.describe()
            if progress is not None and line != last:
                progress(f"{service}: {line}")
                last = line
            if current.running >= count:
                return current
            if current.failed or time.monotonic() >= deadline:
                why = "the rollout failed" if current.failed else f"not running within {timeout:g}s"
                raise DeployError(self.failure(current, why))
            await asyncio.sleep(interval)

    def failure(self, status: ServiceStatus, why: str) -> str:
        """The message of a version that does not start: what ECS reports and its events."""
        events = "; ".join(status.events[:3]) or "no service events"
        return (
            f"{self._where(status.name)}: {why} (got {status.describe()}). ECS says: {events}. "
            "Check the task's logs, image and health check, and the cluster's capacity."
        )
