"""A user stack: the example services on a flowhost platform stack.

``pulumi up -s dev`` deploys the CPU service (sentiment) as a scaling-to-zero ECS
service; on a platform with EKS (``-s prod``) the GPU service (batch-scorer) too, as an
EKS Deployment scaled by KEDA. Copy this directory and point ``SERVICES`` at your own.
"""

from pathlib import Path

import pulumi

from flowhost.infra import PlatformRef, ServiceSpec
from flowhost.services.loader import load_service

SERVICES = Path(__file__).resolve().parents[1] / "services"

config = pulumi.Config()
eks = config.get_bool("eksEnabled") or False
platform = PlatformRef.from_stack(config.require("platformStack"), eks_enabled=eks)

sentiment = ServiceSpec(
    "sentiment",
    spec=load_service(str(SERVICES / "sentiment.py")),
    platform=platform,
    aliases=["production"],
    owner="ml-team",
)
pulumi.export("sentimentQueueUrl", sentiment.queue_url)
pulumi.export("sentimentDashboard", sentiment.dashboard_name)
pulumi.export("sentimentGrafanaDashboard", sentiment.grafana_json)  # import into Grafana

if eks:
    scorer = ServiceSpec(
        "batch-scorer",
        spec=load_service(str(SERVICES / "scorer_gpu.py")),
        platform=platform,
        aliases=["production"],
        owner="ml-team",
    )
    pulumi.export("batchScorerQueueUrl", scorer.queue_url)
    pulumi.export("batchScorerDashboard", scorer.dashboard_name)
    pulumi.export("batchScorerGrafanaDashboard", scorer.grafana_json)
