"""Asynchronous requests on ``flowhost up``: submit, poll, results, callbacks, and faults.

Timers are shortened through ``flowhost up`` options (visibility 1s, retries after 0.1s,
sweeps every 0.1s), never waited out at their real lengths.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from flowhost.callbacks import SIGNATURE_HEADER, SignatureError, verify_signature
from flowhost.cli.output import schema_of
from flowhost.lambdas.queue import LocalQueue
from tests.e2e.harness import SERVICES, Platform, PlatformFactory
from tests.integration.support import poll, run_flowhost

JOBS = SERVICES / "jobs.py"
FAST = (
    "--async-visibility", "1", "--async-retry-backoff", "0.1", "--async-attempts", "2",
    "--sweep-interval", "0.1", "--callback-backoff", "0.05", "--scaler-tick", "0.1",
    "--scale-down-window", "1",
)  # fmt: skip
SECRET = "e2e-callback-secret"


@pytest.fixture
def traces(tmp_path: Path) -> Path:
    path = tmp_path / "traces"
    path.mkdir()
    return path


@pytest.fixture
def jobs(launch: PlatformFactory, traces: Path) -> Platform:
    platform = launch(
        *FAST, env={"JOBS_TRACE_DIR": str(traces), "FLOWHOST_CALLBACK_SECRET": SECRET}
    )
    platform.deploy(JOBS, promote=True)
    return platform


def submit(platform: Platform, path: str, body: Any, **headers: str) -> dict[str, Any]:
    response = platform.http.post(path, json=body, headers=headers)
    assert response.status_code == 202, response.text
    doc = response.json()
    assert response.headers["location"] == doc["status_url"]
    return doc


def finished(platform: Platform, request_id: str, timeout: float = 30.0) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        platform.check_alive()
        doc = platform.http.get(f"/requests/{request_id}").json()
        return doc if doc["status"] in ("succeeded", "failed", "expired") else None

    return poll(f"request {request_id} to finish", done, timeout)


def result_files(platform: Platform, request_id: str) -> list[Path]:
    return sorted((platform.home / "objects" / "async" / "jobs" / request_id).glob("result-*"))


def runs(traces: Path, tag: str) -> list[int]:
    path = traces / tag
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def test_submit_poll_and_fetch_the_result(jobs: Platform) -> None:
    accepted = submit(jobs, "/jobs/echo/async", {"text": "hello"})
    assert accepted["id"].startswith("req_")
    assert len(accepted["id"]) > 30
    assert (accepted["status"], accepted["version"], accepted["target"]) == (
        "queued",
        "v1",
        "production",
    )
    assert accepted["result_url"].endswith(f"/requests/{accepted['id']}/result")

    done = finished(jobs, accepted["id"])
    assert (done["status"], done["attempts"], done["error"]) == ("succeeded", 1, None)
    assert done["created_at"] <= done["started_at"] <= done["finished_at"] < done["expires_at"]
    assert (accepted["run"], done["version"], done["run"]) == (None, "v1", None)  # no artifacts
    result = jobs.http.get(f"/requests/{accepted['id']}/result")
    assert result.status_code == 200
    assert result.json()["text"] == "hello"
    assert result.headers["x-flowhost-version"] == "v1"
    assert "x-flowhost-run" not in result.headers

    # The same call through the endpoint's own path, asking for an asynchronous answer.
    preferred = jobs.http.post(
        "/jobs@v1/echo", json={"text": "again"}, headers={"prefer": "respond-async"}
    )
    assert preferred.status_code == 202, preferred.text
    assert preferred.json()["target"] == "v1"
    assert finished(jobs, preferred.json()["id"])["status"] == "succeeded"


def test_every_answer_names_the_version_and_the_run(
    sentiment_platform: Platform, sentiment_run: str, base_env: dict[str, str]
) -> None:
    """Lineage: a synchronous answer, an asynchronous status and its result, and
    ``flowhost request`` name the version and the pinned run that produced them."""
    platform = sentiment_platform
    answer = platform.http.post("/sentiment/predict", json={"text": "great, love it"})
    assert answer.status_code == 200, answer.text
    assert (answer.headers["x-flowhost-version"], answer.headers["x-flowhost-run"]) == (
        "v1",
        sentiment_run,
    )

    accepted = submit(platform, "/sentiment/predict/async", {"text": "great, love it"})
    assert (accepted["version"], accepted["run"]) == ("v1", None)  # queued: no run yet
    done = finished(platform, accepted["id"], timeout=60)
    assert (done["status"], done["version"], done["run"]) == ("succeeded", "v1", sentiment_run)
    result = platform.http.get(f"/requests/{accepted['id']}/result")
    assert result.status_code == 200, result.text
    assert result.json() == answer.json()
    assert result.headers["x-flowhost-version"] == "v1"
    assert result.headers["x-flowhost-run"] == sentiment_run

    url = ("--url", platform.url)
    shown = run_flowhost("request", accepted["id"], *url, env=base_env)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert f"succeeded, version v1, run {sentiment_run}" in shown.stdout
    fetched = run_flowhost("request", accepted["id"], "--result", *url, env=base_env)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    assert json.loads(fetched.stdout) == answer.json()  # the lineage goes to stderr
    assert f"version v1, run {sentiment_run}" in fetched.stderr
    as_json = run_flowhost("request", accepted["id"], "--json", *url, env=base_env)
    document = json.loads(as_json.stdout)
    jsonschema.validate(document, schema_of("request"))
    assert (document["status"]["version"], document["status"]["run"]) == ("v1", sentiment_run)


def test_bad_submissions_and_lookups_get_clear_errors(jobs: Platform) -> None:
    invalid = jobs.http.post("/jobs/echo/async", json={"text": ""})
    assert invalid.status_code == 422
    error = invalid.json()["error"]
    assert error["code"] == "validation_error"
    assert [d["field"] for d in error["details"]] == ["text"]

    for path, code in [
        ("/jobs/nope/async", "not_found"),
        ("/nosuch/echo/async", "not_found"),
        ("/requests/req_doesnotexist", "request_not_found"),
        ("/requests/req_doesnotexist/result", "request_not_found"),
    ]:
        response = (
            jobs.http.get(path) if path.startswith("/requests") else jobs.http.post(path, json={})
        )
        assert (response.status_code, response.json()["error"]["code"]) == (404, code), path
    assert "Endpoints: echo, slow, poison." in jobs.http.post("/jobs/nope/async").text
    assert jobs.http.get("/jobs/echo/async").status_code == 405
    too_long = jobs.http.post(
        "/jobs/echo/async", json={"text": "x"}, headers={"flowhost-timeout": "50000"}
    )
    assert (too_long.status_code, too_long.json()["error"]["code"]) == (400, "invalid_timeout")

    pending = submit(jobs, "/jobs/slow/async", {"tag": "pending", "seconds": 1.5})
    early = jobs.http.get(f"/requests/{pending['id']}/result")
    assert (early.status_code, early.json()["error"]["code"]) == (409, "result_not_ready")
    assert early.headers["retry-after"] == "1"
    assert finished(jobs, pending["id"])["status"] == "succeeded"


def test_an_idempotency_key_returns_the_same_request(jobs: Platform, traces: Path) -> None:
    body = {"tag": "once", "seconds": 0}
    first = submit(jobs, "/jobs/slow/async", body, **{"idempotency-key": "order-42"})
    again = jobs.http.post("/jobs/slow/async", json=body, headers={"idempotency-key": "order-42"})
    assert again.status_code == 202
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first["id"]
    assert finished(jobs, first["id"])["status"] == "succeeded"
    assert len(runs(traces, "once")) == 1


def test_a_poison_request_is_dead_lettered_with_its_error(jobs: Platform) -> None:
    accepted = submit(jobs, "/jobs/poison/async", {"text": "glass"})
    done = finished(jobs, accepted["id"])
    assert (done["status"], done["attempts"]) == ("failed", 2)  # --async-attempts 2
    assert done["error"]["code"] == "endpoint_error"
    # The invoker sees the code, the exception's type and the request id, never its text.
    assert "'poison' raised ValueError" in done["error"]["message"]
    assert accepted["id"] in done["error"]["message"]
    assert "cannot digest" not in json.dumps(done)
    result = jobs.http.get(f"/requests/{accepted['id']}/result")
    assert (result.status_code, result.json()["error"]["code"]) == (409, "request_failed")
    assert "'poison' raised ValueError" in result.json()["error"]["message"]
    assert "cannot digest" not in result.text

    # It went through the version's dead-letter queue, whose letters the sweeper settles
    # into the request record and then removes.
    poll(
        "the dead letter to be settled",
        lambda: (
            f'"async request dead-lettered", "request_id": "{accepted["id"]}"' in jobs.log() or None
        ),
        10,
    )
    with LocalQueue(jobs.home / "queues.db", "jobs-v1", max_receive_count=2) as queue:
        assert queue.dead_letters() == []
        assert queue.depth().total == 0
    assert result_files(jobs, accepted["id"]) == []


def test_a_failed_request_shows_its_exception_to_deployers_only(
    jobs: Platform, base_env: dict[str, str]
) -> None:
    accepted = submit(jobs, "/jobs/poison/async", {"text": "vault-password-42"})
    request_id = accepted["id"]
    assert finished(jobs, request_id)["status"] == "failed"
    assert "vault-password-42" not in jobs.http.get(f"/requests/{request_id}").text

    # the control plane's route (on AWS: the deployer and reader grants, not the invoker's)
    found = jobs.http.get(f"/api/requests/{request_id}/detail")
    assert found.status_code == 200, found.text
    detail = found.json()
    assert (detail["id"], detail["status"], detail["attempts"]) == (request_id, "failed", 2)
    assert detail["detail"]["type"] == "ValueError"
    assert detail["detail"]["message"] == "cannot digest 'vault-password-42'"
    assert "Traceback" in detail["detail"]["traceback"]
    assert (detail["detail"]["attempt"], detail["detail"]["version"]) == (2, 1)
    missing = jobs.http.get("/api/requests/req_nothing/detail")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "request_not_found")

    # the CLI shows it too, and the instance log has it keyed by the request id
    shown = run_flowhost("request", request_id, "--detail", "--url", jobs.url, env=base_env)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "ValueError: cannot digest 'vault-password-42'" in shown.stdout
    assert "Traceback" in shown.stdout
    unknown = run_flowhost("request", "req_nothing", "--detail", "--url", jobs.url, env=base_env)
    assert unknown.returncode != 0
    assert "no request 'req_nothing'" in unknown.stderr
    assert "flowhost logs <service> | grep req_nothing" in unknown.stderr
    logged = run_flowhost("logs", "jobs", "--tail", "400", "--url", jobs.url, env=base_env)
    lines = [json.loads(line) for line in logged.stdout.splitlines() if request_id in line]
    raised = [line for line in lines if line.get("message") == "async job raised"]
    assert raised
    assert "cannot digest 'vault-password-42'" in raised[-1]["traceback"]


def _urllib_post(url: str, size: int) -> tuple[int, dict[str, Any]]:
    """POST ``size`` bytes with urllib (it sends the whole body, then reads, and asks for
    Connection: close); the status and the JSON answer."""
    request = urllib.request.Request(
        url, data=b"x" * size, headers={"content-type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=60)
    return raised.value.code, json.loads(raised.value.read())


def test_bodies_over_the_limits_get_their_413_through_urllib(jobs: Platform) -> None:
    """The router (above the instances' 4 MiB) and the async API (above 64 MiB) answer
    413 early; the platform drains the rest, so urllib reads the answer, not a reset."""
    status, sync = _urllib_post(f"{jobs.url}/jobs/echo", 16 * 1024 * 1024)
    assert (status, sync["error"]["code"]) == (413, "payload_too_large"), sync
    assert "limit of 4194304 bytes for jobs@v1" in sync["error"]["message"]

    status, queued = _urllib_post(f"{jobs.url}/jobs/echo/async", 80 * 1024 * 1024)
    assert (status, queued["error"]["code"]) == (413, "payload_too_large"), queued

    assert jobs.http.post("/jobs/echo", json={"text": "still here"}).status_code == 200


def test_killing_the_instance_mid_job_still_completes_it_once(jobs: Platform, traces: Path) -> None:
    accepted = submit(jobs, "/jobs/slow/async", {"tag": "killed", "seconds": 2})
    victim = poll("the job to start", lambda: (runs(traces, "killed") or [None])[0], 20)
    os.kill(victim, signal.SIGKILL)

    done = finished(jobs, accepted["id"], timeout=40)
    assert (done["status"], done["attempts"]) == ("succeeded", 2)
    pids = runs(traces, "killed")
    assert len(pids) == 2
    assert pids[0] == victim
    assert pids[1] != victim
    assert jobs.http.get(f"/requests/{accepted['id']}/result").json()["pid"] == pids[1]
    assert len(result_files(jobs, accepted["id"])) == 1  # exactly one result stored


def test_restarting_the_platform_loses_no_queued_request(
    launch: PlatformFactory, jobs: Platform, traces: Path
) -> None:
    ids = [
        submit(jobs, "/jobs/slow/async", {"tag": f"r{i}", "seconds": 0.5})["id"] for i in range(8)
    ]
    jobs.stop()
    again = launch(*FAST, home=jobs.home, port=jobs.port, env={"JOBS_TRACE_DIR": str(traces)})
    for request_id in ids:
        assert finished(again, request_id, timeout=60)["status"] == "succeeded"
        assert len(result_files(again, request_id)) == 1
    assert all(runs(traces, f"r{i}") for i in range(8))


class Receiver(ThreadingHTTPServer):
    """A callback receiver on loopback that answers 500 to its first ``failures`` POSTs."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[tuple[int, bytes, str | None]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                status = 500 if len(receiver.calls) < receiver.failures else 200
                receiver.calls.append((status, body, self.headers[SIGNATURE_HEADER]))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(failures=2)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_callbacks_are_signed_and_retried(jobs: Platform, receiver: Receiver) -> None:
    accepted = submit(
        jobs, "/jobs/echo/async", {"text": "call me"}, **{"flowhost-callback-url": receiver.url}
    )
    assert accepted["callback"] == {"url": receiver.url, "status": "pending"}

    def delivered() -> dict[str, Any] | None:
        doc = jobs.http.get(f"/requests/{accepted['id']}").json()
        return doc if doc["callback"]["status"] == "delivered" else None

    poll("the callback to be delivered", delivered, 20)
    assert [status for status, _, _ in receiver.calls] == [500, 500, 200]
    _, body, signature = receiver.calls[-1]
    verify_signature(SECRET.encode(), signature, body)  # raises if it does not verify
    with pytest.raises(SignatureError, match="wrong secret"):
        verify_signature(b"another secret", signature, body)
    payload = json.loads(body)
    assert (payload["id"], payload["status"]) == (accepted["id"], "succeeded")
    assert payload["result"]["text"] == "call me"


def test_results_expire_after_their_ttl(launch: PlatformFactory, traces: Path) -> None:
    platform = launch(*FAST, "--result-ttl", "1", env={"JOBS_TRACE_DIR": str(traces)})
    platform.deploy(JOBS, promote=True)
    accepted = submit(platform, "/jobs/echo/async", {"text": "brief"})
    assert finished(platform, accepted["id"])["status"] == "succeeded"

    def expired() -> dict[str, Any] | None:
        doc = platform.http.get(f"/requests/{accepted['id']}").json()
        return doc if doc["status"] == "expired" else None

    poll("the result to expire", expired, 10)
    gone = platform.http.get(f"/requests/{accepted['id']}/result")
    assert (gone.status_code, gone.json()["error"]["code"]) == (410, "request_expired")
    assert not (platform.home / "objects" / "async" / "jobs" / accepted["id"]).exists() or not any(
        (platform.home / "objects" / "async" / "jobs" / accepted["id"]).iterdir()
    )


def test_queued_work_starts_a_version_at_zero_scales_out_and_back(
    jobs: Platform, traces: Path
) -> None:
    jobs.wait_instances("jobs", 1, ready=0, timeout=20)  # idle_timeout is 2s
    ids = [submit(jobs, "/jobs/slow/async", {"tag": f"s{i}", "seconds": 1})["id"] for i in range(6)]
    # 6 jobs at 2 per instance want 3 instances; max_instances caps it at 2.
    jobs.wait_instances("jobs", 1, ready=2, timeout=20)
    for request_id in ids:
        assert finished(jobs, request_id)["status"] == "succeeded"
    assert len({pid for i in range(6) for pid in runs(traces, f"s{i}")}) == 2
    jobs.wait_instances("jobs", 1, ready=0, timeout=20)  # empty and idle: back to zero
