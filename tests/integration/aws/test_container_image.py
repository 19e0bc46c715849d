"""The runtime image's Dockerfile, read as text (no Docker here): it runs the bootstrap,
unprivileged, from the lock file, with every package folder."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import tomllib
from pathlib import Path

from flowhost.lambdas.aws.container_settings import ContainerSettings
from tests.integration.aws.container_support import (
    MODULE,
)
from tests.integration.support import ROOT


def dockerfile() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of the Dockerfile, continuations joined, comments out."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    found: list[tuple[str, str]] = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def final_stage() -> list[tuple[str, str]]:
    steps = dockerfile()
    last = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last:]


def test_the_image_runs_the_bootstrap() -> None:
    cmds = [args for word, args in final_stage() if word == "CMD"]
    assert len(cmds) == 1
    assert json.loads(cmds[0]) == ["python", "-m", MODULE]
    assert importlib.util.find_spec(MODULE) is not None
    assert 'if __name__ == "__main__":' in (ROOT / "lambdas/aws/container.py").read_text()


def test_the_image_runs_unprivileged_and_writes_only_tmp() -> None:
    final = final_stage()
    users = [args for word, args in final if word == "USER"]
    assert users == ["65532:65532"]  # the GPU Deployment's runAsUser too
    env = " ".join(args for word, args in final if word == "ENV")
    assert "HOME=/tmp" in env
    assert [args for word, args in final if word == "WORKDIR"] == ["/tmp"]
    assert ContainerSettings.model_fields["code_dir"].default == Path("/tmp/flowhost/code")


def test_the_image_is_built_from_the_lock_file() -> None:
    steps = dockerfile()
    args = {a.split("=", 1)[0]: a.split("=", 1)[1] for w, a in steps if w == "ARG" and "=" in a}
    bases = [a.split()[0] for w, a in steps if w == "FROM"]
    for base in bases:
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
        assert re.fullmatch(r"python:3\.11[\w.-]*-slim[\w.-]*(@sha256:[0-9a-f]{64})?", image), image
    syncs = [shlex.split(a) for w, a in steps if w == "RUN" and "uv sync" in a]
    assert syncs
    for sync in syncs:
        assert {"--locked", "--no-dev"} <= set(sync)
        assert not {"--extra", "--all-extras", "--group", "--all-groups"} & set(sync)
    uv_pin = next(d for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "dependencies"] if d.startswith("uv=="))  # fmt: skip
    assert any(w == "RUN" and uv_pin in a for w, a in steps), "the image's uv is the project's"


def test_the_image_copies_every_package_folder() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    needed = {"pyproject.toml", "uv.lock", "README.md", *setuptools["package-dir"].values()}
    copied = {
        source.rstrip("/")
        for word, args in dockerfile()
        if word == "COPY" and not args.startswith("--from")
        for source in args.split()[:-1]
    }
    assert needed <= copied, f"not copied into the image: {sorted(needed - copied)}"
    assert all((ROOT / source).exists() for source in copied)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ignored[ignored.index("*") + 1 :]  # everything out, then what the image needs
    for source in copied:
        assert f"!{source}" in ignored, f".dockerignore keeps {source} out of the context"
