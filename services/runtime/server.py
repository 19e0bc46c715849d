"""Runs one instance under uvicorn (uvloop + httptools), with flowhost's JSON logs and a
lingering close (an early answer, such as a 413, arrives: see ``runtime.lingering``)."""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable

import uvicorn

from flowhost.services.runtime.app import ServingApp, create_app
from flowhost.services.runtime.instance import InstanceState
from flowhost.services.runtime.jobs import JobSource
from flowhost.services.runtime.lingering import LingeringClose
from flowhost.services.runtime.logs import configure_logging
from flowhost.services.runtime.prefix import ServicePrefix
from flowhost.services.runtime.settings import RuntimeSettings
from flowhost.services.spec import WebServiceSpec

__all__ = ["serve"]


def serve(
    cls: type[WebServiceSpec],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    settings: RuntimeSettings | None = None,
    log_level: str = "info",
    sock: socket.socket | None = None,
    on_state: Callable[[InstanceState], None] | None = None,
    jobs: Callable[[], JobSource] | None = None,
    on_jobs: Callable[[int], None] | None = None,
    service_prefix: str | None = None,
) -> int:
    """Serve ``cls`` until interrupted. Returns the exit code: 1 if initialize failed.

    ``sock`` is an already-bound listening socket (the platform's launcher binds port 0
    and learns the port before the server starts); ``on_state`` hears readiness changes;
    ``jobs`` makes the instance run asynchronous jobs too (see ``AsyncWorker``), and
    ``on_jobs`` hears how many run; SIGUSR1 then stops it taking new ones.
    ``service_prefix`` (the service's name) also serves every path under
    ``/{service}/...`` and ``/{service}@{ref}/...``, as the load balancer forwards them on
    AWS (see ``runtime.prefix``).
    """
    configure_logging(log_level)
    app: ServingApp = create_app(cls, settings, jobs, on_jobs)
    if app.tracing is not None:
        app.tracing.install()  # one service per process: its own spans join the traces
    asgi = (
        app if service_prefix is None else ServicePrefix(app, service_prefix, app.local_segments())
    )
    config = uvicorn.Config(
        LingeringClose(asgi),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
        log_level=log_level,
        timeout_keep_alive=75,  # above typical load balancer idle timeouts (ALB: 60s)
    )
    server = uvicorn.Server(config)

    def stop_on_failure(state: object) -> None:
        if app.state.status == "failed":
            server.should_exit = True

    app.state.on_change(stop_on_failure)

    def pause_jobs(signum: int, frame: object) -> None:
        app.pause_jobs()  # SIGUSR1: the platform drains this instance; no new async jobs

    signal.signal(signal.SIGUSR1, pause_jobs)
    if on_state is not None:
        app.state.on_change(on_state)
    server.run(sockets=[sock] if sock is not None else None)
    return 1 if app.state.status == "failed" else 0
