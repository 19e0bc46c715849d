"""Helpers for testing a service in-process, without a server.

```python
from flowhost.services.testing import start

svc = start(Sentiment, run="SentimentFlow/12")   # binds artifacts, runs initialize()
assert svc.predict(PredictIn(text="great")).label == "positive"
```
"""

from __future__ import annotations

from typing import TypeVar

from flowhost.services.runtime.instance import construct
from flowhost.services.spec import WebServiceSpec, definition_of

__all__ = ["start"]

S = TypeVar("S", bound=WebServiceSpec)


def start(cls: type[S], *, run: str | None = None) -> S:
    """An initialized instance of ``cls``, as an instance start makes it.

    ``run`` pins the artifact run; by default the binding resolves as at deploy time.
    """
    instance, _ = construct(cls, definition_of(cls), run)
    assert isinstance(instance, cls)
    return instance
