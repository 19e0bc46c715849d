"""The control-plane API on AWS Lambda: the same FastAPI app, adapted by Mangum.

The platform program (``infra/``) points a Lambda at a module-level handler built
with :func:`create_handler` from the AWS ports (PostgreSQL store, S3 objects, the ECS
fleet); locally the same app runs inside ``flowhost up``.
"""

from __future__ import annotations

from mangum import Mangum

from flowhost.lambdas.api import create_api
from flowhost.lambdas.deployments import Deployments

__all__ = ["create_handler"]


def create_handler(deployments: Deployments) -> Mangum:
    """A Lambda handler (``handler(event, context)``) serving the deployments API."""
    return Mangum(create_api(deployments), lifespan="off")
