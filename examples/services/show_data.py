"""A service in the plain-dict style: JSON object in, JSON object out."""

from flowhost.services import Artifacts, WebServiceSpec, endpoint


class ShowData(WebServiceSpec):
    """Shows facts about the training run that produced the sentiment model."""

    name = "show-data"
    artifacts = Artifacts(flow="SentimentFlow")

    def initialize(self) -> None:
        self.accuracy = self.artifacts.flow.accuracy
        self.vocab_size = self.artifacts.flow.vocab_size

    @endpoint(methods=["POST"])
    def show_data(self, request_dict: dict) -> dict:
        fields = request_dict.get("fields", ["accuracy", "vocab_size"])
        facts = {"accuracy": self.accuracy, "vocab_size": self.vocab_size}
        return {
            "run": self.artifacts.run,
            **{k: facts[k] for k in fields if k in facts},
        }
