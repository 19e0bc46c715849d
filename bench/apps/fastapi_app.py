"""The trivial endpoint in plain FastAPI, as a user would write it.

uv run --locked uvicorn --app-dir bench/apps fastapi_app:app --loop uvloop --http httptools
"""

from bench_models import ClassifyIn, ClassifyOut, classify
from fastapi import FastAPI

app = FastAPI()


@app.post("/classify")
def classify_sync(request: ClassifyIn) -> ClassifyOut:
    return classify(request)


@app.post("/classify_async")
async def classify_async(request: ClassifyIn) -> ClassifyOut:
    return classify(request)
