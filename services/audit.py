"""``@audit``: a check run against a newly deployed version, through real requests,
before it may be promoted.

```python
class Sentiment(WebServiceSpec):
    @audit
    def knows_good_from_bad(self, client):
        assert client.call("predict", {"text": "great"})["label"] == "positive"
```

Audits run in the deploying process (``flowhost deploy`` or ``flowhost.deploy``) and
reach the new version over HTTP; ``self`` is not initialized (it holds no model).
A failing assert or exception blocks promotion, and the platform records why.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import FunctionType
from typing import Any, TypeVar

from flowhost.errors import SpecError

__all__ = ["AUDIT_ATTR", "audit"]

AUDIT_ATTR = "__flowhost_audit__"

F = TypeVar("F", bound=Callable[..., Any])


def audit(fn: F) -> F:
    """Mark a method ``(self, client)`` as an audit of the service."""
    where = f"@audit {getattr(fn, '__qualname__', repr(fn))!r}"
    if type(fn) is not FunctionType:
        raise SpecError(f"{where}: @audit decorates a method (got {type(fn).__name__}).")
    params = list(inspect.signature(fn).parameters)
    if len(params) != 2 or params[0] != "self":
        raise SpecError(
            f"{where}: an audit takes (self, client) (got ({', '.join(params)})). "
            "Use the client to call the new version's endpoints."
        )
    setattr(fn, AUDIT_ATTR, True)
    return fn
