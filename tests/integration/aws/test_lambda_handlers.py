"""The control plane's Lambda entry points on the AWS ports, against moto: the gateway
under Mangum (deployments API, async submit), the activator (wake a parked version,
replay the request through the "balancer"), the scheduled scaler (park idle versions,
wake versions with queued work), and deploys that outlive the request recording them:
the API function invokes itself (``{"flowhost": "advance-deploys"}``, asynchronously)
and that invocation advances the deploy against ECS until it is done or its time runs
short; the scheduled tick advances deploys too. moto cannot run Lambda functions, so the
invoke goes through an injected invoker the tests record; the real one is checked with
botocore's Stubber."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import httpx
import pytest
from botocore.stub import Stubber
from mangum import Mangum
from pydantic import BaseModel

from flowhost.errors import NotFoundError
from flowhost.lambdas.aws.activator import ACTIVATED, Activator
from flowhost.lambdas.aws.queues import SQSQueues
from flowhost.lambdas.aws.runtime import ControlPlane
from flowhost.lambdas.aws.scaler import AwsScaler, metric_dimension
from flowhost.lambdas.aws.settings import AwsSettings
from flowhost.lambdas.handler import ADVANCE_DEPLOYS, ApiFunction, invoke_event
from flowhost.lambdas.store import PRODUCTION, StateStore
from flowhost.services import Scaling, WebServiceSpec, definition_of, endpoint
from flowhost.services.packaging import build_package, package_key
from tests.integration.aws.support import (
    Balancer,
    Cluster,
    fresh,
    placed_tasks,
    register_envelope,
)
from tests.integration.test_lambda_handler import event

ClientFactory = Callable[[str], Any]


class In(BaseModel):
    text: str


class Echo(WebServiceSpec):
    """Echoes."""

    scaling = Scaling(min_instances=0, max_instances=2, idle_timeout="5m")

    @endpoint
    def echo(self, request: In) -> In:
        return request


class FakeBalancer(ThreadingHTTPServer):
    """Stands in for the ALB the activator replays requests through."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, bytes, str | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"] or 0))
                outer.seen.append(("POST", self.path, body, self.headers[ACTIVATED]))
                reply = json.dumps({"echo": json.loads(body)}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def fake_balancer() -> Iterator[FakeBalancer]:
    server = FakeBalancer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def plane(
    tmp_path: Path,
    moto_endpoint: str,
    aws_client: ClientFactory,
    balancer: Balancer,
    cluster: Cluster,
    fake_balancer: FakeBalancer,
) -> Iterator[ControlPlane]:
    bucket = fresh("bucket")
    aws_client("s3").create_bucket(Bucket=bucket)
    store = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    store.migrate()
    settings = AwsSettings(
        environment="test", bucket=bucket, db_host="unused", db_name="unused",
        db_secret_arn="unused", ecs_cluster=cluster.name, listener_arn=balancer.listener,
        activator_target_group_arn=balancer.activator, queue_prefix=fresh("q") + "-",
        public_url="https://api.example.com", balancer_url=fake_balancer.url,
    )  # fmt: skip
    session = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    plane = ControlPlane(settings, session=session, store=store, endpoint_url=moto_endpoint)
    plane.fleet.compute.poll_interval = 0.05
    yield plane
    plane.close()


def ready_version(plane: ControlPlane, cluster: Cluster, balancer: Balancer) -> tuple[int, str]:
    """Version N of echo, ready, promoted, with its ECS service and target group (at zero,
    as ServiceSpec creates them) and its queue."""
    store = plane.store
    version = store.create_version(
        definition_of(Echo), code_digest="sha256-c", artifact_run=None,
        environment_digest="sha256-e", actor="bob",
    )  # fmt: skip
    group = balancer.target_group()
    cluster.service(plane.fleet.ecs_service("echo", version.number), group)
    balancer.healthy_task(group)
    store.set_status("echo", version.number, "ready")
    plane.fleet.route("echo", f"v{version.number}", version.number)
    plane.deployments.promote("echo", version.number, actor="bob")
    SQSQueues(plane.queues.client, prefix=plane.settings.queue_prefix).queue(
        "echo", version.number
    )  # the service stack's queue
    return version.number, group


def test_the_gateway_serves_the_api_and_queues_async_requests(
    plane: ControlPlane, cluster: Cluster, balancer: Balancer
) -> None:
    number, _ = ready_version(plane, cluster, balancer)
    handler = Mangum(plane.app, lifespan="off")  # pyright: ignore[reportArgumentType]
    try:
        check_gateway(handler, plane, number)
    finally:  # Mangum keeps an event loop on the thread (Lambda reuses it): close it
        asyncio.get_event_loop_policy().get_event_loop().close()
        asyncio.set_event_loop(None)


def check_gateway(handler: Any, plane: ControlPlane, number: int) -> None:
    listing = handler(event("GET", "/api/services"), None)
    assert listing["statusCode"] == 200
    assert [s["name"] for s in json.loads(listing["body"])] == ["echo"]

    submitted = handler(event("POST", "/echo/echo/async", {"text": "hi"}), None)
    assert submitted["statusCode"] == 202, submitted["body"]
    doc = json.loads(submitted["body"])
    assert (doc["status"], doc["version"]) == ("queued", f"v{number}")
    assert plane.queues.queue("echo", number).depth().visible == 1
    status = handler(event("GET", f"/requests/{doc['id']}"), None)
    assert json.loads(status["body"])["status"] == "queued"

    invalid = handler(event("POST", "/echo/echo/async", {"txt": "hi"}), None)
    assert invalid["statusCode"] == 422
    sync = handler(event("POST", "/echo/echo", {"text": "hi"}), None)
    assert sync["statusCode"] == 404
    assert "load balancer" in json.loads(sync["body"])["error"]["message"]


def alb_event(path: str, body: Any) -> dict[str, Any]:
    return {
        "requestContext": {"elb": {"targetGroupArn": "arn:activator"}},
        "httpMethod": "POST",
        "path": path,
        "multiValueQueryStringParameters": {"trace": ["1"]},
        "multiValueHeaders": {"content-type": ["application/json"], "x-request-id": ["abc"]},
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def test_the_activator_wakes_a_parked_version_and_replays_the_request(
    plane: ControlPlane, cluster: Cluster, balancer: Balancer, fake_balancer: FakeBalancer
) -> None:
    number, _ = ready_version(plane, cluster, balancer)
    plane.fleet.park("echo", number)
    assert plane.fleet.routes.get("echo", "production").parked

    async def activate(event: dict[str, Any]) -> dict[str, Any]:
        async with httpx.AsyncClient() as http:
            return await Activator(plane.store, plane.fleet, http, fake_balancer.url).handle(event)

    answer = asyncio.run(activate(alb_event("/echo/echo", {"text": "cold"})))
    assert answer["statusCode"] == 200, answer
    assert json.loads(answer["body"]) == {"echo": {"text": "cold"}}
    assert answer["multiValueHeaders"]["content-type"] == ["application/json"]
    assert fake_balancer.seen == [("POST", "/echo/echo?trace=1", b'{"text": "cold"}', "1")]
    assert plane.fleet.status("echo", number).running == 1
    assert not plane.fleet.routes.get("echo", "production").parked  # routed back

    looped = alb_event("/echo/echo", {"text": "again"})
    looped["multiValueHeaders"][ACTIVATED] = ["1"]
    again = asyncio.run(activate(looped))
    assert again["statusCode"] == 503
    assert again["multiValueHeaders"]["retry-after"] == ["5"]

    missing = asyncio.run(activate(alb_event("/nope/echo", {})))
    assert missing["statusCode"] == 404
    assert "no service 'nope'" in json.loads(missing["body"])["error"]["message"]


def test_the_scaler_parks_idle_versions_and_wakes_queued_ones(
    plane: ControlPlane, cluster: Cluster, balancer: Balancer, aws_client: ClientFactory
) -> None:
    busy, busy_group = ready_version(plane, cluster, balancer)
    idle, _ = ready_version(plane, cluster, balancer)
    queued, _ = ready_version(plane, cluster, balancer)
    asyncio.run(plane.fleet.wake("echo", busy))
    asyncio.run(plane.fleet.wake("echo", idle))
    plane.fleet.park("echo", queued)
    plane.queues.queue("echo", queued).send('{"request_id": "r", "endpoint": "echo"}')
    # The busy version served requests a minute ago; the idle one none in its idle_timeout.
    aws_client("cloudwatch").put_metric_data(
        Namespace="AWS/ApplicationELB",
        MetricData=[{
            "MetricName": "RequestCount", "Value": 12, "Unit": "Count",
            "Dimensions": [
                {"Name": "TargetGroup", "Value": metric_dimension(busy_group)},
                {"Name": "LoadBalancer", "Value": metric_dimension(balancer.listener)},
            ],
        }],
    )  # fmt: skip
    scaler = AwsScaler(
        plane.store, plane.fleet, plane.queues, plane.cloudwatch, plane.requests,
        listener_arn=plane.settings.listener_arn,
    )  # fmt: skip
    report = asyncio.run(scaler.tick())
    assert report.parked == [f"echo@v{idle}"]
    assert report.woken == [f"echo@v{queued}"]
    assert plane.fleet.status("echo", idle).at_zero
    assert plane.fleet.status("echo", busy).running == 1
    assert plane.fleet.status("echo", queued).running == 1


def test_metric_dimensions_come_from_arns() -> None:
    listener = (
        "arn:aws:elasticloadbalancing:us-east-1:1:listener/app/int/50dc6c495c0c9188/f2f7dc8efc5"
    )
    group = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/echo-v1/73e2d6bc24d8a067"
    assert metric_dimension(listener) == "app/int/50dc6c495c0c9188"
    assert metric_dimension(group) == "targetgroup/echo-v1/73e2d6bc24d8a067"


def test_settings_name_the_missing_variables() -> None:
    with pytest.raises(Exception, match="FLOWHOST_BUCKET: Field required") as caught:
        AwsSettings.from_env({"FLOWHOST_ENVIRONMENT": "dev"})
    assert "redeploy the platform stack" in str(caught.value)
    env = {
        "FLOWHOST_ENVIRONMENT": "dev", "FLOWHOST_BUCKET": "b", "FLOWHOST_DB_HOST": "db",
        "FLOWHOST_DB_NAME": "flowhost", "FLOWHOST_DB_SECRET_ARN": "arn:s",
        "FLOWHOST_ECS_CLUSTER": "c", "FLOWHOST_LISTENER_ARN": "arn:l",
        "FLOWHOST_ACTIVATOR_TARGET_GROUP_ARN": "arn:t",
    }  # fmt: skip
    settings = AwsSettings.from_env(env)
    url = settings.database_url('{"username": "flow host", "password": "p@ss/word"}')
    assert url == "postgresql+psycopg://flow%20host:p%40ss%2Fword@db:5432/flowhost?sslmode=require"
    assert settings.callback_allow_private is False  # callbacks to public hosts only
    opened = AwsSettings.from_env({**env, "FLOWHOST_CALLBACK_ALLOW_PRIVATE": "true"})
    assert opened.callback_allow_private is True


ARN = "arn:aws:lambda:us-east-1:123456789012:function:flowhost-test-api"
ALICE = "arn:aws:iam::123456789012:user/alice"


def signed(method: str, path: str, body: Any = None) -> dict[str, Any]:
    """An API Gateway event whose caller IAM verified."""
    made = event(method, path, body)
    made["requestContext"]["authorizer"] = {"iam": {"userArn": ALICE}}
    return made


def context(remaining_ms: int = 900_000) -> SimpleNamespace:
    return SimpleNamespace(
        invoked_function_arn=ARN, get_remaining_time_in_millis=lambda: remaining_ms
    )


@pytest.fixture
def function(
    plane: ControlPlane, cluster: Cluster, balancer: Balancer
) -> Iterator[tuple[ApiFunction, list[tuple[str, Any]]]]:
    sent: list[tuple[str, Any]] = []
    made = ApiFunction(
        lambda: plane, invoke=lambda name, body: sent.append((name, body)), interval=0.05
    )
    with placed_tasks(cluster, balancer):
        yield made, sent
    with contextlib.suppress(RuntimeError):  # Mangum's loop on this thread: close it
        asyncio.get_event_loop_policy().get_event_loop().close()
    asyncio.set_event_loop(None)


def record_deploy(plane: ControlPlane, cluster: Cluster, balancer: Balancer, tmp_path: Path,
                  function: ApiFunction) -> dict[str, Any]:  # fmt: skip
    """POST a deploy of echo through the function, as API Gateway would; echo's envelope
    is in SSM, as its stack's ServiceSpec writes it (the control plane creates the rest)."""
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    (source / "service.py").write_text("X = 1\n")
    digest, archive = build_package(source)
    plane.objects.put(package_key(digest), archive)
    versions = plane.fleet.versions
    assert versions is not None
    register_envelope(
        versions.ssm, balancer, cluster, plane.settings.environment, "echo",
        queue_prefix=plane.settings.queue_prefix,
    )  # fmt: skip
    body = {"definition": definition_of(Echo).model_dump(mode="json"),
            "package_digest": digest, "promote": True}  # fmt: skip
    answer = function(signed("POST", "/api/services/echo/versions", body), context())
    assert answer["statusCode"] == 202, answer["body"]
    return json.loads(answer["body"])


def test_a_recorded_deploy_invokes_the_function_which_finishes_it(
    plane: ControlPlane, cluster: Cluster, balancer: Balancer, tmp_path: Path,
    function: tuple[ApiFunction, list[tuple[str, Any]]],
) -> None:  # fmt: skip
    api, sent = function
    version = record_deploy(plane, cluster, balancer, tmp_path, api)
    assert (version["number"], version["status"]) == (1, "deploying")
    assert version["progress"] == ["recorded echo v1 (run none)"]
    assert sent == [(ARN, {"flowhost": "advance-deploys"})]
    with pytest.raises(NotFoundError):  # the request itself created and started nothing
        plane.fleet.status("echo", 1)

    sent.clear()
    report = api(dict(ADVANCE_DEPLOYS), context())
    assert report["unfinished"] == 0
    assert report["continued"] is False
    assert sent == []
    assert plane.fleet.status("echo", 1).running == 1
    assert plane.store.resolve("echo", PRODUCTION).number == 1
    assert plane.fleet.routes.get("echo", "v1").target_group_arn

    polled = api(signed("GET", "/api/services/echo/versions/1"), context())  # a poll: any instance
    body = json.loads(polled["body"])
    assert body["status"] == "ready"
    assert body["progress"][-2:] == ["ready", "promoted to production"]
    assert sent == []  # a poll records nothing, so it invokes nothing


def test_short_on_time_the_function_hands_over_to_a_new_invocation(
    plane: ControlPlane, cluster: Cluster, balancer: Balancer, tmp_path: Path,
    function: tuple[ApiFunction, list[tuple[str, Any]]],
) -> None:  # fmt: skip
    api, sent = function
    record_deploy(plane, cluster, balancer, tmp_path, api)
    sent.clear()
    report = api(dict(ADVANCE_DEPLOYS), context(remaining_ms=15_000))  # under the 20 s margin
    assert (report["unfinished"], report["rounds"], report["continued"]) == (1, 1, True)
    assert sent == [(ARN, {"flowhost": "advance-deploys"})]
    assert plane.store.version("echo", 1).status == "deploying"


def test_the_scheduled_tick_advances_deploys_when_invocations_are_lost(
    plane: ControlPlane, cluster: Cluster, balancer: Balancer, tmp_path: Path,
    function: tuple[ApiFunction, list[tuple[str, Any]]],
) -> None:  # fmt: skip
    api, _ = function
    record_deploy(plane, cluster, balancer, tmp_path, api)  # and the invocation never ran
    asyncio.get_event_loop_policy().get_event_loop().close()  # the scaler is another function
    asyncio.set_event_loop(None)
    tick = AwsScaler(
        plane.store, plane.fleet, plane.queues, plane.cloudwatch, plane.requests,
        listener_arn=plane.settings.listener_arn, deployments=plane.deployments,
    )  # fmt: skip
    for _ in range(100):  # each tick takes the steps it can; a task starts in between
        if asyncio.run(tick.tick()).deploys_unfinished == 0:
            break
        time.sleep(0.05)
    assert plane.store.version("echo", 1).status == "ready"
    assert plane.store.resolve("echo", PRODUCTION).number == 1


def test_the_invocation_is_asynchronous_with_the_advance_event() -> None:
    client: Any = boto3.Session(  # pyright: ignore[reportUnknownMemberType]
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client("lambda")
    with Stubber(client) as stub:
        stub.add_response(
            "invoke", {"StatusCode": 202},
            {"FunctionName": ARN, "InvocationType": "Event",
             "Payload": b'{"flowhost": "advance-deploys"}'},
        )  # fmt: skip
        invoke_event(ARN, dict(ADVANCE_DEPLOYS), client)
        stub.assert_no_pending_responses()
