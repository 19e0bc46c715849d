"""Code packages are deterministic and content-addressed; the platform digest is stable."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

from flowhost.lambdas.environments.builds import platform_digest
from flowhost.services.packaging import build_package, unpack


def make_tree(root: Path) -> None:
    (root / "pkg").mkdir(parents=True)
    (root / "svc.py").write_text("print('svc')\n")
    (root / "pkg" / "helpers.py").write_text("X = 1\n")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "svc.cpython-311.pyc").write_bytes(b"\0")
    (root / ".venv").mkdir()
    (root / ".venv" / "big").write_bytes(b"x" * 100)
    (root / ".hidden").write_text("secret")


def test_same_code_same_digest_whatever_the_mtimes(tmp_path: Path) -> None:
    make_tree(tmp_path / "a")
    make_tree(tmp_path / "b")
    os.utime(tmp_path / "b" / "svc.py", (1, 1))
    digest_a, archive_a = build_package(tmp_path / "a")
    digest_b, archive_b = build_package(tmp_path / "b")
    assert digest_a == digest_b
    assert archive_a == archive_b
    assert digest_a == "sha256-" + hashlib.sha256(gzip.decompress(archive_a)).hexdigest()


def test_a_changed_file_changes_the_digest(tmp_path: Path) -> None:
    make_tree(tmp_path)
    before, _ = build_package(tmp_path)
    (tmp_path / "pkg" / "helpers.py").write_text("X = 2\n")
    after, _ = build_package(tmp_path)
    assert before != after


def test_unpack_restores_code_without_caches_venvs_or_hidden_files(tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    _, archive = build_package(tmp_path / "src")
    unpack(archive, tmp_path / "out")
    files = sorted(
        p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*")
    )
    assert files == ["pkg", "pkg/helpers.py", "svc.py"]
    assert (tmp_path / "out" / "svc.py").read_text() == "print('svc')\n"


def test_default_environment_digest_is_stable() -> None:
    assert platform_digest() == platform_digest()
    assert platform_digest().startswith("sha256-")
