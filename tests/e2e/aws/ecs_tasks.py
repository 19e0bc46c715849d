"""ECS emulation of standalone tasks: what Fargate does with ``RunTask``.

A task started with ``ecs:RunTask`` belongs to no service: the platform's environment
builds are such tasks (``startedBy`` ``flowhost-env-build``, the ``build`` container's
command overridden to name the digest). moto records them and runs nothing; worse, moto
moves a task one step towards STOPPED on every ``DescribeTasks``, so a caller following
a build would see it stop at once. ``RunTasks`` (driven by ``EcsEmulator.sync``) makes
them real:

- every task of the cluster that moto lists as desired RUNNING, and that no service
  started, is started once as a local process: one container per task (the one the
  override names, else the first essential one), its command from the container override,
  else the definition's (after its ``entryPoint``), ``python`` being this interpreter;
  its environment exactly as a service task's (``ecs_env.task_environment``: the image's
  ``ENV``, the task role's credentials, moto's endpoint, the container's ``environment``,
  then the override's, then its ``secrets`` resolved); its output in a log file of its own;
- at most ``concurrency`` run at once; the others wait, PENDING;
- a process that exits has its task stopped in moto with ECS's reason, ``Essential
  container in task exited (exit code N)``, its container's ``exitCode`` and the task's
  ``stopCode`` set, so ``DescribeTasks`` shows STOPPED with the exit code; a task that
  cannot start (a secret it cannot read) is stopped with ECS's start error; one that runs
  past ``timeout`` is sent SIGTERM, then SIGKILL after its container's ``stopTimeout``;
  a task someone stops with ``StopTask`` is sent SIGTERM likewise;
- ``finished`` keeps every task that ended (exit code, reason, log and its last lines).

While an emulator runs, moto's tasks keep the state they are given (RunTask's RUNNING,
StopTask's STOPPED) instead of advancing on every describe. With moto in this process the
emulation also sets PENDING and RUNNING, the exit code and the times, and fills two gaps
of moto's RunTask that ECS does not have: a container without its own ``memory`` (Fargate
takes the task's) and an ENI in a VPC without DNS hostnames.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.aws.ecs_env import TaskStartError, tail

__all__ = ["FinishedTask", "RunTask", "RunTasks", "TaskNotFinished"]

PYTHONS = ("python", "python3", "python3.11")  # the image's interpreter, by any name
_STATE_API = "/moto-api/state-manager/{}-transition"
_FOREVER = {"progression": "manual", "times": 1 << 62}  # never advance by itself
_holds: dict[str, int] = {}  # moto endpoint -> emulators holding the tasks' state
_holds_lock = threading.Lock()

# (definition, container, address, name, override environment) -> environment
Environment = Callable[[dict[str, Any], dict[str, Any], str, str, list[dict[str, Any]]],
                       dict[str, str]]  # fmt: skip


class TaskNotFinished(AssertionError):
    """``wait_finished`` ran out of time."""


@dataclass
class RunTask:
    """A task started with RunTask: pending until there is room, then its process."""

    arn: str
    task_definition: str
    started_by: str
    overrides: dict[str, Any]
    queued: float
    process: subprocess.Popen[bytes] | None = None
    command: tuple[str, ...] = ()
    log: Path | None = None
    address: str = ""
    started: float | None = None
    stopping_since: float | None = None
    stop_timeout: float = 30.0
    why_stopping: str = ""

    @property
    def id(self) -> str:
        return self.arn.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class FinishedTask:
    """A RunTask task that ended: how (``exit_code`` None: it never started)."""

    arn: str
    task_definition: str
    started_by: str
    command: tuple[str, ...]
    exit_code: int | None
    reason: str  # the stoppedReason moto shows
    log: Path | None
    tail: str = field(repr=False)

    def __str__(self) -> str:
        return f"task {self.arn} ({' '.join(self.command)}): {self.reason}\n{self.tail}"


class RunTasks:
    """The standalone tasks of one cluster; ``EcsEmulator`` owns one and syncs it."""

    def __init__(
        self,
        ecs: Any,
        endpoint: str,
        cluster: str,
        log_dir: Path,
        *,
        python: str,
        environment: Environment,
        address: Callable[[], str],
        concurrency: int = 2,
        timeout: float = 600.0,
    ) -> None:
        self.ecs, self.endpoint, self.cluster, self.log_dir = ecs, endpoint, cluster, log_dir
        self.python = python
        self.concurrency = concurrency
        self.timeout = timeout
        self.finished: list[FinishedTask] = []
        self.pending: list[RunTask] = []  # waiting for room, oldest first
        self.running: list[RunTask] = []
        self._environment = environment
        self._address = address
        self._seen: set[str] = set()
        self._definitions: dict[str, dict[str, Any]] = {}
        self._serial = 0
        _hold_task_states(endpoint)
        _fill_moto_gaps()

    @property
    def addresses(self) -> set[str]:
        return {t.address for t in self.running if t.address}

    def sync(self) -> None:
        """Pick up new tasks, stop those asked to stop, reap exits, start the waiting."""
        listed = self._list()  # oldest first, as moto keeps them
        wanted = set(listed)
        fresh = [arn for arn in listed if arn not in self._seen]
        for raw in self._describe(fresh):
            self._seen.add(str(raw["taskArn"]))
            if _belongs_to_service(raw):
                continue
            task = RunTask(str(raw["taskArn"]), str(raw["taskDefinitionArn"]),
                           str(raw.get("startedBy", "")), raw.get("overrides") or {},
                           time.monotonic())  # fmt: skip
            self.pending.append(task)
            _set(task.arn, _pending)
        for task in list(self.pending):
            if task.arn not in wanted:  # StopTask before it started
                self.pending.remove(task)
                self._finish(task, None, _stopped_reason(task.arn, "stopped before it started"))
        now = time.monotonic()
        for task in list(self.running):
            self._check(task, wanted, now)
        while self.pending and len(self.running) < self.concurrency:
            self._start(self.pending.pop(0))

    def wait_finished(self, arn: str, timeout: float, sync: Callable[[], None]) -> FinishedTask:
        deadline = time.monotonic() + timeout
        while True:
            sync()
            for done in self.finished:
                if done.arn == arn or done.arn.endswith(f"/{arn}"):
                    return done
            if time.monotonic() >= deadline:
                running = [t.arn for t in self.running]
                raise TaskNotFinished(f"task {arn}: not finished after {timeout:g}s "
                                      f"(running {running}, finished {self.finished})")  # fmt: skip
            time.sleep(0.2)

    def close(self) -> None:
        """SIGTERM every task, SIGKILL what is left after 10 s; release moto's states."""
        for task in self.running:
            if task.process is not None and task.process.poll() is None:
                task.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for task in self.running:
            if task.process is None:
                continue
            with contextlib.suppress(subprocess.TimeoutExpired):
                task.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            if task.process.poll() is None:
                task.process.kill()
                task.process.wait()
        self.running.clear()
        self.pending.clear()
        _release_task_states(self.endpoint)

    # -- moto ------------------------------------------------------------------------------

    def _list(self) -> list[str]:
        arns: list[str] = []
        pages = self.ecs.get_paginator("list_tasks").paginate(
            cluster=self.cluster, desiredStatus="RUNNING"
        )
        for page in pages:
            arns.extend(page["taskArns"])
        return arns

    def _describe(self, arns: list[str]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for i in range(0, len(arns), 100):
            answer = self.ecs.describe_tasks(cluster=self.cluster, tasks=arns[i : i + 100])
            found.extend(answer["tasks"])
        return found

    def _definition(self, arn: str) -> dict[str, Any]:
        if arn not in self._definitions:
            found = self.ecs.describe_task_definition(taskDefinition=arn)
            self._definitions[arn] = found["taskDefinition"]
        return self._definitions[arn]

    # -- tasks -----------------------------------------------------------------------------

    def _start(self, task: RunTask) -> None:
        self._serial += 1
        try:
            definition = self._definition(task.task_definition)
            container, override = _container(definition, task.overrides)
            command = [*container.get("entryPoint", []),
                       *(override.get("command") or container.get("command") or [])]  # fmt: skip
            if not command:
                raise TaskStartError(f"CannotStartContainerError: container "
                                     f"{container['name']} has no command")  # fmt: skip
            if command[0] in PYTHONS:
                command[0] = self.python
            task.address = self._address()
            name = f"run-{definition['family']}-{self._serial}"
            role = task.overrides.get("taskRoleArn") or definition.get("taskRoleArn")
            extra = override.get("environment") or []
            definition = {**definition, "taskRoleArn": role}
            env = self._environment(definition, container, task.address, name, extra)
        except (TaskStartError, KeyError, IndexError) as exc:
            reason = str(exc) if isinstance(exc, TaskStartError) else f"not started: {exc!r}"
            self._stop_in_moto(task, reason, code="TaskFailedToStart", exit_code=None)
            self._finish(task, None, reason)
            return
        task.command, task.log = tuple(command), self.log_dir / f"{name}.log"
        task.stop_timeout = float(container.get("stopTimeout", 30))
        with task.log.open("wb") as out:
            task.process = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=env["HOME"],
                start_new_session=True,
            )  # fmt: skip
        task.started = time.monotonic()
        self.running.append(task)
        _set(task.arn, _running)

    def _check(self, task: RunTask, wanted: set[str], now: float) -> None:
        assert task.process is not None
        assert task.started is not None
        code = task.process.poll()
        if code is not None:
            code = code if code >= 0 else 128 - code  # killed by signal N: 128 + N, as Docker
            self.running.remove(task)
            if task.arn not in wanted:  # stopped with StopTask: moto has its reason
                _set(task.arn, lambda record: _stopped(record, "UserInitiated", code))
                self._finish(task, code, _stopped_reason(task.arn, task.why_stopping))
                return
            reason = f"Essential container in task exited (exit code {code})"
            if task.why_stopping:
                reason = f"{task.why_stopping}; {reason}"
            self._stop_in_moto(task, reason, code="EssentialContainerExited", exit_code=code)
            self._finish(task, code, reason)
        elif task.stopping_since is not None:
            if now - task.stopping_since > task.stop_timeout:
                task.process.kill()
        elif task.arn not in wanted:
            self._terminate(task, "stopped with StopTask", now)
        elif now - task.started > self.timeout:
            self._terminate(task, f"ECS emulation: ran past its {self.timeout:g}s bound", now)

    def _terminate(self, task: RunTask, why: str, now: float) -> None:
        assert task.process is not None
        task.stopping_since, task.why_stopping = now, why
        task.process.send_signal(signal.SIGTERM)

    def _stop_in_moto(
        self, task: RunTask, reason: str, *, code: str, exit_code: int | None
    ) -> None:
        _set(task.arn, lambda record: _stopped(record, code, exit_code))
        self.ecs.stop_task(cluster=self.cluster, task=task.arn, reason=reason)

    def _finish(self, task: RunTask, code: int | None, reason: str) -> None:
        log_tail = tail(task.log) if task.log is not None else ""
        done = FinishedTask(task.arn, task.task_definition, task.started_by, task.command, code,
                            reason, task.log, log_tail)  # fmt: skip
        self.finished.append(done)


def _belongs_to_service(raw: dict[str, Any]) -> bool:
    """ECS's service scheduler starts its tasks as ``ecs-svc/...`` in group ``service:...``."""
    return str(raw.get("startedBy", "")).startswith("ecs-svc/") or str(
        raw.get("group", "")
    ).startswith("service:")


def _container(
    definition: dict[str, Any], overrides: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The container to run and its override: the one the override names, else the
    first essential one."""
    containers = {str(c["name"]): c for c in definition["containerDefinitions"]}
    named = [o for o in overrides.get("containerOverrides") or [] if o.get("name") in containers]
    if named:
        return containers[str(named[0]["name"])], named[0]
    essential = [c for c in containers.values() if c.get("essential", True)]
    if not essential:
        raise TaskStartError(f"task definition {definition.get('family')}: no essential container")
    return essential[0], {}


def _stopped_reason(arn: str, fallback: str) -> str:
    record = _moto_task(arn)
    return str(getattr(record, "stopped_reason", "") or fallback)


# -- moto's side -------------------------------------------------------------------------------


def _hold_task_states(endpoint: str) -> None:
    """moto advances a task on every DescribeTasks; while an emulator runs it must not."""
    with _holds_lock:
        if _holds.get(endpoint, 0) == 0:
            body = {"model_name": "ecs::task", "transition": _FOREVER}
            httpx.post(
                endpoint + _STATE_API.format("set"), json=body, timeout=10
            ).raise_for_status()
        _holds[endpoint] = _holds.get(endpoint, 0) + 1


def _release_task_states(endpoint: str) -> None:
    with _holds_lock:
        _holds[endpoint] = _holds.get(endpoint, 1) - 1
        if _holds[endpoint] > 0:
            return
        del _holds[endpoint]
        with contextlib.suppress(httpx.HTTPError):  # moto may already be gone
            httpx.post(endpoint + _STATE_API.format("unset"), json={"model_name": "ecs::task"},
                       timeout=10)  # fmt: skip


def _moto_task(arn: str) -> Any | None:
    """moto's own record of the task (moto in this process), else None."""
    try:
        from moto.ecs.models import ecs_backends  # pyright: ignore[reportMissingTypeStubs]
    except ImportError:
        return None
    parts = arn.split(":")
    if len(parts) < 6 or parts[4] not in ecs_backends or parts[3] not in ecs_backends[parts[4]]:
        return None
    for tasks in ecs_backends[parts[4]][parts[3]].tasks.values():
        if arn in tasks:
            return tasks[arn]
    return None


def _set(arn: str, change: Callable[[Any], None]) -> None:
    record = _moto_task(arn)
    if record is not None:
        change(record)


def _pending(record: Any) -> None:
    record.last_status = "PENDING"
    for container in record.containers:
        container.last_status = "PENDING"


def _running(record: Any) -> None:
    now = datetime.now(UTC)
    record.last_status = "RUNNING"
    record.pull_started_at = record.pull_stopped_at = record.started_at = now
    for container in record.containers:
        container.last_status = "RUNNING"


def _stopped(record: Any, code: str, exit_code: int | None) -> None:
    now = datetime.now(UTC)
    record.stop_code = code
    record.stopping_at = record.execution_stopped_at = record.stopped_at = now
    for container in record.containers:
        container.last_status = "STOPPED"
        container.exitCode = exit_code


_filled = False


def _fill_moto_gaps() -> None:
    """Two things moto's RunTask trips on and ECS does not (moto in this process only):
    a container definition without ``memory`` (Fargate gives it the task's), and an
    ENI in a VPC without DNS hostnames (it has no private DNS name then)."""
    global _filled
    if _filled:
        return
    try:
        from moto.ec2.models.elastic_network_interfaces import (  # pyright: ignore[reportMissingTypeStubs]
            NetworkInterface,
        )
        from moto.ecs.models import (  # pyright: ignore[reportMissingTypeStubs]
            EC2ContainerServiceBackend,
        )
    except ImportError:
        return
    _filled = True
    if not hasattr(NetworkInterface, "private_dns_name"):
        NetworkInterface.private_dns_name = None  # pyright: ignore[reportAttributeAccessIssue]
    backend: Any = EC2ContainerServiceBackend
    original = backend._calculate_task_resource_requirements

    def requirements(task_definition: Any) -> Any:
        keys = ("memory", "memoryReservation", "Memory", "MemoryReservation")
        given = task_definition.container_definitions
        task_definition.container_definitions = [
            c if any(c.get(k) is not None for k in keys) else {**c, "memory": 0} for c in given
        ]
        try:
            return original(task_definition)
        finally:
            task_definition.container_definitions = given

    backend._calculate_task_resource_requirements = staticmethod(requirements)
