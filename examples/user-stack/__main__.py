"""A user stack: the example services on a flowhost platform stack.

``pulumi up -s dev`` writes the CPU service's (sentiment) envelope (its roles, log group,
dashboard, alarms and the settings the control plane creates its versions from) and
deploys its code through the platform's control plane, which numbers the version, runs
it as a scaling-to-zero ECS service and points ``production`` at it. On a platform with
EKS (``-s prod``) the GPU service (batch-scorer) too, which its stack runs as an EKS
Deployment scaled by KEDA. Copy this directory and point ``SERVICES`` at your own.
"""

from pathlib import Path

import pulumi

from flowhost.infra import Deploy, PlatformRef, ServiceSpec
from flowhost.services.loader import load_service

SERVICES = Path(__file__).resolve().parents[1] / "services"

config = pulumi.Config()
eks = config.get_bool("eksEnabled") or False
platform = PlatformRef.from_stack(config.require("platformStack"), eks_enabled=eks)

sentiment = ServiceSpec(
    "sentiment",
    spec=load_service(str(SERVICES / "sentiment.py")),
    platform=platform,
    owner="ml-team",
    deploy=Deploy(promote=True),  # registered through the control plane, which numbers it
)
pulumi.export("sentimentVersion", sentiment.version_number)
pulumi.export("sentimentEnvelope", sentiment.envelope_parameter)
pulumi.export("sentimentDashboard", sentiment.dashboard_name)
pulumi.export("sentimentGrafanaDashboard", sentiment.grafana_json)  # import into Grafana

if eks:
    scorer = ServiceSpec(
        "batch-scorer",
        spec=load_service(str(SERVICES / "scorer_gpu.py")),
        platform=platform,
        owner="ml-team",
    )
    pulumi.export("batchScorerQueueUrl", scorer.queue_url)
    pulumi.export("batchScorerDashboard", scorer.dashboard_name)
    pulumi.export("batchScorerGrafanaDashboard", scorer.grafana_json)
