"""Marks the tiers that start real processes (servers, Metaflow runs, PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SLOW_TIERS = (HERE / "integration", HERE / "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(item.path.is_relative_to(tier) for tier in SLOW_TIERS):
            item.add_marker(pytest.mark.integration)
