"""One recorded run per variant (CPU on ECS, GPU on EKS), shared by the module's tests."""

from __future__ import annotations

import pytest

from tests.infra.observability.harness import Run, ecs_args, eks_args, run


@pytest.fixture(scope="session")
def ecs() -> Run:
    return run(ecs_args())


@pytest.fixture(scope="session")
def eks() -> Run:
    return run(eks_args())
