"""AWS resource types that take tags, read from ``taggable.txt`` (one type token per line,
generated from the installed pulumi-aws by ``uv run python -m policies.gen_taggable``)."""

import re
from pathlib import Path
from typing import Final

_LIST = Path(__file__).with_name("taggable.txt")


def _load() -> tuple[str, frozenset[str]]:
    text = _LIST.read_text(encoding="utf-8")
    version = re.search(r"pulumi-aws ([^)\s]+)\)", text)
    tokens = frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )
    return (version.group(1) if version else "unknown"), tokens


_VERSION, _TYPES = _load()
PULUMI_AWS_VERSION: Final = _VERSION
TAGGABLE_TYPES: Final = _TYPES
