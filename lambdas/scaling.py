"""Autoscaling decisions, as pure functions (the local scaler and tests share them)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from flowhost.services.config import Scaling

__all__ = ["Load", "desired_instances"]


@dataclass(frozen=True)
class Load:
    """What a version saw: requests in flight now, their peak over the scale-down window,
    requests held at zero, asynchronous requests queued or running (its queue's depth),
    and seconds since the last request."""

    in_flight: int
    peak_in_flight: int
    waiting: int
    idle_seconds: float
    queued: int = 0


def desired_instances(scaling: Scaling, current: int, load: Load) -> int:
    """How many instances a version should run.

    Up at once, to cover in-flight, held and queued requests at ``target_concurrency``
    each (an instance runs that many async jobs at once); down only to what the window's
    peak needed (stabilization), never below ``min_instances``; to zero only after
    ``idle_timeout`` with nothing in flight, held or queued.
    """
    demand = load.in_flight + load.waiting + load.queued
    up = math.ceil(demand / scaling.target_concurrency)
    stable = math.ceil(max(load.peak_in_flight, demand) / scaling.target_concurrency)
    want = up if up >= current else min(current, stable)
    if want == 0 and current > 0 and load.idle_seconds < scaling.idle_timeout:
        want = 1  # keep one warm until the version has been idle for idle_timeout
    return max(scaling.min_instances, min(scaling.max_instances, want))
