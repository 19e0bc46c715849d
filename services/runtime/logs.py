"""Structured JSON logs: one line per record, one access line per request."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from typing import Any

from pydantic_core import to_json

__all__ = ["ACCESS", "AccessLog", "JsonFormatter", "configure_logging"]

ACCESS = logging.getLogger("flowhost.access")


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", ...fields}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)  # pyright: ignore[reportUnknownArgumentType]
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: str = "INFO") -> None:
    """Send flowhost's and uvicorn's logs to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("flowhost", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
    logging.getLogger("uvicorn.access").disabled = True  # flowhost writes its own access log


class AccessLog:
    """One JSON line per request, in the same shape as :class:`JsonFormatter`'s, written
    without the logging machinery: it is on every request's path.

    Lines are collected during one event-loop iteration and written to the file
    descriptor with one ``os.write``; ``flush()`` writes what is pending (at shutdown).
    Honors the ``flowhost.access`` logger's level (``--log-level warning`` turns it off).
    """

    def __init__(self, fd: int = 2) -> None:
        self.fd = fd
        self._pending: list[bytes] = []
        self._scheduled = False
        self._second = -1
        self._stamp = ""

    @property
    def enabled(self) -> bool:
        return ACCESS.isEnabledFor(logging.INFO)

    def _ts(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int((now - second) * 1000):03d}Z"

    def write(self, fields: dict[str, Any]) -> None:
        line = {"ts": self._ts(time.time()), "level": "info", "logger": ACCESS.name}
        line["message"] = "request"
        line.update(fields)
        self._pending.append(to_json(line) + b"\n")
        if not self._scheduled:
            self._scheduled = True
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop (tests, shutdown): write now
                self.flush()

    def flush(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        data = memoryview(b"".join(self._pending))
        self._pending.clear()
        while data:
            written = os.write(self.fd, data)
            data = data[written:]
