"""Lock and install an environment with uv, and pack the result: the build's own steps.

``uv pip compile`` locks the requirements for the runtime's Python and platform with the
runtime's pins as constraints (so nothing the runtime imports changes version); ``uv pip
install --target`` installs the lock, less what the runtime image already has, into a
relocatable directory (no interpreter, no Docker) with bytecode compiled; ``pack`` makes
the gzip tar that instances fetch. A private index's credentials go to uv in its
environment only, and every line uv prints is redacted before it is kept.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import uv
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from flowhost.lambdas.environments.layout import PackagePin
from flowhost.lambdas.environments.request import EnvironmentRequest

__all__ = ["BuildFailed", "IndexAccess", "Packed", "install", "lock", "pack", "split_lock"]

UV_TIMEOUT = 900.0
_DECORATION = " \u00d7\u2570\u2500\u25b6\u2502"  # uv's error tree: the marks, the spaces


class BuildFailed(Exception):
    """The environment cannot be built; the message names what and the fix."""


@dataclass(frozen=True)
class IndexAccess:
    """A package index and, for a private one, its credentials (never written anywhere)."""

    url: str | None = None
    username: str | None = None
    password: str | None = None

    def environment(self) -> dict[str, str]:
        if self.url is None:
            return {}
        url = self.url
        if self.username is not None and self.password is not None:
            parts = urlsplit(url)
            auth = f"{quote(self.username, safe='')}:{quote(self.password, safe='')}@"
            url = urlunsplit(parts._replace(netloc=auth + parts.netloc.rpartition("@")[2]))
        return {"UV_DEFAULT_INDEX": url}

    def redact(self, text: str) -> str:
        for secret in (self.password, self.username):
            if secret:
                text = text.replace(quote(secret, safe=""), "***").replace(secret, "***")
        return text


Log = Callable[[str], None]


def _uv(args: list[str], *, index: IndexAccess, log: Log, what: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}
    env.update(index.environment())
    env.update({"UV_NO_PROGRESS": "1", "UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1"})
    try:
        done = subprocess.run(
            [uv.find_uv_bin(), *args], capture_output=True, text=True, timeout=UV_TIMEOUT,
            check=False, env=env, cwd=cwd,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise BuildFailed(f"{what} took longer than {UV_TIMEOUT:g}s") from None
    lines = [index.redact(line.rstrip()) for line in done.stderr.splitlines() if line.strip()]
    for line in lines[-40:]:
        log(line)
    if done.returncode != 0:
        detail = " ".join(line.strip(_DECORATION) for line in lines[-6:])
        raise BuildFailed(f"{what} failed: {detail}")
    return done.stdout


def _target_args(request: EnvironmentRequest) -> list[str]:
    args = ["--python-version", request.target.python]
    if request.target.platform is not None:
        args += ["--python-platform", request.target.platform]
    return args


def lock(request: EnvironmentRequest, work: Path, *, index: IndexAccess, log: Log) -> str:
    """Every package the requirements need, pinned, for the request's target."""
    (work / "requirements.in").write_text(request.requirements)
    (work / "runtime.txt").write_text(request.runtime)
    return _uv(
        ["pip", "compile", "requirements.in", "--constraints", "runtime.txt", "--no-header",
         "--no-annotate", "--generate-hashes", *_target_args(request)],
        index=index, log=log, cwd=work,
        what=f"locking the requirements for {request.target.describe()}",
    )  # fmt: skip


def _entries(lock_text: str) -> list[str]:
    """The lock's requirements, one per entry, continuation lines joined:
    ``name==1.0 --hash=sha256:... --hash=sha256:...``."""
    entries: list[str] = []
    parts: list[str] = []
    for raw in lock_text.splitlines():
        line = raw.split("#", 1)[0].strip()
        continued = line.endswith("\\")
        if line.rstrip("\\").strip():
            parts.append(line.rstrip("\\").strip())
        if not continued and parts:
            entries.append(" ".join(parts))
            parts = []
    return [entry for entry in entries if not entry.startswith("-")]


def split_lock(lock_text: str, runtime: str) -> tuple[dict[str, PackagePin], list[str]]:
    """(the lock's entries to install -> their pins, the entries the runtime image
    already has). An entry keeps its ``--hash`` options, so the install checks every
    file it downloads against the hashes the lock recorded."""
    have = {
        canonicalize_name(line.split("==")[0]): line.split("==")[1]
        for line in runtime.splitlines()
        if "==" in line
    }
    install_pins: dict[str, PackagePin] = {}
    provided: list[str] = []
    for entry in _entries(lock_text):
        words = entry.split()
        hashes = [w.removeprefix("--hash=") for w in words if w.startswith("--hash=")]
        req = Requirement(" ".join(w for w in words if not w.startswith("--hash=")))
        version = next(iter(req.specifier)).version if len(req.specifier) == 1 else (req.url or "")
        if have.get(canonicalize_name(req.name)) == version:
            provided.append(entry)
        else:
            install_pins[entry] = PackagePin(name=req.name, version=version, hashes=hashes)
    return install_pins, provided


def install(
    request: EnvironmentRequest, lines: list[str], work: Path, *, index: IndexAccess, log: Log
) -> Path:
    """Install the lock ``lines`` (no dependencies: the lock has them all) into
    ``work/target``."""
    target = work / "target"
    target.mkdir()
    if not lines:
        return target
    (work / "install.txt").write_text("".join(f"{line}\n" for line in lines))
    _uv(
        ["pip", "install", "--target", str(target), "--python", sys.executable, "--no-deps",
         "--compile-bytecode",
         "-r", "install.txt", *_target_args(request)],
        index=index, log=log, cwd=work, what=f"installing {len(lines)} packages",
    )  # fmt: skip
    return target


@dataclass(frozen=True)
class Packed:
    data: bytes
    sha256: str
    unpacked_bytes: int
    files: int


def pack(target: Path) -> Packed:
    """The directory as a gzip tar (sorted, no owners; files keep their times, so the
    compiled bytecode stays valid where it is unpacked)."""
    buffer = io.BytesIO()
    size = files = 0
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as tar:
        for path in sorted(target.rglob("*")):
            if path.name == ".lock" and path.parent == target:  # uv's, for the install only
                continue
            info = tar.gettarinfo(str(path), arcname=path.relative_to(target).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            # mtimes are kept: each .pyc records its source's, and is used only if they match
            if info.isfile():
                size += info.size
                files += 1
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            elif info.isdir() or info.issym():
                tar.addfile(info)
    data = buffer.getvalue()
    return Packed(data, hashlib.sha256(data).hexdigest(), size, files)


def index_from_env(env: Mapping[str, str], url: str | None) -> IndexAccess:
    """The index of the request, with the credentials the build was given (JSON in
    ``FLOWHOST_PACKAGE_INDEX_CREDENTIALS``: {"username": ..., "password": ...})."""
    raw = env.get("FLOWHOST_PACKAGE_INDEX_CREDENTIALS")
    if not raw or url is None:
        return IndexAccess(url=url)
    try:
        creds = json.loads(raw)
        return IndexAccess(
            url=url, username=str(creds["username"]), password=str(creds["password"])
        )
    except (ValueError, KeyError, TypeError):
        raise BuildFailed(
            "FLOWHOST_PACKAGE_INDEX_CREDENTIALS: not JSON with 'username' and 'password'. "
            "Store the index credentials in that shape in the secret flowhost:packageIndex names"
        ) from None
