"""The platform program, run once per stack per session under the recording mock."""

from __future__ import annotations

import asyncio
import warnings

import pytest

# pulumi_aws warns about its own deprecated resources when a module loads (e.g. ec2's
# EncryptionControl); the program uses none of them. Load the modules once here with
# that warning (and only from pulumi_aws) ignored, so strict pytest sees nothing.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"pulumi_aws\.")
    import pulumi_aws

    for _module in (
        "apigatewayv2", "cloudwatch", "ec2", "ecs", "eks", "iam", "kms", "lambda_", "lb",
        "rds", "s3", "secretsmanager", "sns", "ssm", "xray",
    ):  # fmt: skip
        getattr(getattr(pulumi_aws, _module), "_utilities", None)  # lazy: touching runs it

# parliament, when imported, leaves its data files open (ResourceWarning), has regexes
# with invalid escapes (DeprecationWarning when compiled) and imports pkg_resources
# (UserWarning): strict pytest would fail on each. Import it once, here, with those quiet.
with warnings.catch_warnings():
    for _category in (ResourceWarning, DeprecationWarning, SyntaxWarning, UserWarning):
        warnings.simplefilter("ignore", _category)
    import parliament  # noqa: F401

from tests.infra.recording import PlatformRun, run_program, stack_config


@pytest.fixture(scope="session", autouse=True)
def _an_event_loop() -> None:
    """Pulumi's mocks run on the thread's current event loop; an ``asyncio.run()`` in a
    test that ran earlier in the session (any order) leaves none."""
    policy = asyncio.get_event_loop_policy()
    try:
        policy.get_event_loop()
    except RuntimeError:
        policy.set_event_loop(policy.new_event_loop())


@pytest.fixture(scope="session")
def dev() -> PlatformRun:
    return run_program("dev", stack_config("dev"))


@pytest.fixture(scope="session")
def prod() -> PlatformRun:
    return run_program("prod", stack_config("prod"))


@pytest.fixture(scope="session", params=["dev", "prod"])
def stack(request: pytest.FixtureRequest, dev: PlatformRun, prod: PlatformRun) -> PlatformRun:
    return dev if request.param == "dev" else prod
