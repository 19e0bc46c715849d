# pyright: basic, reportMissingImports=false
"""The trivial endpoint as a BentoML service; runs in bench/.venvs/bentoml, not the main venv.

cd bench/apps && ../.venvs/bentoml/bin/bentoml serve bentoml_service:BenchClassify --port 8000
"""

import bentoml
from pydantic import BaseModel


class ClassifyOut(BaseModel):
    label: str
    length: int


def classify(text: str) -> ClassifyOut:
    n = len(text)
    return ClassifyOut(label="long" if n > 16 else "short", length=n)


@bentoml.service(workers=1)
class BenchClassify:
    """Labels a text by its length; the input schema comes from the signature (``text: str``)."""

    @bentoml.api
    def classify(self, text: str) -> ClassifyOut:
        return classify(text)

    @bentoml.api
    async def classify_async(self, text: str) -> ClassifyOut:
        return classify(text)
