"""The test package index (tests/support/pyindex.py): hand-made wheels that uv locks and
installs, served as a simple index on loopback, with Basic auth when it has credentials.
Offline and fast: uv talks only to 127.0.0.1, with a cache of the test's own."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.support.pyindex import (
    GREETING,
    NATIVE,
    NATIVE_TAG,
    USERNAME,
    PackageIndex,
    index_wheels,  # noqa: F401 (fixture)
    make_wheel,
    open_package_index,  # noqa: F401 (fixture)
    package_index,  # noqa: F401 (fixture)
    uv_binary,
)

LINUX = "x86_64-manylinux_2_28"


def uv(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``uv ARGS`` in ``tmp_path``, blind to the caller's uv settings and cache."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}
    clean.update(UV_CACHE_DIR=str(tmp_path / "uv-cache"), UV_PYTHON_DOWNLOADS="never")
    clean.update(env or {})
    return subprocess.run(
        [uv_binary(), *args, "--no-config"], cwd=tmp_path, env=clean, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip


def requirements(tmp_path: Path, *lines: str) -> str:
    path = tmp_path / "requirements.in"
    path.write_text("".join(f"{line}\n" for line in lines))
    return str(path)


def compile_linux(tmp_path: Path, index_url: str, *lines: str) -> subprocess.CompletedProcess[str]:
    return uv(tmp_path, "pip", "compile", requirements(tmp_path, *lines), "--index-url",
              index_url, "--python-version", "3.11", "--python-platform", LINUX,
              "--generate-hashes")  # fmt: skip


def greet_from(target: Path) -> str:
    """Import the installed package from ``target`` in a fresh interpreter."""
    code = "import flowhost_greeting; print(flowhost_greeting.greet('world'))"
    done = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, "
                           f"{str(target)!r}); {code}"], capture_output=True, text=True,
                          timeout=30, check=True)  # fmt: skip
    return done.stdout.strip()


# -- wheels ----------------------------------------------------------------------------------


def test_a_wheel_has_metadata_tags_and_a_record_that_hashes_every_file(tmp_path: Path) -> None:
    path = make_wheel(tmp_path, "Flowhost.Demo", "2.1", tag="py2.py3-none-any",
                      modules={"flowhost_demo": "X = 1\n", "flowhost_demo.sub": "Y = 2\n"},
                      requires=["flowhost-greeting>=1"])  # fmt: skip
    assert path.name == "flowhost_demo-2.1-py2.py3-none-any.whl"
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        info = "flowhost_demo-2.1.dist-info"
        assert {"flowhost_demo/__init__.py", "flowhost_demo/sub.py", f"{info}/METADATA",
                f"{info}/WHEEL", f"{info}/RECORD"} == names  # fmt: skip
        metadata = archive.read(f"{info}/METADATA").decode()
        assert "Name: Flowhost.Demo\nVersion: 2.1\n" in metadata
        assert "Requires-Dist: flowhost-greeting>=1\n" in metadata
        wheel = archive.read(f"{info}/WHEEL").decode()
        assert "Root-Is-Purelib: true" in wheel
        assert "Tag: py2-none-any\nTag: py3-none-any\n" in wheel
        rows = list(csv.reader(io.StringIO(archive.read(f"{info}/RECORD").decode())))
        assert {row[0] for row in rows} == names
        for name, digest, size in rows:
            if name.endswith("RECORD"):
                assert (digest, size) == ("", "")
                continue
            data = archive.read(name)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert (digest, int(size)) == (f"sha256={expected.decode()}", len(data))
    again = make_wheel(tmp_path / "again", "Flowhost.Demo", "2.1", tag="py2.py3-none-any",
                       modules={"flowhost_demo": "X = 1\n", "flowhost_demo.sub": "Y = 2\n"},
                       requires=["flowhost-greeting>=1"])  # fmt: skip
    assert again.read_bytes() == path.read_bytes()  # reproducible


def test_filler_gives_a_wheel_its_size_and_a_platform_wheel_is_not_purelib(
    tmp_path: Path,
) -> None:
    path = make_wheel(tmp_path, "heavy", "1.0", modules={"heavy": ""}, data_mb=2.5,
                      tag="cp311-cp311-manylinux_2_28_x86_64")  # fmt: skip
    assert path.stat().st_size > 2.5 * (1 << 20)  # incompressible filler
    with zipfile.ZipFile(path) as archive:
        blobs = [n for n in archive.namelist() if n.startswith("heavy/_filler/")]
        assert len(blobs) == 3
        assert sum(archive.getinfo(n).file_size for n in blobs) == int(2.5 * (1 << 20))
        assert "Root-Is-Purelib: false" in archive.read("heavy-1.0.dist-info/WHEEL").decode()
    with pytest.raises(ValueError, match="tag must be python-abi-platform"):
        make_wheel(tmp_path, "bad", "1.0", modules={}, tag="py3-any")


# -- the index over HTTP ---------------------------------------------------------------------


def test_pages_files_and_metadata_carry_the_hashes_uv_checks(
    open_package_index: PackageIndex,  # noqa: F811
) -> None:
    index = open_package_index
    root = httpx.get(index.url, timeout=10)
    assert root.status_code == 200
    assert f'href="/simple/{GREETING}/"' in root.text
    assert f'href="/simple/{NATIVE}/"' in root.text
    page = httpx.get(f"{index.url}{GREETING}/", timeout=10)
    (wheel,) = index.projects()[GREETING]
    whole, meta = index.hashes(wheel)
    assert f'href="/files/{wheel.name}#sha256={whole}"' in page.text
    assert f'data-core-metadata="sha256={meta}"' in page.text
    as_json = {"Accept": "application/vnd.pypi.simple.v1+json"}
    listed = httpx.get(f"{index.url}{NATIVE}/", timeout=10, headers=as_json).json()
    (native,) = listed["files"]
    assert native["filename"] == f"flowhost_native-1.0-{NATIVE_TAG}.whl"
    assert listed["meta"]["api-version"] == "1.0"
    body = httpx.get(f"http://127.0.0.1:{index.port}{native['url']}", timeout=10).content
    assert hashlib.sha256(body).hexdigest() == native["hashes"]["sha256"]
    metadata = httpx.get(f"http://127.0.0.1:{index.port}{native['url']}.metadata", timeout=10)
    assert hashlib.sha256(metadata.content).hexdigest() == native["core-metadata"]["sha256"]
    assert "Name: flowhost-native" in metadata.text
    moved = httpx.get(f"{index.url}Flowhost_Greeting/", timeout=10)
    assert (moved.status_code, moved.headers["location"]) == (301, f"/simple/{GREETING}/")
    assert httpx.get(f"{index.url}nothing-here/", timeout=10).status_code == 404
    assert index.asked(GREETING)
    assert index.refused == []


def test_a_private_index_answers_401_without_its_credentials(
    package_index: PackageIndex,  # noqa: F811
) -> None:
    index = package_index
    denied = httpx.get(f"{index.url}{GREETING}/", timeout=10)
    assert denied.status_code == 401
    assert denied.headers["www-authenticate"].startswith("Basic realm=")
    wrong = httpx.get(f"{index.url}{GREETING}/", auth=(USERNAME, "wrong"), timeout=10)
    assert wrong.status_code == 401
    assert index.password is not None
    right = httpx.get(f"{index.url}{GREETING}/", auth=(USERNAME, index.password), timeout=10)
    assert right.status_code == 200
    assert index.refused[-2:] == [f"/simple/{GREETING}/"] * 2
    with pytest.raises(ValueError, match="need both username and password"):
        PackageIndex(Path("."), username="only")


# -- uv against it ---------------------------------------------------------------------------


def test_uv_locks_and_installs_from_the_private_index_with_credentials_in_the_url(
    tmp_path: Path, package_index: PackageIndex,  # noqa: F811
) -> None:  # fmt: skip
    assert package_index.password is not None
    locked = compile_linux(tmp_path, package_index.url_with_credentials, GREETING)
    assert locked.returncode == 0, locked.stderr
    (wheel,) = package_index.projects()[GREETING]
    assert f"{GREETING}==1.0" in locked.stdout
    assert f"--hash=sha256:{package_index.hashes(wheel)[0]}" in locked.stdout
    assert package_index.password not in locked.stdout + locked.stderr
    lock = tmp_path / "requirements.txt"
    lock.write_text(locked.stdout)
    target = tmp_path / "target"
    installed = uv(tmp_path, "pip", "install", "--require-hashes", "-r", str(lock),
                   "--target", str(target), "--index-url", package_index.url_with_credentials,
                   "--python", sys.executable)  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    assert greet_from(target) == "hello world"
    assert f"/files/{wheel.name}" in package_index.requests


def test_uv_takes_the_credentials_from_uv_index_variables(
    tmp_path: Path, package_index: PackageIndex,  # noqa: F811
) -> None:  # fmt: skip
    assert package_index.password is not None
    env = {
        "UV_DEFAULT_INDEX": f"private={package_index.url}",
        "UV_INDEX_PRIVATE_USERNAME": USERNAME,
        "UV_INDEX_PRIVATE_PASSWORD": package_index.password,
    }
    target = tmp_path / "target"
    installed = uv(tmp_path, "pip", "install", "-r", requirements(tmp_path, GREETING),
                   "--target", str(target), "--python", sys.executable, env=env)  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    assert greet_from(target) == "hello world"


def test_without_credentials_uv_is_refused_and_says_so(
    tmp_path: Path, package_index: PackageIndex,  # noqa: F811
) -> None:  # fmt: skip
    locked = compile_linux(tmp_path, package_index.url, GREETING)
    assert locked.returncode != 0
    assert "401 Unauthorized" in locked.stderr
    assert f"/simple/{GREETING}/" in package_index.refused


def test_a_package_with_only_a_macos_wheel_cannot_be_locked_for_linux(
    tmp_path: Path, package_index: PackageIndex,  # noqa: F811
) -> None:  # fmt: skip
    locked = compile_linux(tmp_path, package_index.url_with_credentials, GREETING, NATIVE)
    assert locked.returncode != 0
    assert f"{NATIVE}==1.0 has no wheels with a matching platform tag" in locked.stderr
    assert "macosx_11_0_arm64" in locked.stderr


def test_dependencies_resolve_through_the_index_and_new_wheels_are_served_at_once(
    tmp_path: Path, index_wheels: Path,  # noqa: F811
) -> None:  # fmt: skip
    root = tmp_path / "wheels"
    root.mkdir()
    for wheel in index_wheels.glob("flowhost_greeting-*.whl"):
        (root / wheel.name).write_bytes(wheel.read_bytes())
    with PackageIndex(root) as index:
        app = {"flowhost_app": "import flowhost_greeting\n"}
        make_wheel(root, "flowhost-app", "0.3", modules=app, requires=[f"{GREETING}>=1"])
        locked = compile_linux(tmp_path, index.url, "flowhost-app")
        assert locked.returncode == 0, locked.stderr
        assert "flowhost-app==0.3" in locked.stdout
        assert f"{GREETING}==1.0" in locked.stdout
        assert index.asked("flowhost-app")
        assert index.asked(GREETING)
