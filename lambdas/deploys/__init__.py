"""Deploys as a persisted state machine: the ``Fleet`` port a deploy drives, and the
step that moves every unfinished deploy on (``DeployStepper``), from any process."""

from flowhost.lambdas.deploys.fleet import Fleet, Launch, LaunchState
from flowhost.lambdas.deploys.steps import DeployStepper

__all__ = ["DeployStepper", "Fleet", "Launch", "LaunchState"]
