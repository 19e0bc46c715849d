"""What the control-plane Lambdas are told by the platform program: environment variables
set in ``infra/`` (see docs/aws.md), read once and checked."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flowhost.errors import FlowhostError

__all__ = ["AwsSettings"]

_ENV = {
    "environment": "FLOWHOST_ENVIRONMENT",
    "bucket": "FLOWHOST_BUCKET",
    "kms_key_arn": "FLOWHOST_KMS_KEY_ARN",
    "db_host": "FLOWHOST_DB_HOST",
    "db_port": "FLOWHOST_DB_PORT",
    "db_name": "FLOWHOST_DB_NAME",
    "db_secret_arn": "FLOWHOST_DB_SECRET_ARN",
    "ecs_cluster": "FLOWHOST_ECS_CLUSTER",
    "listener_arn": "FLOWHOST_LISTENER_ARN",
    "activator_target_group_arn": "FLOWHOST_ACTIVATOR_TARGET_GROUP_ARN",
    "queue_prefix": "FLOWHOST_QUEUE_PREFIX",
    "callback_secret_arn": "FLOWHOST_CALLBACK_SECRET_ARN",
    "public_url": "FLOWHOST_PUBLIC_URL",
    "callback_allow_private": "FLOWHOST_CALLBACK_ALLOW_PRIVATE",
    "balancer_url": "FLOWHOST_BALANCER_URL",
    "deploy_timeout": "FLOWHOST_DEPLOY_TIMEOUT",
    "build_task_definition": "FLOWHOST_BUILD_TASK_DEFINITION",
    "build_subnets": "FLOWHOST_BUILD_SUBNETS",
    "build_security_group": "FLOWHOST_BUILD_SECURITY_GROUP",
    "env_platform": "FLOWHOST_ENV_PLATFORM",
    "env_python": "FLOWHOST_ENV_PYTHON",
    "package_index_url": "FLOWHOST_PACKAGE_INDEX_URL",
}


class AwsSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    environment: str
    bucket: str
    kms_key_arn: str | None = None
    db_host: str
    db_port: int = Field(default=5432, ge=1, le=65535)
    db_name: str
    db_secret_arn: str
    ecs_cluster: str
    listener_arn: str
    activator_target_group_arn: str
    queue_prefix: str = ""
    callback_secret_arn: str | None = None  # a Secrets Manager secret; None: no callbacks
    public_url: str = ""  # the API's URL, for status/result links in callbacks
    callback_allow_private: bool = False  # True: callbacks may go to non-public addresses
    balancer_url: str | None = None  # the internal ALB, e.g. http://internal-x.elb...:80
    deploy_timeout: float = Field(default=600.0, gt=0)  # seconds a new version has to start
    # Environment builds: the build task and where it runs (None: the stack defines none)
    build_task_definition: str | None = None
    build_subnets: str = ""  # comma-separated subnet ids
    build_security_group: str | None = None
    env_platform: str = "x86_64-manylinux_2_28"  # uv --python-platform of service tasks
    env_python: str = Field(default="3.11", pattern=r"^3\.\d+$")  # the runtime image's
    package_index_url: str | None = None  # a private index (its credentials: the build task's)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AwsSettings:
        env = os.environ if env is None else env
        values = {field: env[name] for field, name in _ENV.items() if env.get(name)}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{_ENV[str(e['loc'][0])]}: {e['msg']}" for e in exc.errors(include_url=False)
            )
            raise FlowhostError(
                f"control plane settings: {problems}. The platform program (infra/) sets these "
                "environment variables on every flowhost Lambda; redeploy the platform stack."
            ) from None

    def database_url(self, secret: str) -> str:
        """The PostgreSQL URL from the RDS-managed master secret (JSON username/password)."""
        try:
            creds: dict[str, Any] = json.loads(secret)
            user, password = str(creds["username"]), str(creds["password"])
        except (ValueError, KeyError, TypeError):
            raise FlowhostError(
                f"database secret {self.db_secret_arn}: not the JSON RDS keeps master "
                "credentials in ({'username', 'password'}). Point FLOWHOST_DB_SECRET_ARN at "
                "the instance's managed master user secret."
            ) from None
        return (
            f"postgresql+psycopg://{quote(user, safe='')}:{quote(password, safe='')}@"
            f"{self.db_host}:{self.db_port}/{self.db_name}?sslmode=require"
        )
