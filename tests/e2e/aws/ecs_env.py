"""The ECS emulation's tasks (``ecs.py``) and what it gives them besides the task
definition's own ``environment``: the image's ``ENV``, the task role's credentials, the
container's ``secrets`` resolved as ECS's agent does; and the in-process moto record it
keeps honest.
"""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

__all__ = [
    "SERVING",
    "StoppedTask",
    "Task",
    "TaskStartError",
    "aws_client",
    "environment_of",
    "image_environment",
    "moto_service",
    "port_free",
    "resolve_secrets",
    "tail",
    "task_environment",
    "task_role_credentials",
]

SERVING = "service"  # the serving container's name (flowhost.infra's SERVING)
DOCKERFILE = Path(__file__).resolve().parents[3] / "Dockerfile"
_SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


class TaskStartError(Exception):
    """ECS could not start the task (a secret it cannot read, no address, no container)."""


@dataclass
class Task:
    """One running task: its process, address, and where it stands."""

    service: str
    task_definition: str
    address: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    started: float
    health_path: str
    target_groups: tuple[str, ...]
    ready: bool = False
    stopping_since: float | None = None
    stop_timeout: float = 30.0

    @property
    def target(self) -> dict[str, Any]:
        return {"Id": self.address, "Port": self.port}


@dataclass(frozen=True)
class StoppedTask:
    """A task that ended on its own (or never became ready): why, for assertions."""

    service: str
    address: str
    exit_code: int | None
    reason: str
    log: Path
    tail: str  # its last log lines

    def __str__(self) -> str:
        return f"{self.service} task at {self.address}: {self.reason}\n{self.tail}"


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def port_free(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def environment_of(task: Task) -> dict[str, str]:
    """The environment the task's process runs with (read back from /proc on Linux)."""
    raw = Path(f"/proc/{task.process.pid}/environ").read_bytes()
    pairs = (item.partition(b"=") for item in raw.split(b"\0") if item)
    return {k.decode(): v.decode() for k, _, v in pairs}


def aws_client(service: str, endpoint: str, region: str, **credentials: str) -> Any:
    """A boto3 client against moto (credentials: moto's fake ones unless given)."""
    return boto3.client(  # pyright: ignore[reportCallIssue, reportUnknownMemberType]
        service,  # pyright: ignore[reportArgumentType]
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=credentials.get("key", "testing"),
        aws_secret_access_key=credentials.get("secret", "testing"),
    )


def image_environment(python: str, dockerfile: Path = DOCKERFILE) -> dict[str, str]:
    """The runtime image's ``ENV`` (the Dockerfile's last stage), with ``PATH`` leading to
    ``python``'s directory instead of the image's venv (``/opt/flowhost/bin``)."""
    lines = dockerfile.read_text().splitlines()
    last = max(i for i, line in enumerate(lines) if line.upper().startswith("FROM "))
    env: dict[str, str] = {}
    statement = ""
    for line in lines[last + 1 :]:
        statement += line.rstrip().removesuffix("\\") + " "
        if line.rstrip().endswith("\\"):
            continue
        if statement.upper().startswith("ENV "):
            for pair in shlex.split(statement[4:]):
                key, _, value = pair.partition("=")
                env[key] = value
        statement = ""
    bin_dir = str(Path(python).parent)
    env["PATH"] = env.get("PATH", "$PATH").replace("/opt/flowhost/bin", bin_dir)
    env["PATH"] = env["PATH"].replace("$PATH", _SYSTEM_PATH)
    return env


def task_role_credentials(sts: Any, role_arn: str | None, session: str) -> dict[str, str]:
    """What ECS's credential endpoint would hand the task: the task role's temporary
    credentials (an AssumeRole in moto). No task role: no credentials, as on ECS.
    Fargate has no instance metadata service; the variable says so to botocore."""
    env = {"AWS_EC2_METADATA_DISABLED": "true"}
    if not role_arn:
        return env
    try:
        found = sts.assume_role(RoleArn=role_arn, RoleSessionName=session.replace(".", "-"))
    except (ClientError, BotoCoreError) as exc:
        raise TaskStartError(f"task role {role_arn}: AssumeRole failed ({exc})") from None
    credentials = found["Credentials"]
    env.update(
        AWS_ACCESS_KEY_ID=credentials["AccessKeyId"],
        AWS_SECRET_ACCESS_KEY=credentials["SecretAccessKey"],
        AWS_SESSION_TOKEN=credentials["SessionToken"],
    )
    return env


def _secret(client: Any, value_from: str) -> str:
    """``arn:aws:secretsmanager:<region>:<account>:secret:<name>[:json-key[:stage[:id]]]``"""
    parts = value_from.split(":")
    arn, extra = ":".join(parts[:7]), [*parts[7:], "", "", ""][:3]
    key, stage, version = extra
    args: dict[str, str] = {"SecretId": arn}
    if stage:
        args["VersionStage"] = stage
    if version:
        args["VersionId"] = version
    text = str(client.get_secret_value(**args)["SecretString"])
    return str(json.loads(text)[key]) if key else text


def resolve_secrets(endpoint: str, region: str, secrets: list[dict[str, Any]]) -> dict[str, str]:
    """The container's ``secrets`` as ECS's agent injects them: Secrets Manager ARNs
    (with an optional JSON key, stage, version), SSM parameter ARNs or names."""
    env: dict[str, str] = {}
    for item in secrets:
        name, value_from = str(item["name"]), str(item["valueFrom"])
        try:
            if ":secretsmanager:" in value_from:
                env[name] = _secret(aws_client("secretsmanager", endpoint, region), value_from)
            else:
                parameter = value_from.split(":parameter", 1)[-1]
                ssm = aws_client("ssm", endpoint, region)
                found = ssm.get_parameter(Name=parameter, WithDecryption=True)
                env[name] = str(found["Parameter"]["Value"])
        except (ClientError, BotoCoreError, KeyError, ValueError) as exc:
            raise TaskStartError(
                f"ResourceInitializationError: unable to pull secret {name} from "
                f"{value_from} ({type(exc).__name__}: {exc})"
            ) from None
    return env


def task_environment(
    *,
    python: str,
    home: Path,
    endpoint: str,
    region: str,
    role_arn: str | None,
    container: dict[str, Any],
    address: str,
    metadata_id: str,
    overrides: Sequence[dict[str, Any]] = (),
) -> dict[str, str]:
    """Everything a Fargate task's container starts with, in ECS's order: the image's
    ``ENV``; what ECS adds (the task role's credentials, region, metadata URI) and what
    stands in for the task's network and disk (``FLOWHOST_HOST``; ``HOME``, ``TMPDIR``,
    ``FLOWHOST_CODE_DIR`` and ``FLOWHOST_ENV_CACHE`` under ``home``; ``AWS_ENDPOINT_URL``);
    the container's ``environment``, then a RunTask override's ``environment`` (``overrides``); its
    ``secrets`` resolved. Raises TaskStartError where ECS would not start the task."""
    home.mkdir(parents=True, exist_ok=True)
    env = image_environment(python)
    env.update(HOME=str(home), TMPDIR=str(home))
    sts = aws_client("sts", endpoint, region)
    try:
        credentials = task_role_credentials(sts, role_arn, address)
    finally:
        sts.close()
    env.update(
        credentials,
        AWS_REGION=region,
        AWS_DEFAULT_REGION=region,
        AWS_ENDPOINT_URL=endpoint,
        ECS_CONTAINER_METADATA_URI_V4=f"http://169.254.170.2/v4/{metadata_id}",
        FLOWHOST_HOST=address,
        FLOWHOST_CODE_DIR=str(home / "code"),
        FLOWHOST_ENV_CACHE=str(home / "envs"),  # the task's own disk, as on Fargate
    )
    for item in [*container.get("environment", []), *overrides]:
        env[str(item["name"])] = str(item["value"])
    env.update(resolve_secrets(endpoint, region, container.get("secrets", [])))
    return env


# -- moto's record of a service, when moto runs in this process ----------------------------


def _honest(base: type) -> type:
    """A subclass of moto's Service whose counts come from the emulation once it set them
    (``emulated = (running, pending)``); moto's own writes are kept aside."""

    def getter(index: int, name: str) -> Any:
        def get(self: Any) -> int:
            emulated = self.__dict__.get("emulated")
            return int(emulated[index]) if emulated else int(self.__dict__.get(name, 0))

        def put(self: Any, value: int) -> None:
            self.__dict__[name] = value

        return property(get, put)

    return type(
        "EmulatedService",
        (base,),
        {
            "running_count": getter(0, "_moto_running"),
            "pending_count": getter(1, "_moto_pending"),
        },
    )


_HONEST: dict[type, type] = {}


def moto_service(raw: dict[str, Any]) -> Any | None:
    """moto's own record of the service ``raw`` describes, made to report the emulation's
    counts; None when moto runs in another process (or not at all here)."""
    try:
        from moto.ecs.models import ecs_backends  # pyright: ignore[reportMissingTypeStubs]
    except ImportError:
        return None
    arn = str(raw.get("serviceArn", ""))
    parts = arn.split(":")
    if len(parts) < 6:
        return None
    region, account = parts[3], parts[4]
    cluster = str(raw.get("clusterArn", "")).rsplit("/", 1)[-1]
    if account not in ecs_backends or region not in ecs_backends[account]:
        return None
    record = ecs_backends[account][region].services.get(f"{cluster}:{raw['serviceName']}")
    if record is None:
        return None
    if type(record).__name__ != "EmulatedService":
        base = type(record)
        running, pending = record.running_count, record.pending_count
        record.__class__ = _HONEST.setdefault(base, _honest(base))
        record.running_count, record.pending_count = running, pending
    return record
