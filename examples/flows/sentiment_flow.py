"""Trains a tiny sentiment model (multinomial naive Bayes, pure Python) with Metaflow.

    USERNAME=me METAFLOW_DATASTORE_SYSROOT_LOCAL=$PWD/.flowhost/metaflow \
        python examples/flows/sentiment_flow.py run

The model is plain data (word log-likelihoods and class priors), so the service
that loads it needs nothing but the standard library.
"""

import math
from collections import Counter

from metaflow import FlowSpec, Parameter, step

POSITIVE = [
    "great product works perfectly",
    "i love it",
    "excellent quality and fast shipping",
    "really happy with this",
    "wonderful experience highly recommend",
    "best purchase this year",
    "amazing value great price",
    "the support team was fantastic",
    "it is superb and reliable",
    "good sound and great battery",
    "fantastic would buy again",
    "very pleased love the design",
    "brilliant easy to use",
    "perfect fit and lovely color",
    "happy customer great service",
    "outstanding performance",
    "nice and sturdy love it",
    "impressive and fun",
]
HELD_OUT = [
    ("love the quality great value", "positive"),
    ("fantastic battery highly recommend", "positive"),
    ("excellent and reliable", "positive"),
    ("happy with the design", "positive"),
    ("hate the price awful value", "negative"),
    ("broke quickly terrible battery", "negative"),
    ("useless and unreliable", "negative"),
    ("disappointing ugly design", "negative"),
]
NEGATIVE = [
    "terrible product broke quickly",
    "i hate it",
    "awful quality and slow shipping",
    "really unhappy with this",
    "horrible experience do not recommend",
    "worst purchase this year",
    "poor value bad price",
    "the support team was useless",
    "it is flimsy and unreliable",
    "bad sound and weak battery",
    "disappointing would not buy again",
    "very annoyed ugly design",
    "confusing and hard to use",
    "wrong size and faded color",
    "angry customer bad service",
    "awful performance",
    "cheap and broken hate it",
    "boring and frustrating",
]


def tokenize(text: str) -> list[str]:
    return [w for w in "".join(c if c.isalnum() else " " for c in text.lower()).split() if w]


class SentimentFlow(FlowSpec):
    """Train and evaluate a naive Bayes sentiment model."""

    smoothing = Parameter("smoothing", help="Laplace smoothing", default=1.0)

    @step
    def start(self):
        self.train_set = [(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE]
        self.test_set = HELD_OUT
        self.next(self.train)

    @step
    def train(self):
        counts = {"positive": Counter(), "negative": Counter()}
        docs = Counter()
        for text, label in self.train_set:
            counts[label].update(tokenize(text))
            docs[label] += 1
        vocab = sorted(set(counts["positive"]) | set(counts["negative"]))
        alpha = float(self.smoothing)
        loglik = {}
        for label, words in counts.items():
            total = sum(words.values()) + alpha * len(vocab)
            loglik[label] = {w: math.log((words[w] + alpha) / total) for w in vocab}
            loglik[label]["<unk>"] = math.log(alpha / total)
        n = sum(docs.values())
        self.model = {
            "labels": ["negative", "positive"],
            "priors": {label: math.log(docs[label] / n) for label in counts},
            "loglik": loglik,
        }
        self.vocab_size = len(vocab)
        self.next(self.evaluate)

    @step
    def evaluate(self):
        def predict(text):
            scores = {
                label: self.model["priors"][label]
                + sum(
                    self.model["loglik"][label].get(w, self.model["loglik"][label]["<unk>"])
                    for w in tokenize(text)
                )
                for label in self.model["labels"]
            }
            return max(scores, key=scores.get)

        hits = sum(predict(text) == label for text, label in self.test_set)
        self.accuracy = hits / len(self.test_set)
        self.next(self.end)

    @step
    def end(self):
        print(f"accuracy={self.accuracy:.2f} vocab={self.vocab_size}")


if __name__ == "__main__":
    SentimentFlow()
