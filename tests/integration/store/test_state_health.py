"""The platform's health names an unreachable state database (``/api/healthz`` and
``flowhost status`` read it), and is ok when the database answers."""

from __future__ import annotations

import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from flowhost.lambdas.local.health import platform_health
from flowhost.lambdas.store import StateStore


def quiet() -> tuple[Any, Any]:
    """A compute with no launcher trouble and a scaler replacing nothing."""
    return SimpleNamespace(launchers=[]), SimpleNamespace(restarting={}, last_error={})


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens


def test_an_unreachable_state_database_makes_the_platform_degraded() -> None:
    url = f"postgresql+psycopg://flowhost@127.0.0.1:{closed_port()}/flowhost?connect_timeout=2"
    store = StateStore.open(url)
    compute, scaler = quiet()
    health = platform_health(cast(Any, compute), cast(Any, scaler), store)
    assert health["status"] == "degraded"
    [why] = health["degraded"]
    assert why.startswith("state: ")
    assert "password" not in why


def test_a_reachable_state_database_is_ok(tmp_path: Path) -> None:
    store = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    compute, scaler = quiet()
    assert platform_health(cast(Any, compute), cast(Any, scaler), store) == {"status": "ok"}
