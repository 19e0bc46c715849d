"""A flow that trains a (trivial) model and deploys it from its own last step."""

import os

from metaflow import FlowSpec, current, step

import flowhost


class DeployFlow(FlowSpec):
    @step
    def start(self):
        self.answer = 42
        self.next(self.end)

    @step
    def end(self):
        # The run is still going: the version pins it, and reads the finished steps' artifacts.
        version = flowhost.deploy(
            os.environ["FLOWHOST_TEST_SERVICE"], run=current.pathspec, promote=True, timeout=60
        )
        self.deployed = version["number"]


if __name__ == "__main__":
    DeployFlow()
