"""Parsing of the human units used in service settings: durations and memory sizes."""

from __future__ import annotations

import re

__all__ = ["parse_bytes", "parse_duration", "parse_memory_mib"]

_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*)+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(Ki|Mi|Gi|Ti|K|M|G|T|KB|MB|GB|TB)?\s*$")
_MIB = {
    None: 1.0 / (1024 * 1024),  # plain bytes
    "Ki": 1.0 / 1024,
    "Mi": 1.0,
    "Gi": 1024.0,
    "Ti": 1024.0 * 1024,
    "K": 1000.0 / (1024 * 1024),
    "KB": 1000.0 / (1024 * 1024),
    "M": 1e6 / (1024 * 1024),
    "MB": 1e6 / (1024 * 1024),
    "G": 1e9 / (1024 * 1024),
    "GB": 1e9 / (1024 * 1024),
    "T": 1e12 / (1024 * 1024),
    "TB": 1e12 / (1024 * 1024),
}


def parse_duration(value: str | float | int) -> float:
    """Seconds from a number of seconds or a string like ``"90s"``, ``"10m"``, ``"1h30m"``.

    Raises ``ValueError`` with the accepted forms when the value cannot be read.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            if not _DURATION.match(text):
                raise ValueError(
                    f"cannot read {value!r} as a duration; use seconds or a string like "
                    "'500ms', '30s', '10m', '1h', '1h30m'"
                ) from None
            seconds = sum(float(n) * _SECONDS[u] for n, u in _DURATION_PART.findall(text))
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative (got {value!r})")
    return seconds


def parse_memory_mib(value: str | int) -> int:
    """MiB from an int (MiB) or a Kubernetes-style quantity like ``"512Mi"`` or ``"2Gi"``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a memory size, got {value!r}")
    if isinstance(value, int):
        mib = float(value)
    else:
        match = _MEMORY.match(value)
        if not match or match.group(2) is None:
            raise ValueError(
                f"cannot read {value!r} as a memory size; use a quantity with a unit like "
                "'512Mi', '2Gi', or an int number of MiB"
            )
        mib = float(match.group(1)) * _MIB[match.group(2)]
    if mib < 1:
        raise ValueError(f"memory must be at least 1Mi (got {value!r})")
    return round(mib)


def parse_bytes(value: str | int) -> int:
    """Bytes from an int or a quantity like ``"512Ki"``, ``"4Mi"`` or ``"1.5M"``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size, got {value!r}")
    if isinstance(value, int):
        return value
    match = _MEMORY.match(value)
    if not match:
        raise ValueError(
            f"cannot read {value!r} as a size; use a quantity like '512Ki' or '4Mi', or a "
            "number of bytes"
        )
    return round(float(match.group(1)) * _MIB[match.group(2)] * 1024 * 1024)
