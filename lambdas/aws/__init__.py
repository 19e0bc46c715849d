"""The control plane's ports on AWS: ECS compute, ALB routes, SQS queues.

(The ObjectStore on S3 is ``flowhost.lambdas.s3objects``; the StateStore on
PostgreSQL is ``flowhost.lambdas.store``.) Imported only on AWS: the local platform
never loads this package.
"""

from flowhost.lambdas.aws.compute import EcsCompute, ServiceStatus
from flowhost.lambdas.aws.errors import AwsError
from flowhost.lambdas.aws.fleet import EcsFleet, ecs_service_name
from flowhost.lambdas.aws.queues import SQSQueues
from flowhost.lambdas.aws.routes import FIRST_PRIORITY, LAST_PRIORITY, AlbRoutes, Route

__all__ = [
    "FIRST_PRIORITY",
    "LAST_PRIORITY",
    "AlbRoutes",
    "AwsError",
    "EcsCompute",
    "EcsFleet",
    "Route",
    "SQSQueues",
    "ServiceStatus",
    "ecs_service_name",
]
