"""Settings of one serving instance."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DEFAULT_MAX_BODY_BYTES", "RuntimeSettings"]

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024


class RuntimeSettings(BaseModel):
    """How one instance serves: body limit, pinned run, version label, threads, logging,
    metrics (``"emf"`` also writes CloudWatch EMF lines to stdout, see ``runtime.emf``),
    traces (to an OTLP/HTTP collector when ``otlp_endpoint`` is set, see ``runtime.tracing``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_body_bytes: Annotated[int, Field(ge=1024, le=1024**3)] = DEFAULT_MAX_BODY_BYTES
    run: Annotated[
        str | None, Field(description="pinned artifact run; resolved at start when unset")
    ] = None
    version: Annotated[str, Field(description="version label, e.g. 'v3' or 'dev'")] = "dev"
    threads: Annotated[int, Field(ge=1, le=1024, description="threads for def endpoints")] = 32
    access_log: bool = True
    metrics: Annotated[
        Literal["prometheus", "emf"],
        Field(description="'emf': also write CloudWatch EMF lines to stdout"),
    ] = "prometheus"
    environment: Annotated[
        str, Field(min_length=1, description="the platform's environment (EMF dimension)")
    ] = "local"
    metrics_interval: Annotated[
        float, Field(ge=1, le=3600, description="seconds between EMF flushes")
    ] = 60.0
    otlp_endpoint: Annotated[
        str | None,
        Field(
            pattern=r"^https?://[^\s/]+(/\S*)?$",
            description="OTLP/HTTP collector base URL (traces to <url>/v1/traces); unset: off",
        ),
    ] = None
    trace_sample_ratio: Annotated[
        float,
        Field(ge=0, le=1, description="share of new traces sampled (callers' decision wins)"),
    ] = 1.0
