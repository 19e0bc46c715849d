"""ECS emulation: what ECS and Fargate do with the services of one cluster in moto.

moto keeps ECS's records (services, desired counts, task definitions) but runs nothing.
``EcsEmulator`` watches a cluster's services (``sync()`` once, or ``start()`` a thread
that syncs every ``interval`` seconds) and, while a service wants more tasks than it has,
starts one: the real container bootstrap (``python -m flowhost.lambdas.aws.container``,
the image's command) as a local process, with exactly the environment a Fargate task's
container gets:

- the task definition's ``environment`` of the serving container (``service``), and its
  ``secrets`` resolved from Secrets Manager or SSM as ECS's agent does at start;
- the image's own ``ENV`` (the Dockerfile's last stage; ``HOME`` is the task's own dir);
- what ECS adds: the task role's credentials (an ``AssumeRole`` in moto),
  ``AWS_REGION``/``AWS_DEFAULT_REGION``, ``ECS_CONTAINER_METADATA_URI_V4``;
- what stands in for the task's own network namespace and disk: ``FLOWHOST_HOST`` (the
  task's ENI, a loopback address of its own: 127.0.0.2, 127.0.0.3, ..., so every task
  keeps the container port), ``FLOWHOST_CODE_DIR`` and ``TMPDIR`` under the task's dir,
  and ``AWS_ENDPOINT_URL`` (moto).

A task whose target group health check path (``/readyz``) answers 200 is registered in
the service's target groups (``RegisterTargets``), as ECS does for a healthy task. When
the desired count drops, a task is deregistered first, then sent SIGTERM, and killed
after its container's ``stopTimeout``. A task that exits by itself is deregistered and
reported (``stopped``: its exit code and last log lines) and replaced while the service
wants more, within ``restart_budget`` failures per service; past it the deployment
counts as FAILED, as ECS's circuit breaker marks it.

moto reports ``runningCount == desiredCount`` as soon as the count is set. When the moto
server runs in this process (``ThreadedMotoServer``), the emulator makes moto's view
honest: ``runningCount`` is the number of ready (registered) tasks, ``pendingCount`` the
started ones not ready yet, and the primary deployment's ``rolloutState`` is
IN_PROGRESS, COMPLETED or FAILED accordingly, so the control plane waits as it would on
AWS. With a moto server in another process, ``honest`` is False and the control plane
sees moto's instant count. Logs of every task go to ``log_dir``.

Tasks started with ``RunTask`` (no service: the platform's environment builds) run once
each, at most ``run_concurrency`` at a time, and are stopped in moto with their exit code
when their process ends (``ecs_tasks.py``; ``finished_tasks``, ``wait_task``).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.aws.ecs_env import (
    SERVING,
    StoppedTask,
    Task,
    TaskStartError,
    aws_client,
    environment_of,
    moto_service,
    port_free,
    tail,
    task_environment,
)
from tests.e2e.aws.ecs_tasks import FinishedTask, RunTask, RunTasks

__all__ = [
    "EcsEmulator",
    "FinishedTask",
    "RunTask",
    "StoppedTask",
    "Task",
    "TaskStartError",
    "environment_of",
]

BOOTSTRAP = ("-m", "flowhost.lambdas.aws.container")
_FIRST, _LAST = 2, 254  # 127.0.0.<n> addresses handed to tasks


@dataclass
class _Service:
    name: str
    failures: int = 0
    failed: bool = False
    tasks: list[Task] = field(default_factory=lambda: [])


class EcsEmulator:
    """Runs the tasks moto's services in ``cluster`` ask for; see the module docstring."""

    def __init__(
        self,
        moto_endpoint: str,
        cluster: str,
        log_dir: Path,
        *,
        region: str = "us-east-1",
        python: str = sys.executable,
        interval: float = 0.2,
        ready_timeout: float = 120.0,
        restart_budget: int = 3,
        run_concurrency: int = 2,
        run_timeout: float = 600.0,
    ) -> None:
        self.endpoint = moto_endpoint
        self.cluster = cluster
        self.log_dir = log_dir
        self.region = region
        self.python = python
        self.interval = interval
        self.ready_timeout = ready_timeout  # ECS's health grace: not ready by then -> stopped
        self.restart_budget = restart_budget
        self.stopped: list[StoppedTask] = []  # tasks that ended on their own, oldest first
        self.errors: list[str] = []  # exceptions of the background thread
        self.honest = False  # moto's runningCount follows the ready tasks (in-process moto)
        self._services: dict[str, _Service] = {}
        self._definitions: dict[str, dict[str, Any]] = {}
        self._ecs = aws_client("ecs", moto_endpoint, region)
        self._elb = aws_client("elbv2", moto_endpoint, region)
        self._lock = threading.RLock()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._serial = 0
        self._http = httpx.Client(timeout=1.0)
        self._runs = RunTasks(
            self._ecs, moto_endpoint, cluster, log_dir, python=python,
            environment=self._run_environment, address=lambda: self._address(0),
            concurrency=run_concurrency, timeout=run_timeout,
        )  # fmt: skip

    # -- public ------------------------------------------------------------------------

    def start(self) -> EcsEmulator:
        """Sync in a background thread every ``interval`` seconds until ``close()``."""
        self._thread = threading.Thread(target=self._loop, name="ecs-emulator", daemon=True)
        self._thread.start()
        return self

    def tasks(self, service: str | None = None) -> list[Task]:
        """The tasks running now (ready or starting; not those being stopped)."""
        with self._lock:
            return [
                t
                for s in self._services.values()
                if service is None or s.name == service
                for t in s.tasks
                if t.stopping_since is None
            ]

    @property
    def finished_tasks(self) -> list[FinishedTask]:
        """RunTask tasks that ended (exit code, stop reason, log), oldest first."""
        return list(self._runs.finished)

    def run_tasks(self) -> list[RunTask]:
        """RunTask tasks running now, then those waiting for room."""
        with self._lock:
            return [*self._runs.running, *self._runs.pending]

    def wait_task(self, arn: str, timeout: float = 600.0) -> FinishedTask:
        """Sync until the RunTask task ``arn`` (or its id) has ended; how it ended."""
        return self._runs.wait_finished(arn, timeout, self.sync)

    def ready(self, service: str) -> list[Task]:
        return [t for t in self.tasks(service) if t.ready]

    def wait_ready(self, service: str, count: int, timeout: float = 120.0) -> list[Task]:
        """Sync until ``service`` has ``count`` ready tasks (and no other running)."""
        deadline = time.monotonic() + timeout
        while True:
            self.sync()
            found = self.tasks(service)
            if len(found) == count and all(t.ready for t in found):
                return found
            if time.monotonic() >= deadline:
                stopped = "\n".join(str(s) for s in self.stopped if s.service == service)
                raise AssertionError(
                    f"{service}: {len([t for t in found if t.ready])} of {count} tasks ready "
                    f"after {timeout:g}s ({len(found)} running). Stopped tasks:\n{stopped}"
                )
            time.sleep(self.interval)

    def wait_gone(self, service: str, timeout: float = 60.0) -> None:
        """Sync until no task of ``service`` runs or stops any more."""
        deadline = time.monotonic() + timeout
        while True:
            self.sync()
            with self._lock:
                left = self._services.get(service)
                if left is None or not left.tasks:
                    return
            if time.monotonic() >= deadline:
                raise AssertionError(f"{service}: tasks still alive after {timeout:g}s")
            time.sleep(self.interval)

    def sync(self) -> None:
        """One pass: read every service of the cluster, start, check and stop tasks. A
        service that is gone (deleted) has its tasks stopped."""
        with self._lock:
            seen: set[str] = set()
            for raw in self._describe_services():
                seen.add(str(raw["serviceName"]))
                try:  # one service's trouble never stalls the others
                    self._reconcile(raw)
                except Exception as exc:
                    self.errors.append(f"{raw['serviceName']}: {type(exc).__name__}: {exc}")
            for service in self._services.values():
                if service.name not in seen:
                    self._check(service)
                    for task in [t for t in service.tasks if t.stopping_since is None]:
                        self._stop(task)
            try:
                self._runs.sync()
            except Exception as exc:
                self.errors.append(f"RunTask tasks: {type(exc).__name__}: {exc}")

    def close(self) -> None:
        """Stop the thread and every task (SIGTERM, then SIGKILL), even after a failure."""
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            tasks = [t for s in self._services.values() for t in s.tasks]
            for task in tasks:
                if task.process.poll() is None:
                    task.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10
            for task in tasks:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    task.process.wait(timeout=max(0.1, deadline - time.monotonic()))
                if task.process.poll() is None:
                    task.process.kill()
                    task.process.wait()
            for service in self._services.values():
                service.tasks.clear()
            self._runs.close()
        self._http.close()
        self._ecs.close()
        self._elb.close()

    def __enter__(self) -> EcsEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the loop --------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                self.sync()
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def _describe_services(self) -> Iterator[dict[str, Any]]:
        arns: list[str] = []
        for page in self._ecs.get_paginator("list_services").paginate(cluster=self.cluster):
            arns.extend(page["serviceArns"])
        for i in range(0, len(arns), 10):
            found = self._ecs.describe_services(cluster=self.cluster, services=arns[i : i + 10])
            yield from found["services"]

    def _reconcile(self, raw: dict[str, Any]) -> None:
        name = str(raw["serviceName"])
        service = self._services.setdefault(name, _Service(name))
        active = raw.get("status") == "ACTIVE"
        desired = int(raw.get("desiredCount", 0)) if active else 0
        current = str(raw.get("taskDefinition", ""))
        self._check(service)
        live = [t for t in service.tasks if t.stopping_since is None]
        fresh = [t for t in live if t.task_definition == current]
        # A new task definition rolls out: old tasks go once the new ones are ready.
        if sum(t.ready for t in fresh) >= desired:
            for task in [t for t in live if t.task_definition != current]:
                self._stop(task)
        # Scale in: tasks not ready yet go first, then the newest.
        excess = len(fresh) - desired
        for task in sorted(fresh, key=lambda t: (t.ready, -t.started))[: max(0, excess)]:
            self._stop(task)
        # Scale out, within the restart budget.
        for _ in range(max(0, desired - len(fresh))):
            if service.failed:
                break
            self._launch(service, raw, current)
        self._report(service, raw, desired)

    # -- tasks -----------------------------------------------------------------------------

    def _definition(self, arn: str) -> dict[str, Any]:
        if arn not in self._definitions:
            found = self._ecs.describe_task_definition(taskDefinition=arn)
            self._definitions[arn] = found["taskDefinition"]
        return self._definitions[arn]

    def _address(self, port: int) -> str:
        taken = {t.address for s in self._services.values() for t in s.tasks}
        taken |= self._runs.addresses
        for n in range(_FIRST, _LAST + 1):
            address = f"127.0.0.{n}"
            if address not in taken and port_free(address, port):
                return address
        raise TaskStartError(f"no free loopback address for port {port}")

    def _launch(self, service: _Service, raw: dict[str, Any], arn: str) -> None:
        definition = self._definition(arn)
        containers = {c["name"]: c for c in definition["containerDefinitions"]}
        try:
            container = containers[SERVING]
            port = int(container["portMappings"][0]["containerPort"])
            balancers = [
                b for b in raw.get("loadBalancers") or [] if b.get("containerName") == SERVING
            ]
            groups = tuple(str(b["targetGroupArn"]) for b in balancers)
            health = "/readyz"
            if groups:
                described = self._elb.describe_target_groups(TargetGroupArns=[groups[0]])
                health = described["TargetGroups"][0].get("HealthCheckPath") or "/"
            address = self._address(port)
            env = self._environment(definition, container, address, service.name)
        except (KeyError, IndexError, TaskStartError) as exc:
            self._failed(service, StoppedTask(service.name, "-", None, f"not started: {exc}",
                                              self.log_dir, ""))  # fmt: skip
            return
        self._serial += 1
        log = self.log_dir / f"{service.name}-{self._serial}-{address}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [self.python, *BOOTSTRAP], env=env, stdout=out, stderr=subprocess.STDOUT,
                cwd=env["HOME"], start_new_session=True,
            )  # fmt: skip
        service.tasks.append(
            Task(service.name, arn, address, port, process, log, time.monotonic(), health,
                 groups, stop_timeout=float(container.get("stopTimeout", 30)))
        )  # fmt: skip

    def _environment(
        self, definition: dict[str, Any], container: dict[str, Any], address: str, service: str
    ) -> dict[str, str]:
        return task_environment(
            python=self.python, home=self.log_dir / f"{service}-{self._serial + 1}-{address}.home",
            endpoint=self.endpoint, region=self.region, role_arn=definition.get("taskRoleArn"),
            container=container, address=address, metadata_id=f"{service}-{address}",
        )  # fmt: skip

    def _run_environment(
        self, definition: dict[str, Any], container: dict[str, Any], address: str, name: str,
        overrides: list[dict[str, Any]],
    ) -> dict[str, str]:  # fmt: skip
        return task_environment(
            python=self.python, home=self.log_dir / f"{name}.home", endpoint=self.endpoint,
            region=self.region, role_arn=definition.get("taskRoleArn"), container=container,
            address=address, metadata_id=name, overrides=overrides,
        )  # fmt: skip

    def _check(self, service: _Service) -> None:
        """Readiness of starting tasks, exits, and kills of tasks past their stop timeout."""
        now = time.monotonic()
        for task in list(service.tasks):
            code = task.process.poll()
            if task.stopping_since is not None:
                if code is None and now - task.stopping_since > task.stop_timeout:
                    task.process.kill()
                elif code is not None:
                    service.tasks.remove(task)
                continue
            if code is not None:
                self._deregister(task)
                service.tasks.remove(task)
                self._failed(service, StoppedTask(
                    service.name, task.address, code, f"exited with {code}", task.log,
                    tail(task.log)))  # fmt: skip
            elif not task.ready and self._healthy(task):
                task.ready = True
                service.failures = 0
                for group in task.target_groups:
                    self._elb.register_targets(TargetGroupArn=group, Targets=[task.target])
            elif not task.ready and now - task.started > self.ready_timeout:
                self._stop(task)
                why = f"not ready within {self.ready_timeout:g}s"
                self._failed(service, StoppedTask(
                    service.name, task.address, None, why, task.log, tail(task.log)))  # fmt: skip

    def _healthy(self, task: Task) -> bool:
        try:
            answer = self._http.get(f"http://{task.address}:{task.port}{task.health_path}")
        except httpx.HTTPError:
            return False
        return answer.status_code == 200

    def _failed(self, service: _Service, stopped: StoppedTask) -> None:
        self.stopped.append(stopped)
        service.failures += 1
        service.failed = service.failures >= self.restart_budget

    def _deregister(self, task: Task) -> None:
        if task.ready:
            for group in task.target_groups:
                # A group deleted with its version has nothing left to deregister from.
                with contextlib.suppress(self._elb.exceptions.TargetGroupNotFoundException):
                    self._elb.deregister_targets(TargetGroupArn=group, Targets=[task.target])
            task.ready = False

    def _stop(self, task: Task) -> None:
        """Deregister (no new requests), then SIGTERM; ``_check`` kills it after its
        stop timeout."""
        self._deregister(task)
        task.stopping_since = time.monotonic()
        if task.process.poll() is None:
            task.process.send_signal(signal.SIGTERM)

    # -- moto's view -------------------------------------------------------------------------

    def _report(self, service: _Service, raw: dict[str, Any], desired: int) -> None:
        """Make moto's counts and rollout state follow the tasks (in-process moto only)."""
        record = moto_service(raw)
        if record is None:
            self.honest = False
            return
        self.honest = True
        live = [t for t in service.tasks if t.stopping_since is None]
        running = sum(t.ready for t in live)
        record.emulated = (running, len(live) - running)
        state = "FAILED" if service.failed else "COMPLETED" if running == desired else "IN_PROGRESS"
        for deployment in record.deployments[:1]:
            deployment.update(
                desiredCount=desired, runningCount=running, pendingCount=len(live) - running,
                rolloutState=state, rolloutStateReason=f"ECS emulation: {state.lower()}.",
                failedTasks=service.failures,
            )  # fmt: skip
        if service.failed and desired == 0:
            service.failed, service.failures = False, 0  # scaled to zero: a fresh start later
