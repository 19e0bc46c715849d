"""``pulumi up`` into moto: a stack's program run under Pulumi mocks that create what it
declares in the emulated account, and return the real ids and outputs.

:class:`StackBridge` runs a program (the platform's ``flowhost.infra.main``, or a user stack
of ``ServiceSpec``) with mocks whose ``new_resource`` creates the resource in moto (server
mode, through boto3) for the types the journey needs (see :mod:`tests.e2e.aws.creators`),
starts a TLS PostgreSQL for an RDS instance (its managed master-user secret in moto's
Secrets Manager), registers Lambda functions with the Lambda emulation and API Gateway v2
APIs, routes, integrations and authorizers with the API Gateway emulation. Every other type
gets a fake id, as the recording mock gives. The result is a :class:`StackRecord`: every
resource (type, name, inputs, outputs) and the stack's exports.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pulumi
import yaml
from pulumi.runtime import settings
from pulumi.runtime.mocks import MockResourceArgs

from tests.e2e.aws.apigw import ApiGateway
from tests.e2e.aws.creators import CREATORS, Created
from tests.e2e.aws.lambdas import LambdaEmulator
from tests.e2e.aws.postgres import RdsPostgres
from tests.infra.recording import Recorded, RecordingMocks, RecordingMonitor

__all__ = ["REGION", "StackBridge", "StackRecord", "stack_config"]

ROOT = Path(__file__).resolve().parents[3]
REGION = "us-east-1"  # moto's default region; the stacks' aws:region is overridden to it
CLIENTS = ("ec2", "kms", "s3", "sqs", "secretsmanager", "iam", "ecs", "elbv2", "logs", "ssm")


def stack_config(stack: str) -> dict[str, str]:
    """A stack file's config as the CLI hands it to a program (objects and lists as JSON)."""
    data = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    return {
        key: value if isinstance(value, str) else json.dumps(value)
        for key, value in data["config"].items()
    } | {"aws:region": REGION}


SIG_KEY = "4dabf18193072939515e22adb298388d"  # pulumi.runtime.rpc: a special value's key
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # ... and the signature of a secret


def _reveal(value: Any) -> Any:
    """The inputs with Pulumi's secret wrappers removed: the provider sees plain values."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            return _reveal(value.get("value"))
        return {k: _reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_reveal(v) for v in value]
    return value


@dataclass(frozen=True)
class StackRecord:
    """What ``pulumi up`` left: every resource with its inputs and outputs, and the exports."""

    project: str
    stack: str
    resources: list[Recorded]
    state: dict[str, dict[str, Any]]  # URN -> outputs (the provider's state)
    outputs: dict[str, Any]

    def of_type(self, token: str) -> list[Recorded]:
        return [r for r in self.resources if r.type == token]

    def named(self, name: str) -> Recorded:
        (found,) = [r for r in self.resources if r.name == name]
        return found

    def state_of(self, resource: Recorded) -> dict[str, Any]:
        return self.state.get(resource.urn, {})


class BridgeMocks(RecordingMocks):
    """The recording mock's invokes; resources created for real where a creator exists."""

    def __init__(self, bridge: StackBridge, references: Mapping[str, Mapping[str, Any]]) -> None:
        super().__init__()
        self.bridge = bridge
        self.references = references
        self.state: dict[tuple[str, str], dict[str, Any]] = {}
        self._state_lock = threading.Lock()

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        if args.typ == "pulumi:pulumi:StackReference":
            outputs = self.references.get(args.name)
            if outputs is None:
                raise KeyError(
                    f"no stack {args.name!r} to reference (have {list(self.references)})"
                )
            self._local.last = (args, args.name)
            return args.name, {"name": args.name, "outputs": dict(outputs)}
        fake_id, fake_outputs = super().new_resource(args)
        creator = CREATORS.get(args.typ)
        if creator is None:
            with self._state_lock:
                self.state[(args.typ, args.name)] = fake_outputs
            return fake_id, fake_outputs
        try:
            created: Created = creator(self.bridge, args.name, _reveal(dict(args.inputs)))
        except Exception as exc:
            raise RuntimeError(
                f"creating {args.typ} {args.name!r} in the emulation: {exc}"
            ) from exc
        outputs = {**args.inputs, **created.outputs}
        self._local.last = (args, created.id)
        with self._state_lock:
            self.state[(args.typ, args.name)] = outputs
        return created.id, outputs


@dataclass
class StackBridge:
    """Runs stacks into one emulated account: moto, the Lambda and API Gateway emulations,
    and PostgreSQL servers for RDS instances. ``close()`` stops what it started."""

    moto_endpoint: str
    lambdas: LambdaEmulator
    region: str = REGION
    gateways: dict[str, ApiGateway] = field(default_factory=dict)
    databases: dict[str, RdsPostgres] = field(default_factory=dict)  # identifier -> server
    notes: list[str] = field(default_factory=list)  # best-effort steps moto refused
    stacks: dict[str, StackRecord] = field(default_factory=dict)

    def __post_init__(self) -> None:
        session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=self.region
        )
        self.clients: dict[str, Any] = {
            name: session.client(name, endpoint_url=self.moto_endpoint)  # type: ignore[call-overload]
            for name in CLIENTS
        }
        self.lock = threading.Lock()

    def client(self, name: str) -> Any:
        return self.clients[name]

    def note(self, text: str) -> None:
        with self.lock:
            self.notes.append(text)

    def run(
        self,
        program: Callable[[], Any],
        *,
        project: str,
        stack: str,
        config: Mapping[str, str],
        references: Mapping[str, Mapping[str, Any]] | None = None,
        exports: Callable[[Any], Mapping[str, Any]] | None = None,
    ) -> StackRecord:
        """Run ``program`` as ``pulumi up`` of ``project``/``stack`` would. ``references``:
        outputs of the stacks a ``StackReference`` may name. ``exports``: the stack's outputs
        from what ``program`` returned (e.g. ``lambda platform: platform.outputs``)."""
        mocks = BridgeMocks(self, references or {})
        monitor = RecordingMonitor(mocks)
        settings.ROOT.set(None)  # a new root Stack for this run
        pulumi.runtime.set_all_config(dict(config), [])
        pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False,
                                 monitor=monitor)  # fmt: skip
        resolved: dict[str, Any] = {}

        @pulumi.runtime.test
        def up() -> pulumi.Output[None]:
            result = program()
            values = dict(exports(result)) if exports is not None else {}
            outputs = {k: pulumi.Output.from_input(v) for k, v in values.items()}
            return pulumi.Output.all(**outputs).apply(resolved.update)

        up()
        state = {r.urn: mocks.state.get((r.type, r.name), {}) for r in monitor.recorded if r.custom}
        record = StackRecord(project, stack, list(monitor.recorded), state, resolved)
        self.stacks[f"{project}/{stack}"] = record
        return record

    def run_platform(
        self, stack: str = "dev", config: Mapping[str, str] | None = None
    ) -> StackRecord:
        """The platform program (``infra/``) with the stack file's config, and ``config``
        where the test sets a key the stack file leaves to its user."""
        from flowhost.infra import main

        return self.run(
            main, project="flowhost-platform", stack=stack,
            config={**stack_config(stack), **(config or {})},
            exports=lambda platform: platform.outputs,
        )  # fmt: skip

    def close(self) -> None:
        for gateway in self.gateways.values():
            gateway.close()
        for database in self.databases.values():
            database.stop()
        for client in self.clients.values():
            client.close()
