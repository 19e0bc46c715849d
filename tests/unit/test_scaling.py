"""Autoscaling decisions: ``desired_instances`` for a version, given its load."""

import pytest

from flowhost.lambdas.scaling import Load, desired_instances
from flowhost.services import Scaling

# Scale to zero allowed, up to 5 instances of 4 requests each, idle for 60s before zero.
SCALING = Scaling(min_instances=0, max_instances=5, idle_timeout="60s", target_concurrency=4)


def load(
    in_flight: int = 0, *, peak: int | None = None, waiting: int = 0, idle: float = 0.0
) -> Load:
    """A ``Load``; the window's peak is at least what is in flight now."""
    return Load(
        in_flight=in_flight,
        peak_in_flight=in_flight if peak is None else peak,
        waiting=waiting,
        idle_seconds=idle,
    )


@pytest.mark.parametrize(
    ("current", "in_flight", "waiting", "expected"),
    [
        (1, 4, 0, 1),  # exactly one instance's worth
        (1, 5, 0, 2),  # one more request than that
        (1, 12, 0, 3),
        (1, 13, 0, 4),  # ceil(13 / 4), all at once
        (2, 9, 3, 3),  # held requests count as demand
        (0, 0, 8, 2),  # requests held at zero instances
    ],
)
def test_scales_up_at_once_to_cover_demand(
    current: int, in_flight: int, waiting: int, expected: int
) -> None:
    assert desired_instances(SCALING, current, load(in_flight, waiting=waiting)) == expected


def test_never_more_than_max_instances() -> None:
    assert desired_instances(SCALING, 1, load(100)) == 5
    assert desired_instances(SCALING, 0, load(waiting=1000)) == 5
    assert desired_instances(SCALING, 9, load(30)) == 5  # max was lowered below current


def test_never_fewer_than_min_instances() -> None:
    scaling = Scaling(min_instances=2, max_instances=5, idle_timeout="60s", target_concurrency=4)
    assert desired_instances(scaling, 0, load()) == 2
    assert desired_instances(scaling, 4, load(1)) == 2
    assert desired_instances(scaling, 2, load(idle=3600)) == 2


def test_scales_down_only_to_what_the_window_peak_needed() -> None:
    assert desired_instances(SCALING, 5, load(2, peak=12)) == 3  # not 1: peak needed 3
    assert desired_instances(SCALING, 5, load(2, peak=20)) == 5
    assert desired_instances(SCALING, 3, load(2, peak=2)) == 1  # the peak has passed
    assert desired_instances(SCALING, 2, load(2, peak=40)) == 2  # a past peak never scales up


def test_keeps_one_warm_until_idle_timeout_then_zero() -> None:
    assert desired_instances(SCALING, 3, load(idle=1)) == 1
    assert desired_instances(SCALING, 1, load(idle=59.9)) == 1
    assert desired_instances(SCALING, 1, load(idle=60)) == 0
    assert desired_instances(SCALING, 1, load(idle=600)) == 0
    assert desired_instances(SCALING, 1, load(peak=3, idle=600)) == 1  # the window still held 3


def test_stays_at_zero_without_demand() -> None:
    assert desired_instances(SCALING, 0, load()) == 0
    assert desired_instances(SCALING, 0, load(idle=5)) == 0


def test_a_request_held_at_zero_starts_one_instance() -> None:
    assert desired_instances(SCALING, 0, load(waiting=1)) == 1
    assert desired_instances(SCALING, 0, load(waiting=1, idle=3600)) == 1


def test_min_instances_above_zero_never_scales_to_zero() -> None:
    scaling = Scaling(min_instances=1, max_instances=3, idle_timeout="1s", target_concurrency=1)
    for current in (0, 1, 3):
        assert desired_instances(scaling, current, load(idle=86400)) == 1


def queued(count: int, *, current: int = 0, idle: float = 0.0) -> int:
    """Instances wanted with ``count`` async requests queued or running, nothing else."""
    load = Load(in_flight=0, peak_in_flight=count, waiting=0, idle_seconds=idle, queued=count)
    return desired_instances(SCALING, current, load)


def test_queued_work_starts_a_version_at_zero() -> None:
    assert queued(1) == 1


def test_backlog_scales_out_per_instance_and_is_capped() -> None:
    assert queued(8, current=1) == 2  # ceil(8 / 4)
    assert queued(9, current=1) == 3
    assert queued(100, current=1) == SCALING.max_instances


def test_queued_work_is_never_idle() -> None:
    # Long after the last HTTP request, a queued job still keeps its instance.
    assert queued(1, current=1, idle=10_000) == 1


def test_an_empty_idle_queue_lets_the_version_go_to_zero() -> None:
    assert queued(0, current=1, idle=61) == 0
