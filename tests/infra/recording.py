"""Run the platform program under Pulumi mocks and record every resource it registers.

``run_platform("dev")`` reads the real ``Pulumi.dev.yaml``, installs a fresh recording
mock and config (Pulumi's runtime settings are global), runs ``infra/`` exactly as
``pulumi up`` would (through :func:`flowhost.infra.main`), waits for every output, and
returns one :class:`Recorded` per registered resource (components and providers too).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pulumi
import yaml
from pulumi.runtime import settings
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs, Mocks
from pulumi.runtime.settings import get_project, get_stack

from flowhost.infra import main

__all__ = [
    "ACCOUNT_ID",
    "ECR_PASSWORD",
    "IMAGE_DIGEST",
    "PROJECT",
    "REGION",
    "REGISTRY",
    "PlatformRun",
    "Recorded",
    "RecordingMocks",
    "run_platform",
    "run_program",
    "stack_config",
]

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "flowhost-platform"
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
ZONES = ["us-east-1a", "us-east-1b", "us-east-1c"]
REGISTRY = f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com"
IMAGE_DIGEST = "sha256:" + "5e" * 32
ECR_PASSWORD = "ecr-token-password"
Stack = Literal["dev", "prod"]


@dataclass(frozen=True)
class Recorded:
    """One registered resource: its type token, logical name, URN, mock id and inputs.

    ``inputs`` are as the engine received them (camelCase keys, outputs resolved).
    """

    type: str
    name: str
    urn: str
    id: str
    inputs: dict[str, Any]
    provider: str = ""
    custom: bool = True
    parent: str = ""
    dependencies: tuple[str, ...] = ()
    property_dependencies: dict[str, tuple[str, ...]] = field(default_factory=dict)
    ignore_changes: tuple[str, ...] = ()
    secret_inputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlatformRun:
    resources: list[Recorded]
    outputs: dict[str, Any]
    secret_outputs: frozenset[str] = field(default_factory=frozenset)

    def of_type(self, token: str) -> list[Recorded]:
        return [r for r in self.resources if r.type == token]

    def named(self, name: str) -> Recorded:
        (found,) = [r for r in self.resources if r.name == name]
        return found


ELB = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT_ID}"


def _arn(token: str, name: str) -> str:
    module = token.split(":")[1].split("/")[0]
    kind = token.rsplit(":", 1)[1].lower()
    return f"arn:aws:{module}:{REGION}:{ACCOUNT_ID}:{kind}/{name}"


def _outputs(args: MockResourceArgs, mock_id: str) -> dict[str, Any]:
    """What the provider would add to a resource's state: ARNs, endpoints, generated names."""
    name, token, inputs = args.name, args.typ, args.inputs
    state: dict[str, Any] = {"arn": _arn(token, name)}
    given_name = inputs.get("name", name)
    if token == "aws:s3/bucket:Bucket":
        state |= {"bucket": mock_id, "arn": f"arn:aws:s3:::{mock_id}"}
    elif token == "aws:kms/key:Key":
        state |= {"keyId": mock_id}
    elif token == "aws:lb/loadBalancer:LoadBalancer":
        state |= {
            "arn": f"{ELB}:loadbalancer/app/{name}/50dc6c495c0c9188",
            "dnsName": f"internal-{name}.{REGION}.elb.amazonaws.com",
        }
    elif token == "aws:lb/listener:Listener":
        state |= {"arn": f"{ELB}:listener/app/{name}/50dc6c495c0c9188/f2f7dc8efc522ab2"}
    elif token == "aws:lambda/function:Function":
        arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{given_name}"
        state |= {
            "arn": arn,
            "invokeArn": (
                f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{arn}/invocations"
            ),
        }
    elif token == "aws:rds/instance:Instance":
        host = f"{inputs.get('identifier', name)}.abc123.{REGION}.rds.amazonaws.com"
        state |= {
            "address": host,
            "endpoint": f"{host}:5432",
            "masterUserSecrets": [
                {
                    "secretArn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:{mock_id}",
                    "kmsKeyId": inputs.get("masterUserSecretKmsKeyId", ""),
                    "secretStatus": "active",
                }
            ],
        }
    elif token == "aws:eks/cluster:Cluster":
        state |= {
            "endpoint": f"https://{mock_id}.gr7.{REGION}.eks.amazonaws.com",
            "certificateAuthority": {"data": "LS0tLS1CRUdJTi1DRVJUSUZJQ0FURS0tLS0t"},
            "identities": [
                {"oidcs": [{"issuer": f"https://oidc.eks.{REGION}.amazonaws.com/id/{mock_id}"}]}
            ],
        }
    elif token == "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
        host = str(inputs.get("url", "")).removeprefix("https://")
        state |= {"arn": f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/{host}"}
    elif token in ("aws:iam/policy:Policy", "aws:iam/role:Role"):
        kind = token.rsplit(":", 1)[1].lower()
        state |= {"arn": f"arn:aws:iam::{ACCOUNT_ID}:{kind}/{given_name}"}
    elif token == "aws:apigatewayv2/api:Api":
        state |= {
            "apiEndpoint": f"https://{mock_id}.execute-api.{REGION}.amazonaws.com",
            "executionArn": f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{mock_id}",
        }
    elif token == "aws:secretsmanager/secret:Secret":
        state |= {"arn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:{mock_id}"}
    elif token == "aws:secretsmanager/secretVersion:SecretVersion":
        secret = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:{inputs.get('secretId')}"
        state |= {"arn": secret, "secretArn": secret}
    elif token == "aws:cloudwatch/logGroup:LogGroup":
        state |= {"arn": f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{given_name}"}
    elif token == "aws:ecr/repository:Repository":
        state |= {"registryId": ACCOUNT_ID, "repositoryUrl": f"{REGISTRY}/{given_name}"}
    elif token == "docker-build:index:Image":
        # What a push reports: the (only) tag, pinned to the pushed manifest's digest.
        state = {"digest": IMAGE_DIGEST, "ref": f"{inputs['tags'][0]}@{IMAGE_DIGEST}"}
    return {"name": given_name, **state, **inputs}


class RecordingMocks(Mocks):
    """Answers the invokes the program makes and hands each registration to the monitor."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self._count = 0

    def take(self) -> tuple[MockResourceArgs, str]:
        taken: tuple[MockResourceArgs, str] = self._local.last
        del self._local.last
        return taken

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        with self._lock:
            self._count += 1
            mock_id = f"{args.name}-{self._count:04d}"
        self._local.last = (args, mock_id)
        return mock_id, _outputs(args, mock_id)

    def call(self, args: MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        token = args.token
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT_ID,
                "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/ci",
                "userId": "AIDAEXAMPLE",
                "id": ACCOUNT_ID,
            }, []
        if token == "aws:index/getRegion:getRegion":
            return {
                "name": REGION,
                "region": REGION,
                "id": REGION,
                "description": "US East (N. Virginia)",
                "endpoint": f"ec2.{REGION}.amazonaws.com",
            }, []
        if token == "aws:index/getPartition:getPartition":
            return {
                "partition": "aws",
                "dnsSuffix": "amazonaws.com",
                "id": "aws",
                "reverseDnsPrefix": "com.amazonaws",
            }, []
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            return {
                "names": ZONES,
                "zoneIds": ["use1-az1", "use1-az2", "use1-az4"],
                "groupNames": [REGION],
                "id": REGION,
                "state": "available",
            }, []
        if token == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            return {
                "authorizationToken": "QVdTOmVjci10b2tlbi1wYXNzd29yZA==",
                "expiresAt": "2030-01-01T00:00:00Z",
                "id": REGION,
                "password": ECR_PASSWORD,
                "proxyEndpoint": f"https://{REGISTRY}",
                "region": REGION,
                "registryId": args.args.get("registryId", ACCOUNT_ID),
                "userName": "AWS",
            }, []
        if token == "aws:secretsmanager/getRandomPassword:getRandomPassword":
            length = int(args.args.get("passwordLength", 32))
            return {"randomPassword": "x" * length, "id": "random-password", **args.args}, []
        raise NotImplementedError(f"the recording mock has no answer for invoke {token}")


SIG_KEY = "4dabf18193072939515e22adb298388d"  # pulumi.runtime.rpc: a special value's key
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # ... and the signature of a secret


def _reveal(value: Any, path: str, secrets: list[str]) -> Any:
    """The value with secrets unwrapped; the paths of the secrets go to ``secrets``."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            secrets.append(path)
            return _reveal(value.get("value"), path, secrets)
        return {k: _reveal(v, f"{path}.{k}" if path else k, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_reveal(v, f"{path}[{i}]", secrets) for i, v in enumerate(value)]
    return value


class RecordingMonitor(MockMonitor):
    """A mock monitor that keeps each registration with the URN the engine would give it."""

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        """As the engine does: a child's type is qualified by its parent's whole type chain
        (the mock's own keeps only the parent's last type); the root stack's is left out."""
        if parent:
            qualified = parent.split("::")[2]
            if qualified != "pulumi:pulumi:Stack":
                type_ = f"{qualified}${type_}"
        return "urn:pulumi:" + "::".join([get_stack(), get_project(), type_, name])

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.recording_mocks = mocks
        self.recorded: list[Recorded] = []
        self._lock = threading.Lock()

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        args, mock_id = self.recording_mocks.take()
        secrets: list[str] = []
        inputs = _reveal(dict(args.inputs), "", secrets)
        record = Recorded(
            type=request.type,
            name=request.name,
            urn=response.urn,
            id=mock_id,
            inputs=inputs,
            secret_inputs=tuple(secrets),
            provider=request.provider,
            custom=bool(request.custom),
            parent=request.parent,
            dependencies=tuple(request.dependencies),
            property_dependencies={
                key: tuple(deps.urns) for key, deps in request.propertyDependencies.items()
            },
            ignore_changes=tuple(request.ignoreChanges),
        )
        with self._lock:
            self.recorded.append(record)
        return response


def _config_value(value: object) -> str:
    """How the Pulumi CLI hands config to a program: strings, objects and lists as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def stack_config(stack: str) -> dict[str, str]:
    data = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    return {key: _config_value(value) for key, value in data["config"].items()}


def run_program(stack: str, config: Mapping[str, str]) -> PlatformRun:
    """Run the program under a fresh recording mock with ``config`` as the stack's config."""
    mocks = RecordingMocks()
    monitor = RecordingMonitor(mocks)
    settings.ROOT.set(None)  # a new root Stack for this run, not the previous run's
    pulumi.runtime.set_all_config(dict(config), [])
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    resolved: dict[str, Any] = {}
    secrets: set[str] = set()

    @pulumi.runtime.test
    def program() -> pulumi.Output[None]:
        platform = main()
        outputs = {k: pulumi.Output.from_input(v) for k, v in platform.outputs.items()}
        flags = {k: pulumi.Output.from_input(v.is_secret()) for k, v in outputs.items()}

        def keep(values: dict[str, Any]) -> None:
            secrets.update(k for k, flag in values.items() if k.startswith("?") and flag)
            resolved.update({k: v for k, v in values.items() if not k.startswith("?")})

        both = {**outputs, **{f"?{k}": v for k, v in flags.items()}}
        return pulumi.Output.all(**both).apply(keep)

    program()
    return PlatformRun(list(monitor.recorded), resolved, frozenset(k[1:] for k in secrets))


def run_platform(stack: Stack) -> list[Recorded]:
    """Every resource the platform program registers for ``stack`` (its real config)."""
    return run_program(stack, stack_config(stack)).resources
