"""scripts/build-lambda builds the control plane's Lambda bundle from uv.lock for the
Lambda runtime's platform: what it holds, what it leaves out, and that the handler
imports from it alone. Needs the package index (PyPI) the first time; uv's cache makes
later builds fast."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.timeout(900)


def platform_tags(bundle: Path) -> dict[str, set[str]]:
    """Each installed wheel's tags (``cp311-cp311-manylinux_2_17_x86_64``), by name."""
    tags: dict[str, set[str]] = {}
    with zipfile.ZipFile(bundle) as archive:
        for name in archive.namelist():
            if name.endswith(".dist-info/WHEEL"):
                wheel = name.split("-", 1)[0]
                lines = archive.read(name).decode().splitlines()
                tags[wheel] = {line[5:] for line in lines if line.startswith("Tag: ")}
    return tags


def loads_on_amazon_linux_2(tag: str) -> bool:
    match = re.fullmatch(r".*-manylinux_2_(\d+)_x86_64|.*-manylinux(1|2010|2014)_x86_64", tag)
    return match is not None and (match.group(1) is None or int(match.group(1)) <= 26)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("lambda") / "lambda.zip"
    result = subprocess.run(
        [str(ROOT / "scripts" / "build-lambda"), "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=840, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    assert "==> installing " in result.stderr  # progress is shown
    assert f"==> wrote {output}: " in result.stderr
    return output


def test_the_bundle_holds_the_control_plane_and_its_locked_dependencies(bundle: Path) -> None:
    with zipfile.ZipFile(bundle) as archive:
        entries = archive.infolist()
    names = [e.filename for e in entries]
    tops = {n.split("/", 1)[0] for n in names}
    for required in (
        "flowhost/__init__.py",
        "flowhost/py.typed",
        "flowhost/lambdas/handler.py",
        "flowhost/lambdas/aws/__init__.py",
        "flowhost/lambdas/store/migrations/script.py.mako",
        "flowhost/services/__init__.py",
        "flowhost-0.1.0.dist-info/METADATA",
    ):
        assert required in names
    assert {"mangum", "fastapi", "sqlalchemy", "psycopg", "psycopg_binary", "boto3"} <= tops
    # psycopg's C implementation is there, as a manylinux wheel.
    assert any(n.startswith("psycopg_binary/") and n.endswith(".so") for n in names)
    assert "cp311-cp311-manylinux_2_17_x86_64" in platform_tags(bundle)["psycopg_binary"]
    # Every binary wheel loads on the python3.11 runtime's Amazon Linux 2 (glibc 2.26).
    too_new = {
        wheel: tags
        for wheel, tags in platform_tags(bundle).items()
        if not any(tag.endswith("-any") or loads_on_amazon_linux_2(tag) for tag in tags)
    }
    assert not too_new
    # Never on Lambda: the Pulumi side, the dev tools.
    for banned in ("pulumi", "pulumi_aws", "pulumi_kubernetes", "moto", "pytest", "pyright"):
        assert banned not in tops
    assert not [n for n in names if n.startswith("flowhost/infra")]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or n == ".lock"]
    # Deterministic: sorted, one fixed timestamp; the uv binary stays executable.
    assert names == sorted(names)
    assert {e.date_time for e in entries} == {(1980, 1, 1, 0, 0, 0)}
    (uv_binary,) = [e for e in entries if e.filename == "bin/uv"]
    assert (uv_binary.external_attr >> 16) & 0o111


def test_the_handler_imports_from_the_bundle_alone(bundle: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(tmp_path)
        for entry in archive.infolist():  # as Lambda does, keep the modes zipfile drops
            (tmp_path / entry.filename).chmod((entry.external_attr >> 16) & 0o777)
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import flowhost, flowhost.lambdas.handler, flowhost.lambdas.aws, psycopg, uv\n"
        "assert flowhost.__file__.startswith(sys.argv[1]), flowhost.__file__\n"
        "assert flowhost.__version__ == '0.1.0', flowhost.__version__\n"
        "assert psycopg.pq.__impl__ == 'binary', psycopg.pq.__impl__\n"
        "print(flowhost.lambdas.handler.create_handler.__module__)\n"
    )
    # -I -S: no site-packages, no PYTHONPATH, no user site: only the bundle.
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe, str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.strip() == "flowhost.lambdas.handler"
    # Deploys lock environments with uv: its binary sits where uv.find_uv_bin() looks
    # when installed with --target (<target>/bin/uv) and runs on this Linux.
    version = subprocess.run(
        [str(tmp_path / "bin" / "uv"), "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.startswith("uv 0.13.8")
