"""Environment digests: what a version's Python environment is, as one stable hash."""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path

import flowhost
from flowhost.errors import DeployError
from flowhost.services.config import Environment

__all__ = ["environment_digest"]


def environment_digest(environment: Environment | None, code_dir: Path) -> str:
    """``sha256-<hex>`` over the interpreter, flowhost and the declared requirements.

    The platform's own environment serves versions that declare none. A requirements
    file is hashed as written; per-digest virtualenvs are built from it.
    """
    h = hashlib.sha256()
    h.update(f"python={platform.python_version()};flowhost={flowhost.__version__};".encode())
    if environment is not None and environment.requirements is not None:
        path = code_dir / environment.requirements
        if not path.is_file():
            raise DeployError(
                f"environment: requirements file {environment.requirements!r} is not in the "
                "code package. Put it next to the service file."
            )
        h.update(b"requirements=" + path.read_bytes())
    elif environment is not None and environment.name is not None:
        h.update(f"name={environment.name}".encode())
    return "sha256-" + h.hexdigest()
