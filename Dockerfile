# The serving runtime image: flowhost and its locked dependencies, nothing else. Its entry
# point is the bootstrap (flowhost.lambdas.aws.container): it reads the environment that
# ServiceSpec sets, fetches the service's code package from S3 and serves it on 8080.
#
# The platform stack builds and pushes it to its own ECR repository (infra/runtime_image.py)
# and ServiceSpec uses it by default; to build it elsewhere (CI), `docker build .`, push it
# and set flowhost:runtimeImage (docs/aws.md, "The runtime image and its bootstrap").
#
# Runs as uid 65532 with a read-only root file system: it writes only under /tmp (the code
# package, Metaflow's caches). ECS and the GPU Deployment define the health checks.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# The same uv as the project's own dependency pin (pyproject.toml).
RUN pip install --no-cache-dir uv==0.13.8
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/opt/flowhost
WORKDIR /src
# Dependencies first (a layer that changes only with uv.lock), then flowhost itself.
# No dev group and no extras: the infra extra (Pulumi) is for stacks, never for serving.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project
COPY flowhost ./flowhost
COPY services ./services
COPY lambdas ./lambdas
COPY infra ./infra
RUN uv sync --locked --no-dev --no-editable \
    && /opt/flowhost/bin/python -c "import flowhost.lambdas.aws.container"

FROM ${PYTHON_IMAGE}
COPY --from=build /opt/flowhost /opt/flowhost
ENV PATH=/opt/flowhost/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    USERNAME=flowhost
WORKDIR /tmp
USER 65532:65532
EXPOSE 8080
CMD ["python", "-m", "flowhost.lambdas.aws.container"]
