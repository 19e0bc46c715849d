"""Environment builds on AWS: the platform stack's build task, run with ECS RunTask.

The task definition (``infra/environment_builds.py``) is the runtime image with the
build's command, a role that may write ``environments/*`` of the platform bucket, and the
private index's credentials from Secrets Manager; it runs on the platform's cluster in
the private subnets, whose egress reaches the index. The control plane starts it with the
digest to build and follows it with DescribeTasks (how it stopped) and ``build.json``
(what it did).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from flowhost.errors import DeployError

__all__ = ["BUILD_CONTAINER", "STARTED_BY", "EcsBuildRunner"]

BUILD_CONTAINER = "build"
STARTED_BY = "flowhost-env-build"
COMMAND = ("python", "-m", "flowhost.lambdas.environments.job")


class EcsBuildRunner:
    def __init__(
        self,
        ecs: Any,
        *,
        cluster: str,
        task_definition: str,
        subnets: Sequence[str],
        security_group: str,
    ) -> None:
        self.ecs = ecs
        self.cluster = cluster
        self.task_definition = task_definition
        self.subnets = list(subnets)
        self.security_group = security_group

    def start(self, digest: str) -> str:
        try:
            found = self.ecs.run_task(
                cluster=self.cluster,
                taskDefinition=self.task_definition,
                launchType="FARGATE",
                count=1,
                startedBy=STARTED_BY,
                networkConfiguration={
                    "awsvpcConfiguration": {
                        "subnets": self.subnets,
                        "securityGroups": [self.security_group],
                        "assignPublicIp": "DISABLED",
                    }
                },
                overrides={
                    "containerOverrides": [
                        {"name": BUILD_CONTAINER, "command": [*COMMAND, "--digest", digest]}
                    ]
                },
                tags=[{"key": "flowhost:environment-digest", "value": digest}],
            )
        except (ClientError, BotoCoreError) as exc:
            raise DeployError(
                f"environment {digest[:19]}...: ECS RunTask of {self.task_definition} failed "
                f"({exc}). Check the control plane's ecs:RunTask and iam:PassRole grants and "
                "the platform stack's build task (redeploy the platform stack)."
            ) from None
        tasks: list[dict[str, Any]] = found.get("tasks", [])
        if not tasks:
            failures = "; ".join(
                f"{f.get('arn', '')} {f.get('reason', '')}".strip()
                for f in found.get("failures", [])
            )
            raise DeployError(
                f"environment {digest[:19]}...: ECS did not start the build task "
                f"({failures or 'no task and no reason'}). Check the cluster's Fargate capacity."
            )
        return str(tasks[0]["taskArn"])

    def stopped(self, handle: str) -> str | None:
        try:
            found = self.ecs.describe_tasks(cluster=self.cluster, tasks=[handle])
        except (ClientError, BotoCoreError):
            return None  # not known now: ask again at the next step
        tasks: list[dict[str, Any]] = found.get("tasks", [])
        if not tasks:
            return f"task {handle} is gone"
        task = tasks[0]
        if task.get("lastStatus") != "STOPPED":
            return None
        codes = [
            c.get("exitCode")
            for c in task.get("containers", [])
            if c.get("name") == BUILD_CONTAINER
        ]
        code = f"; exit code {codes[0]}" if codes and codes[0] is not None else ""
        return f"{task.get('stoppedReason') or 'stopped'}{code}"
