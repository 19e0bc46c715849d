"""How CLI commands reach a platform: the ``--target`` and ``--url`` options, and the
``targets`` and ``whoami`` commands."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from flowhost.cli.output import JsonOption, out, print_json

if TYPE_CHECKING:
    from flowhost.client import Client

__all__ = ["TargetOption", "UrlOption", "client", "register"]

TargetOption = Annotated[
    str | None,
    typer.Option(
        "--target",
        "-t",
        help="A target of the config file (default: $FLOWHOST_TARGET, else local). "
        "See 'flowhost targets'.",
        show_default=False,
    ),
]
UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="A platform's address, reached without credentials (default: $FLOWHOST_URL).",
        show_default=False,
    ),
]


def client(target: str | None, url: str | None) -> Client:
    """The client of the target a command was given."""
    from flowhost.client import Client

    return Client(url, target=target)


def targets(json_output: JsonOption = False) -> None:
    """List the configured targets (name, URL, auth); * marks the default."""
    from flowhost.targets import default_target_name, load_config, targets_of

    path, config = load_config()
    default = default_target_name()
    if json_output:
        listed = [
            {"name": name, "url": settings.url, "auth": settings.auth,
             "profile": settings.profile, "region": settings.region}
            for name, settings in sorted(targets_of(config).items())
        ]  # fmt: skip
        print_json(
            {"config": str(path), "exists": path.exists(), "default": default, "targets": listed}
        )
        return
    rows = [("", "target", "url", "auth")]
    for name, settings in sorted(targets_of(config).items()):
        auth = settings.auth
        if settings.auth == "sigv4":
            details = {"profile": settings.profile, "region": settings.region}
            shown = ", ".join(f"{k}={v}" for k, v in details.items() if v)
            auth += f" ({shown or 'default credentials'})"
        rows.append(("*" if name == default else "", name, settings.url, auth))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    absent = "" if path.exists() else " (absent: only the implicit local target)"
    print(f"config: {path}{absent}")


def whoami(
    json_output: JsonOption = False, target: TargetOption = None, url: UrlOption = None
) -> None:
    """Show the identity the target sees for you, and how it knows it."""
    with client(target, url) as c:
        seen = c.whoami()
        sent = c.auth.identity()
        if json_output:
            print_json(
                {"target": c.target.name, "url": c.url, "actor": seen["actor"],
                 "source": seen["source"], "sent": sent}
            )  # fmt: skip
            return
        out.print(f"target: {c.target.name} ({c.url})", soft_wrap=True)
        out.print(f"actor:  {seen['actor']}  (from {seen['source']})", soft_wrap=True)
        out.print(f"sent:   {sent}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    for command in (targets, whoami):
        app.command()(command)
