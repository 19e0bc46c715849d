"""Python environments of versions: resolve (lock) at deploy, build once per digest.

A version that declares no environment runs in the platform's own. A version with a
requirements file gets it locked with uv at deploy time; the digest covers the
interpreter, flowhost's version and the lock, so versions with the same lock share one
cached virtualenv. That virtualenv sees the platform's packages (flowhost, its
runtime) after its own, so a service's pins win.
"""

from __future__ import annotations

import hashlib
import platform
import shutil
import site
import subprocess
import sys
import sysconfig
import tempfile
import threading
from pathlib import Path

import uv
from pydantic import BaseModel, ConfigDict

import flowhost
from flowhost.errors import DeployError
from flowhost.lambdas.objectstore import ObjectStore
from flowhost.services.config import Environment

__all__ = ["EnvironmentCache", "ResolvedEnvironment", "lock_key", "resolve_environment"]

UV_TIMEOUT = 900.0


class ResolvedEnvironment(BaseModel):
    model_config = ConfigDict(frozen=True)

    digest: str
    lock: str | None = None  # pinned requirements; None: the platform's own environment


def lock_key(digest: str) -> str:
    return f"environments/{digest}.txt"


def _uv(*args: str, what: str) -> str:
    try:
        done = subprocess.run(
            [uv.find_uv_bin(), *args], capture_output=True, text=True, timeout=UV_TIMEOUT,
            check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise DeployError(f"environment: {what} took longer than {UV_TIMEOUT:g}s.") from None
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-8:])
        raise DeployError(f"environment: {what} failed:\n{tail}")
    return done.stdout


def resolve_environment(environment: Environment | None, code_dir: Path) -> ResolvedEnvironment:
    """Lock the declared requirements (if any) and compute the environment digest."""
    h = hashlib.sha256()
    h.update(f"python={platform.python_version()};flowhost={flowhost.__version__};".encode())
    if environment is None:
        return ResolvedEnvironment(digest="sha256-" + h.hexdigest())
    if environment.name is not None:
        raise DeployError(
            f"environment: named environments ({environment.name!r}) are defined by a platform "
            "deployment; the local platform builds environments from requirements files. "
            "Use Environment(requirements='requirements.txt')."
        )
    assert environment.requirements is not None
    path = code_dir / environment.requirements
    if not path.is_file():
        raise DeployError(
            f"environment: requirements file {environment.requirements!r} is not in the code "
            "package. Put it next to the service file."
        )
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    lock = _uv(
        "pip", "compile", str(path), "--python-version", version, "--no-header",
        "--quiet", "--no-annotate", what=f"locking {environment.requirements}",
    )  # fmt: skip
    h.update(b"lock=" + lock.encode())
    return ResolvedEnvironment(digest="sha256-" + h.hexdigest(), lock=lock)


class EnvironmentCache:
    """Virtualenvs under ``root``, one per environment digest, built on first use."""

    def __init__(self, root: Path, objects: ObjectStore) -> None:
        self.root = root
        self.objects = objects
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def python(self, digest: str) -> str:
        """The interpreter for ``digest``: the platform's own, or a cached virtualenv's."""
        if not self.objects.exists(lock_key(digest)):
            return sys.executable
        target = self.root / digest
        python = target / "bin" / "python"
        with self._guard:
            lock = self._locks.setdefault(digest, threading.Lock())
        with lock:
            if not python.exists():
                self._build(target, self.objects.get(lock_key(digest)).decode())
        return str(python)

    def _build(self, target: Path, lock: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=".build-"))
        try:
            venv = tmp / "venv"
            _uv("venv", str(venv), "--python", sys.executable, "--quiet", what="creating a venv")
            requirements = tmp / "requirements.lock"
            requirements.write_text(lock)
            _uv(
                "pip", "install", "--python", str(venv / "bin" / "python"), "-r",
                str(requirements), "--quiet", what="installing the locked requirements",
            )  # fmt: skip
            purelib = sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)})
            platform_site = [p for p in site.getsitepackages() if p.endswith("site-packages")]
            Path(purelib, "_flowhost_platform.pth").write_text(
                "".join(f"import site; site.addsitedir({p!r})\n" for p in platform_site)
            )
            # The interpreter works after the move (pyvenv.cfg is found next to it);
            # console scripts would not, and none are used.
            if target.exists():
                shutil.rmtree(target)
            venv.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
