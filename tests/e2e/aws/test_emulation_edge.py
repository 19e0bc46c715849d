"""The platform's edge as the stack built it: API Gateway (SigV4 verified with botocore)
-> the control-plane Lambda (the function's environment from the stack) -> moto and the
TLS PostgreSQL the stack's RDS instance stands for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest import mock

import botocore.auth
import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.e2e.aws.apigw import ApiGateway
from tests.e2e.aws.conftest import ADMIN, ADMIN_ARN
from tests.e2e.aws.lambdas import LambdaEmulator
from tests.e2e.aws.stack import StackRecord

API_FUNCTION = "flowhost-dev-fn-api"


def signed(
    method: str, url: str, body: bytes = b"", *, key: tuple[str, str] = ADMIN,
    region: str = "us-east-1", at: datetime | None = None,
) -> httpx.Request:  # fmt: skip
    """A request signed as the CLI signs it (botocore's SigV4, service execute-api)."""
    request = AWSRequest(method=method, url=url, data=body,
                         headers={"Content-Type": "application/json"} if body else {})  # fmt: skip
    auth = SigV4Auth(Credentials(*key), "execute-api", region)
    if at is None:
        auth.add_auth(request)
    else:
        with mock.patch.object(botocore.auth, "get_current_datetime", return_value=at):
            auth.add_auth(request)
    return httpx.Request(method, url, headers=dict(request.headers.items()), content=body)


def send(request: httpx.Request) -> httpx.Response:
    with httpx.Client(timeout=60) as client:
        return client.send(request)


def test_unsigned_mis_signed_and_expired_requests_are_refused(
    edge: ApiGateway, lambdas: LambdaEmulator
) -> None:
    before = len(lambdas.invocations_of(API_FUNCTION))
    url = f"{edge.url}/api/healthz"
    unsigned = send(httpx.Request("GET", url))
    wrong_secret = send(signed("GET", url, key=(ADMIN[0], "not-the-secret")))
    unknown_key = send(signed("GET", url, key=("AKIANOBODY", ADMIN[1])))
    wrong_region = send(signed("GET", url, region="eu-west-1"))
    expired = send(signed("GET", url, at=datetime.now(UTC) - timedelta(minutes=10)))
    tampered = signed("POST", f"{edge.url}/api/services", b'{"a": 1}')
    tampered = httpx.Request("POST", tampered.url, headers=tampered.headers, content=b'{"a": 2}')
    for answer in (unsigned, wrong_secret, unknown_key, wrong_region, expired, send(tampered)):
        assert answer.status_code == 403, answer.text
        assert answer.json() == {"message": "Forbidden"}
    assert len(lambdas.invocations_of(API_FUNCTION)) == before  # nothing reached the function


def test_a_signed_request_reaches_the_control_plane(
    edge: ApiGateway, lambdas: LambdaEmulator
) -> None:
    answer = send(signed("GET", f"{edge.url}/api/healthz"))
    assert answer.status_code == 200, f"{answer.text}\n{lambdas.log(API_FUNCTION)[-3000:]}"
    (last, *_) = reversed(lambdas.invocations_of(API_FUNCTION))
    context = last.event["requestContext"]
    assert context["authorizer"]["iam"]["userArn"] == ADMIN_ARN
    assert last.event["routeKey"] == "ANY /api/{proxy+}"


def test_the_caller_is_the_signed_identity(edge: ApiGateway, lambdas: LambdaEmulator) -> None:
    request = signed("GET", f"{edge.url}/api/whoami")
    request.headers["x-flowhost-actor"] = "someone-else"  # a header is not an identity
    answer = send(request)
    assert answer.status_code == 200, f"{answer.text}\n{lambdas.log(API_FUNCTION)[-3000:]}"
    assert ADMIN_ARN in answer.text
    assert "someone-else" not in answer.text


def test_the_control_plane_reads_its_state_db(edge: ApiGateway, lambdas: LambdaEmulator) -> None:
    """The API function's first query against the stack's database (migrated at deploy or
    cold start, never by hand here)."""
    answer = send(signed("GET", f"{edge.url}/api/services"))
    assert answer.status_code == 200, f"{answer.text}\n{lambdas.log(API_FUNCTION)[-3000:]}"


def test_the_edge_limits_request_bodies(edge: ApiGateway, lambdas: LambdaEmulator) -> None:
    before = len(lambdas.invocations_of(API_FUNCTION))
    body = b"x" * (10 * 1024 * 1024 + 1)
    answer = send(signed("POST", f"{edge.url}/api/services", body))
    assert answer.status_code == 413
    assert len(lambdas.invocations_of(API_FUNCTION)) == before


def test_service_calls_without_a_balancer_are_unavailable(edge: ApiGateway) -> None:
    """``$default`` goes over the VPC link; with nothing behind it, 503 as AWS answers."""
    links = dict(edge.vpc_links)
    edge.vpc_links.clear()
    try:
        answer = send(signed("GET", f"{edge.url}/sentiment/predict"))
    finally:
        edge.vpc_links.update(links)
    assert answer.status_code == 503
    assert answer.json() == {"message": "Service Unavailable"}


def test_the_platform_s_function_environment_points_at_the_emulated_account(
    platform: StackRecord, lambdas: LambdaEmulator, bridge_databases: dict[str, str]
) -> None:
    env = lambdas.function(API_FUNCTION).environment
    assert env["FLOWHOST_BUCKET"] == platform.outputs["bucketName"]
    assert env["FLOWHOST_LISTENER_ARN"] == platform.outputs["albListenerArn"]
    assert f"{env['FLOWHOST_DB_HOST']}:{env['FLOWHOST_DB_PORT']}" in bridge_databases.values()
    assert env["FLOWHOST_CALLBACK_SECRET_ARN"].startswith("arn:aws:secretsmanager:")
