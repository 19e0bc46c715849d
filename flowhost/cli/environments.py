"""``flowhost env``: named environments, registered once and used by name.

A service runs in a named environment with ``Environment(name="sentiment-train")`` (the
latest revision when it is deployed) or ``"sentiment-train@3"`` (pinned). ``register``
reads requirements from a file, a flow's step or a run's step
(:mod:`flowhost.envsources`) and records them as the next revision, or answers the latest
when it already has them; ``list`` and ``show`` read what is registered; ``build`` builds
a revision for the platform's target ahead of any deploy and prints its digest.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.markup import escape

from flowhost.cli.connect import TargetOption, UrlOption
from flowhost.cli.connect import client as _client
from flowhost.cli.exits import UsageError
from flowhost.cli.output import JsonOption, out, print_json
from flowhost.errors import FlowhostError

__all__ = ["env_app", "register"]

FROM_HELP = (
    "Where the requirements are: requirements.txt, pyproject.toml, path/flow.py:step "
    "(the step's @pypi/@conda) or Flow/run-id/step (a Metaflow run's step)."
)

env_app = typer.Typer(
    name="env",
    help="Named environments: requirements registered once, used by services with "
    "Environment(name=...) and shared with training.",
    no_args_is_help=True,
)


def _ref(value: str) -> tuple[str, int | None]:
    """``name`` or ``name@revision``, checked here (a usage error, exit 2)."""
    from flowhost.lambdas.store.environments import InvalidEnvironment, environment_ref

    try:
        return environment_ref(value)
    except InvalidEnvironment as exc:
        raise UsageError(exc.message) from None


def _when(revision: dict[str, Any]) -> str:
    return str(revision["created_at"])[:19].replace("T", " ")


def _count(requirements: str) -> str:
    n = len([line for line in requirements.split("\n") if line])
    return f"{n} package{'' if n == 1 else 's'}"


@env_app.command("register")
def register_environment(
    name: Annotated[str, typer.Argument(help="The environment's name, e.g. sentiment-train.")],
    source: Annotated[str, typer.Option("--from", help=FROM_HELP, show_default=False)],
    json_output: JsonOption = False,
    target_name: TargetOption = None,
    url: UrlOption = None,
) -> None:
    """Register requirements as NAME's next revision (unchanged requirements: the latest)."""
    from flowhost.envsources import EnvironmentSourceError, requirements_from

    env_name, revision = _ref(name)
    if revision is not None:
        raise UsageError(
            f"NAME: {name!r} names a revision; revisions are numbered by the platform. "
            f"Register as {env_name!r}."
        )
    try:
        requirements, where = requirements_from(source)
    except EnvironmentSourceError as exc:
        raise UsageError(exc.message) from None
    with _client(target_name, url) as client:
        registered = client.register_environment(env_name, requirements, where)
    if json_output:
        print_json(registered)
        return
    ref = f"{registered['name']}@{registered['revision']}"
    if registered["created"]:
        out.print(
            f"[green]registered[/] {escape(ref)} ({_count(registered['requirements'])} from "
            f"{escape(where)})",
            soft_wrap=True,
        )
    else:
        out.print(f"unchanged: {ref} already has these requirements", soft_wrap=True, markup=False)


@env_app.command("list")
def list_environments(
    json_output: JsonOption = False, target_name: TargetOption = None, url: UrlOption = None
) -> None:
    """List the registered environments, each at its latest revision."""
    with _client(target_name, url) as client:
        found = client.environments()
    if json_output:
        print_json({"environments": found})
        return
    if not found:
        out.print("no environments; register one with 'flowhost env register NAME --from ...'")
        return
    rows = [("name", "revision", "packages", "registered", "by", "source")]
    rows += [
        (e["name"], str(e["revision"]), _count(e["requirements"]), _when(e), e["actor"],
         e["source"])
        for e in found
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        out.print(line.rstrip(), soft_wrap=True, markup=False)


@env_app.command("show")
def show_environment(
    name: Annotated[str, typer.Argument(help="NAME, or NAME@REVISION.")],
    revision: Annotated[
        int | None,
        typer.Option(help="Show this revision (default: the latest).", min=1, show_default=False),
    ] = None,
    json_output: JsonOption = False,
    target_name: TargetOption = None,
    url: UrlOption = None,
) -> None:
    """Show an environment's requirements at its latest revision (or --revision N)."""
    env_name, pinned = _ref(name)
    if pinned is not None and revision is not None and pinned != revision:
        raise UsageError(
            f"--revision {revision} and {name!r} name different revisions. Give one of them."
        )
    wanted = revision if revision is not None else pinned
    with _client(target_name, url) as client:
        detail = client.environment(env_name)
        shown = detail["latest"] if wanted is None else client.environment(env_name, wanted)
    numbers = [r["revision"] for r in detail["revisions"]]
    if json_output:
        print_json({**shown, "latest": detail["latest"]["revision"], "revisions": numbers})
        return
    latest = detail["latest"]["revision"]
    state = "latest" if shown["revision"] == latest else f"latest is {latest}"
    out.print(f"{shown['name']}@{shown['revision']} ({state}; revisions: "
              f"{', '.join(str(n) for n in numbers)})", soft_wrap=True, markup=False)  # fmt: skip
    out.print(
        f"registered {_when(shown)} by {shown['actor']} from {shown['source'] or '(not said)'}",
        soft_wrap=True, markup=False,
    )  # fmt: skip
    for line in shown["requirements"].split("\n"):
        out.print(f"  {line}", soft_wrap=True, markup=False)


class EnvironmentBuildFailed(FlowhostError):
    code = "environment_build_failed"


class EnvironmentBuildTimedOut(FlowhostError):
    code = "timed_out"


@env_app.command("build")
def build_environment(
    name: Annotated[str, typer.Argument(help="NAME (the latest revision) or NAME@REVISION.")],
    wait: Annotated[
        bool, typer.Option(help="Follow the build to its end (--no-wait: start it and return).")
    ] = True,
    timeout: Annotated[
        float, typer.Option(help="Seconds to follow the build before giving up.", min=1)
    ] = 1800.0,
    json_output: JsonOption = False,
    target_name: TargetOption = None,
    url: UrlOption = None,
) -> None:
    """Build an environment for the platform's target, and print its digest.

    A deploy builds what its version needs; this builds ahead, e.g. for a GPU service,
    whose stack passes the digest to ServiceSpec(environment_digest=...)."""
    env_name, pinned = _ref(name)
    with _client(target_name, url) as client:
        revision = pinned or client.environment(env_name)["latest"]["revision"]
        path = f"/api/environments/{env_name}/revisions/{revision}/build"
        build: dict[str, Any] = client.request("POST", path)
        said = 0
        deadline = time.monotonic() + timeout
        while True:
            if not json_output:
                for line in build["lines"][said:]:
                    out.print(f"  build | {line}", soft_wrap=True, markup=False)
                said = max(said, len(build["lines"]))
            if build["state"] != "building" or not wait:
                break
            if time.monotonic() > deadline:
                raise EnvironmentBuildTimedOut(
                    f"environment {build['environment']}: still building after {timeout:g}s. "
                    f"Follow it with 'flowhost env build {build['environment']}' again."
                )
            time.sleep(1.0)
            build = client.request("GET", path)
    if json_output:
        print_json(build)
    if build["state"] == "failed":
        raise EnvironmentBuildFailed(
            f"environment {build['environment']} could not be built for {build['target']}: "
            f"{build['error']}"
        )
    if not json_output:
        what = build["summary"] or "building"
        out.print(f"{build['environment']}: {build['digest']} ({what})", soft_wrap=True,
                  markup=False)  # fmt: skip


def register(app: typer.Typer) -> None:
    app.add_typer(env_app)
