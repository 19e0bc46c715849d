"""``flowhost serve`` answers its endpoints: the example services, async and GET endpoints."""

from __future__ import annotations

import re

from tests.integration.support import SentimentRuns, ServeFactory, Server

GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")


def test_predict_scores_text_and_names_the_pinned_run(
    sentiment: Server, sentiment_runs: SentimentRuns
) -> None:
    good = sentiment.client.post("/predict", json={"text": "great product, love it"})
    bad = sentiment.client.post("/predict", json={"text": "awful, broke quickly, hate it"})

    assert good.status_code == 200, good.text
    assert good.headers["content-type"] == "application/json"
    assert good.headers["x-flowhost-run"] == sentiment_runs.latest
    assert good.headers["x-flowhost-service"] == "sentiment"
    assert good.headers["x-flowhost-version"] == "dev"
    body = good.json()
    assert set(body) == {"label", "score"}
    assert body["label"] == "positive"
    assert 0.5 < body["score"] <= 1.0
    assert bad.status_code == 200, bad.text
    assert bad.json()["label"] == "negative"
    assert 0.0 <= bad.json()["score"] < 0.5


def test_request_id_is_echoed_when_sent(sentiment: Server) -> None:
    response = sentiment.client.post(
        "/predict", json={"text": "great"}, headers={"X-Request-Id": "client-id.42:a_b-c"}
    )

    assert response.status_code == 200
    assert response.headers["x-request-id"] == "client-id.42:a_b-c"


def test_request_id_is_generated_when_missing_or_unusable(sentiment: Server) -> None:
    first = sentiment.client.post("/predict", json={"text": "great"})
    second = sentiment.client.post("/predict", json={"text": "great"})
    unusable = sentiment.client.post(
        "/predict", json={"text": "great"}, headers={"X-Request-Id": "has spaces; and=junk"}
    )

    ids = [r.headers["x-request-id"] for r in (first, second, unusable)]
    assert all(GENERATED_ID.match(i) for i in ids), ids
    assert len(set(ids)) == 3


def test_info_shows_the_run_and_the_definition(
    sentiment: Server, sentiment_runs: SentimentRuns
) -> None:
    response = sentiment.client.get("/info")

    assert response.status_code == 200
    info = response.json()
    assert info["service"] == "sentiment"
    assert info["run"] == sentiment_runs.latest
    assert info["status"] == "ready"
    assert info["error"] is None
    assert info["version"] == "dev"
    definition = info["definition"]
    assert definition["name"] == "sentiment"
    assert definition["class_name"] == "Sentiment"
    assert definition["artifacts"]["flow"] == "SentimentFlow"
    [predict] = definition["endpoints"]
    assert predict["name"] == "predict"
    assert predict["http_methods"] == ["POST"]
    assert predict["request"]["json_schema"]["required"] == ["text"]


def test_run_option_pins_an_explicit_run(
    serve: ServeFactory, sentiment: Server, sentiment_runs: SentimentRuns
) -> None:
    pinned = serve(
        "examples/services/sentiment.py", "--run", sentiment_runs.older, "--version", "v7"
    )
    text = {"text": "great battery but slow shipping"}

    response = pinned.client.post("/predict", json=text)
    latest = sentiment.client.post("/predict", json=text)

    assert response.status_code == 200, response.text
    assert response.headers["x-flowhost-run"] == sentiment_runs.older
    assert response.headers["x-flowhost-version"] == "v7"
    assert pinned.client.get("/info").json()["run"] == sentiment_runs.older
    # the older run was trained with other parameters: its model really is the one loaded
    assert response.json()["score"] != latest.json()["score"]


def test_dict_style_service_answers(serve: ServeFactory, sentiment_runs: SentimentRuns) -> None:
    server = serve("examples/services/show_data.py")

    everything = server.client.post("/show_data", json={})
    some = server.client.post("/show_data", json={"fields": ["vocab_size", "unknown"]})

    assert everything.status_code == 200, everything.text
    assert everything.headers["x-flowhost-run"] == sentiment_runs.latest
    facts = everything.json()
    assert set(facts) == {"run", "accuracy", "vocab_size"}
    assert facts["run"] == sentiment_runs.latest
    assert 0.0 <= facts["accuracy"] <= 1.0
    assert isinstance(facts["vocab_size"], int)
    assert facts["vocab_size"] > 0
    assert some.status_code == 200, some.text
    assert some.json() == {"run": sentiment_runs.latest, "vocab_size": facts["vocab_size"]}


def test_async_endpoint_answers(toolbox: Server) -> None:
    response = toolbox.client.post("/shout", json={"text": "hey", "count": 2})

    assert response.status_code == 200, response.text
    assert response.json() == {"text": "HEYHEY", "length": 6}
    assert "x-flowhost-run" not in response.headers  # the toolbox has no artifacts


def test_get_endpoint_reads_the_query_string(toolbox: Server) -> None:
    response = toolbox.client.get("/lookup", params={"name": "ab", "times": "3"})
    defaulted = toolbox.client.get("/lookup", params={"name": "xy"})

    assert response.status_code == 200, response.text
    assert response.json() == {"name": "ab", "repeated": "ababab"}
    assert defaulted.json() == {"name": "xy", "repeated": "xy"}


def test_get_endpoint_validates_the_query_string(toolbox: Server) -> None:
    response = toolbox.client.get("/lookup", params={"times": "many"})

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert {d["field"] for d in error["details"]} == {"name", "times"}
    assert "name: Field required" in error["message"]
