"""A private Python package index for tests: wheels written by hand, served on loopback.

Environment builds lock and install from a package index, often a private one behind a
password. Tests need one that is offline, fast and says what it was asked for:

- ``make_wheel`` writes a valid wheel with ``zipfile`` (``METADATA``, ``WHEEL``, ``RECORD``
  with sha256 hashes, optional incompressible filler to reach a size): no build backend,
  no network.
- ``PackageIndex`` serves the wheels of a directory as a PEP 503 simple index (PEP 691
  JSON when asked for it, PEP 658 metadata files) from a thread on 127.0.0.1, with HTTP
  Basic auth when it is given credentials (401 otherwise). It lists the directory on
  every request, so a wheel written after start is served. ``requests`` keeps every path
  asked, ``refused`` those answered 401.

Fixtures (import them into a conftest or test module): ``index_wheels``, a session's
directory with the two test packages, and ``package_index`` (with credentials) or
``open_package_index`` (without) serving it:

- ``flowhost-greeting`` 1.0, pure Python: ``flowhost_greeting.greet(name)`` returns
  ``f"hello {name}"``;
- ``flowhost-native`` 1.0, ONLY as a ``cp311-cp311-macosx_11_0_arm64`` wheel: no lock for
  Linux can be made, and the resolver's error names the package.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import itertools
import json
import random
import re
import secrets
import shutil
import threading
import zipfile
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, unquote, urlsplit

import pytest

__all__ = [
    "GREETING",
    "NATIVE",
    "NATIVE_TAG",
    "USERNAME",
    "PackageIndex",
    "index_wheels",
    "make_test_packages",
    "make_wheel",
    "normalize",
    "open_package_index",
    "package_index",
    "uv_binary",
]

GREETING, NATIVE = "flowhost-greeting", "flowhost-native"
NATIVE_TAG = "cp311-cp311-macosx_11_0_arm64"
USERNAME = "flowhost-ci"  # the private index's user in the fixture
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
_EPOCH = (1980, 1, 1, 0, 0, 0)  # zip's earliest date: wheels made twice are identical
_MIB = 1 << 20


def normalize(name: str) -> str:
    """A project's name as PEP 503 compares it (``Flowhost_Greeting`` -> ``flowhost-greeting``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def _module_path(module: str) -> str:
    """``pkg`` -> ``pkg/__init__.py``; ``pkg.sub`` -> ``pkg/sub.py``; a path ending in
    ``.py`` (or any other file with a ``/``) is taken as it is."""
    if module.endswith(".py") or "/" in module:
        return module
    parts = module.split(".")
    return "/".join(parts) + ("/__init__.py" if len(parts) == 1 else ".py")


def _tags(tag: str) -> list[str]:
    """A compressed tag set (``py2.py3-none-any``) as WHEEL's one ``Tag:`` line each."""
    try:
        python, abi, platform = tag.split("-")
    except ValueError:
        raise ValueError(
            f"make_wheel: tag must be python-abi-platform (got {tag!r}). "
            "Use e.g. 'py3-none-any' or 'cp311-cp311-manylinux_2_28_x86_64'."
        ) from None
    combos = itertools.product(python.split("."), abi.split("."), platform.split("."))
    return ["-".join(combo) for combo in combos]


def make_wheel(
    directory: Path,
    name: str,
    version: str,
    *,
    modules: dict[str, str],
    tag: str = "py3-none-any",
    requires: Iterable[str] = (),
    data_mb: float = 0,
) -> Path:
    """Write ``<name>-<version>-<tag>.whl`` into ``directory`` and return its path.

    ``modules``: module name (``pkg``, ``pkg.sub``) or file path -> source. ``requires``:
    ``Requires-Dist`` lines (``"flowhost-greeting>=1"``). ``data_mb``: that many MiB of
    incompressible filler under the first package's ``_filler/``, so the wheel and its
    install have a real size (for cold-start measurements)."""
    tags = _tags(tag)
    stem = normalize(name).replace("-", "_")
    info = f"{stem}-{version}.dist-info"
    files = [(_module_path(module), source.encode()) for module, source in modules.items()]
    top = files[0][0].split("/")[0].removesuffix(".py") if files else f"{stem}_data"
    left, serial = int(data_mb * _MIB), 0
    filler: list[tuple[str, bytes]] = []
    while left > 0:
        size = min(left, _MIB)
        noise = random.Random(f"{name}-{version}-{serial}").randbytes(size)
        filler.append((f"{top}/_filler/blob-{serial:04d}.bin", noise))
        left, serial = left - size, serial + 1
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {requirement}\n" for requirement in requires)
    purelib = all(t.endswith("-none-any") for t in tags)
    wheel = "Wheel-Version: 1.0\nGenerator: flowhost-tests\n"
    wheel += f"Root-Is-Purelib: {'true' if purelib else 'false'}\n"
    wheel += "".join(f"Tag: {t}\n" for t in tags)
    meta = [(f"{info}/METADATA", metadata.encode()), (f"{info}/WHEEL", wheel.encode())]
    record = "".join(
        f"{path},{_record_hash(data)},{len(data)}\n" for path, data in [*files, *filler, *meta]
    )
    record += f"{info}/RECORD,,\n"
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{stem}-{version}-{tag}.whl"
    with zipfile.ZipFile(target, "w") as archive:
        for path, data in [*files, *filler, *meta, (f"{info}/RECORD", record.encode())]:
            entry = zipfile.ZipInfo(path, date_time=_EPOCH)
            entry.external_attr = 0o644 << 16
            stored = path.endswith(".bin")
            entry.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            archive.writestr(entry, data)
    return target


# -- the index --------------------------------------------------------------------------


def _project_of(filename: str) -> str | None:
    """The normalized project of a wheel or sdist file name; None for other files."""
    if filename.endswith(".whl"):
        return normalize(filename.split("-")[0])
    if filename.endswith((".tar.gz", ".zip")):
        return normalize(filename.rsplit("-", 1)[0])
    return None


def _wheel_metadata(path: Path) -> bytes | None:
    """A wheel's ``METADATA`` (served as the PEP 658 ``<file>.metadata``)."""
    if not path.name.endswith(".whl"):
        return None
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name.count("/") == 1 and name.endswith(".dist-info/METADATA"):
                return archive.read(name)
    return None


class PackageIndex:
    """A PEP 503 simple index of the wheels in ``root`` on ``127.0.0.1`` (a free port),
    served from a thread from construction until ``close()``; see the module docstring."""

    def __init__(self, root: Path, username: str | None = None, password: str | None = None):
        if (username is None) != (password is None):
            raise ValueError(
                "PackageIndex: credentials need both username and password (got only "
                f"{'username' if password is None else 'password'}). Give both, or neither."
            )
        self.root = Path(root)
        self.username, self.password = username, password
        self.requests: list[str] = []  # every path asked, in order
        self.refused: list[str] = []  # the paths answered 401
        self._lock = threading.Lock()
        self._hashes: dict[tuple[Path, int, int], tuple[str, str | None]] = {}
        handler = type("Handler", (_Handler,), {"index": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"pyindex-{self.port}", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """The index URL, without credentials (``http://127.0.0.1:<port>/simple/``)."""
        return f"http://127.0.0.1:{self.port}/simple/"

    @property
    def url_with_credentials(self) -> str:
        """The index URL with the credentials in it, as ``--index-url`` takes them."""
        if self.username is None or self.password is None:
            return self.url
        user, password = quote(self.username, safe=""), quote(self.password, safe="")
        return f"http://{user}:{password}@127.0.0.1:{self.port}/simple/"

    @property
    def credentials_json(self) -> str:
        """``{"username": ..., "password": ...}``: the index secret's value."""
        return json.dumps({"username": self.username, "password": self.password})

    def asked(self, project: str) -> bool:
        """Whether the index was asked for ``project``'s page."""
        page = f"/simple/{normalize(project)}/"
        return any(path == page for path in list(self.requests))

    def projects(self) -> dict[str, list[Path]]:
        """Normalized project name -> its files in ``root``, sorted by name."""
        found: dict[str, list[Path]] = {}
        for path in sorted(self.root.iterdir()) if self.root.is_dir() else []:
            project = _project_of(path.name)
            if project is not None and path.is_file():
                found.setdefault(project, []).append(path)
        return found

    def hashes(self, path: Path) -> tuple[str, str | None]:
        """sha256 hex of the file and of its metadata (None for an sdist), cached."""
        stat = path.stat()
        key = (path, stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if key not in self._hashes:
                with path.open("rb") as stream:
                    whole = hashlib.file_digest(stream, "sha256").hexdigest()
                metadata = _wheel_metadata(path)
                meta = hashlib.sha256(metadata).hexdigest() if metadata is not None else None
                self._hashes[key] = (whole, meta)
            return self._hashes[key]

    def authorized(self, header: str | None) -> bool:
        if self.username is None or self.password is None:
            return True
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return hmac.compare_digest((header or "").encode(), f"Basic {token}".encode())

    def record(self, path: str, *, refused: bool) -> None:
        with self._lock:
            self.requests.append(path)
            if refused:
                self.refused.append(path)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> PackageIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Handler(BaseHTTPRequestHandler):
    """``/simple/``, ``/simple/<project>/``, ``/files/<file>`` and ``<file>.metadata``."""

    index: ClassVar[PackageIndex]
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: ``requests`` keeps what was asked."""

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, *, body: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        allowed = self.index.authorized(self.headers.get("Authorization"))
        self.index.record(path, refused=not allowed)
        if not allowed:
            self._send(401, b"401: credentials required", "text/plain", body,
                       {"WWW-Authenticate": 'Basic realm="flowhost-test-index"'})  # fmt: skip
            return
        wants_json = JSON_TYPE in (self.headers.get("Accept") or "")
        projects = self.index.projects()
        if path in ("/simple", "/simple/"):
            self._page(None, sorted(projects), [], wants_json, body)
            return
        if path.startswith("/simple/"):
            name = path.removeprefix("/simple/").strip("/")
            if normalize(name) != name:
                self._send(
                    301, b"", "text/plain", body, {"Location": f"/simple/{normalize(name)}/"}
                )
            elif name in projects:
                self._page(name, [], projects[name], wants_json, body)
            else:
                self._send(404, f"404: no project {name!r}".encode(), "text/plain", body)
            return
        if path.startswith("/files/"):
            self._file(path.removeprefix("/files/"), projects, body)
            return
        self._send(404, b"404: not an index path", "text/plain", body)

    def _file(self, name: str, projects: dict[str, list[Path]], body: bool) -> None:
        files = {p.name: p for paths in projects.values() for p in paths}
        wanted = files.get(name.removesuffix(".metadata"))
        if wanted is None:
            self._send(404, f"404: no file {name!r}".encode(), "text/plain", body)
        elif name.endswith(".metadata"):
            metadata = _wheel_metadata(wanted)
            if metadata is None:
                self._send(404, b"404: no metadata", "text/plain", body)
            else:
                self._send(200, metadata, "text/plain; charset=utf-8", body)
        else:
            size = wanted.stat().st_size
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            if body:
                with wanted.open("rb") as stream:
                    shutil.copyfileobj(stream, self.wfile, _MIB)

    def _page(
        self, project: str | None, names: list[str], files: list[Path], as_json: bool, body: bool
    ) -> None:
        entries: list[dict[str, Any]] = []
        for path in files:
            whole, meta = self.index.hashes(path)
            entry: dict[str, Any] = {"filename": path.name, "url": f"/files/{quote(path.name)}",
                                     "hashes": {"sha256": whole}}  # fmt: skip
            if meta is not None:
                entry["core-metadata"] = entry["dist-info-metadata"] = {"sha256": meta}
            entries.append(entry)
        if as_json:
            data: dict[str, Any] = {"meta": {"api-version": "1.0"}}
            if project is None:
                data["projects"] = [{"name": name} for name in names]
            else:
                data.update(name=project, files=entries)
            self._send(200, json.dumps(data).encode(), JSON_TYPE, body)
            return
        if project is None:
            links = [f'<a href="/simple/{n}/">{html.escape(n)}</a>' for n in names]
        else:
            links = []
            for entry in entries:
                core = entry.get("core-metadata")
                extra = f' data-core-metadata="sha256={core["sha256"]}"' if core else ""
                extra += f' data-dist-info-metadata="sha256={core["sha256"]}"' if core else ""
                href = f"{entry['url']}#sha256={entry['hashes']['sha256']}"
                links.append(f'<a href="{href}"{extra}>{html.escape(entry["filename"])}</a>')
        title = f"Links for {project}" if project else "Simple index"
        page = (
            '<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.0">'
            f"<title>{title}</title></head><body><h1>{title}</h1>\n"
            + "<br/>\n".join(links)
            + "\n</body></html>\n"
        )
        self._send(200, page.encode(), "text/html; charset=utf-8", body)

    def _send(
        self, status: int, content: bytes, kind: str, body: bool,
        headers: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(content)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if body:
            self.wfile.write(content)


# -- the test packages and fixtures ----------------------------------------------------------


def make_test_packages(directory: Path) -> Path:
    """``flowhost-greeting`` 1.0 (pure Python) and ``flowhost-native`` 1.0 (macOS arm64 only)."""
    make_wheel(directory, GREETING, "1.0", modules={
        "flowhost_greeting": 'def greet(name):\n    return f"hello {name}"\n',
    })  # fmt: skip
    make_wheel(directory, NATIVE, "1.0", tag=NATIVE_TAG, modules={
        "flowhost_native": "ARCHITECTURE = 'macosx_11_0_arm64'\n",
    })  # fmt: skip
    return directory


def uv_binary() -> str:
    """The path of the ``uv`` binary the project's environment ships."""
    import uv

    return uv.find_uv_bin()


@pytest.fixture(scope="session")
def index_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the two test packages' wheels (made once per session)."""
    return make_test_packages(tmp_path_factory.mktemp("index-wheels"))


@pytest.fixture(scope="session")
def package_index(index_wheels: Path) -> Iterator[PackageIndex]:
    """The test packages behind HTTP Basic auth (``USERNAME``, a fresh random password)."""
    with PackageIndex(index_wheels, USERNAME, secrets.token_urlsafe(18)) as index:
        yield index


@pytest.fixture(scope="session")
def open_package_index(index_wheels: Path) -> Iterator[PackageIndex]:
    """The test packages without credentials."""
    with PackageIndex(index_wheels) as index:
        yield index
