"""Content-addressed code packages: the directory of a service file as one archive.

The archive is deterministic (sorted members, fixed mtimes, owners and modes), so the
same code always has the same digest and is stored once.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path

from flowhost.errors import DeployError

__all__ = [
    "EXCLUDED",
    "MAX_PACKAGE_BYTES",
    "build_package",
    "package_digest",
    "package_key",
    "unpack",
]

EXCLUDED = frozenset(
    {"__pycache__", ".git", ".venv", "venv", ".flowhost", ".metaflow", ".mypy_cache",
     ".pytest_cache", ".ruff_cache", "node_modules"}
)  # fmt: skip
MAX_PACKAGE_BYTES = 64 * 1024 * 1024


def _files(root: Path) -> list[Path]:
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDED and not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith((".pyc", ".pyo")) or name.startswith("."):
                continue
            out.append(Path(dirpath) / name)
    return out


def build_package(root: Path) -> tuple[str, bytes]:
    """``(digest, archive)`` of the code under ``root``; digest is ``sha256-<hex>``."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in _files(root):
            info = tarfile.TarInfo(path.relative_to(root).as_posix())
            data = path.read_bytes()
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    tar_bytes = raw.getvalue()
    if len(tar_bytes) > MAX_PACKAGE_BYTES:
        raise DeployError(
            f"code package of {root} is {len(tar_bytes) // (1024 * 1024)} MiB, above the "
            f"{MAX_PACKAGE_BYTES // (1024 * 1024)} MiB limit. Keep models in Metaflow "
            "artifacts and data out of the service directory."
        )
    digest = "sha256-" + hashlib.sha256(tar_bytes).hexdigest()
    return digest, gzip.compress(tar_bytes, mtime=0)


def package_digest(archive: bytes) -> str:
    """The digest of a package archive, as ``build_package`` makes it: sha256 of the
    uncompressed tar. Raises ``OSError``/``EOFError``/``zlib.error`` if it is not gzip."""
    return "sha256-" + hashlib.sha256(gzip.decompress(archive)).hexdigest()


def package_key(digest: str) -> str:
    return f"packages/{digest}.tar.gz"


def unpack(archive: bytes, target: Path) -> None:
    """Extract a package into ``target`` (created; existing content is kept)."""
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(archive)), mode="r:") as tar:
        tar.extractall(target, filter="data")
