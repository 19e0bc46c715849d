"""Serves an artifact of DeployFlow, the flow that deploys it."""

from flowhost.services import Artifacts, WebServiceSpec, endpoint


class FromFlow(WebServiceSpec):
    """Answers with the artifact the deploying run produced."""

    artifacts = Artifacts(flow="DeployFlow")

    def initialize(self) -> None:
        self.answer = self.artifacts.flow.answer

    @endpoint(name="answer")
    def get_answer(self, request_dict: dict) -> dict:
        return {"answer": self.answer, "run": self.artifacts.run}
