"""Targets: the platforms the CLI and ``flowhost.Client`` talk to, named in a config file.

```toml
# ~/.config/flowhost/config.toml (or $FLOWHOST_CONFIG)
[targets.local]
url = "http://127.0.0.1:8080"

[targets.prod]
url = "https://abc123.execute-api.eu-west-1.amazonaws.com"
auth = "sigv4"          # or "token" (Authorization: Bearer), or "none"
region = "eu-west-1"
profile = "ml"
```

A command picks its target from ``--target``, else ``--url`` (an unauthenticated
target), else ``$FLOWHOST_TARGET``, else ``$FLOWHOST_URL``, else ``local``, which exists
as ``http://127.0.0.1:8080`` when the file does not name it.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from flowhost.errors import FlowhostError

__all__ = [
    "LOCAL",
    "LOCAL_URL",
    "URL_TARGET",
    "AuthKind",
    "Config",
    "ConfigError",
    "Target",
    "TargetSettings",
    "config_path",
    "load_config",
    "parse_config",
    "resolve_target",
]

LOCAL = "local"
LOCAL_URL = "http://127.0.0.1:8080"
URL_TARGET = "url"  # the name of a target given as a bare URL (--url, $FLOWHOST_URL)
AuthKind = Literal["none", "sigv4", "token"]
TargetName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]

_FIXES = {
    "extra_forbidden": "Remove it: a target takes url, auth, region, profile and token_command",
    "literal_error": 'Use auth = "none", "sigv4" or "token"',
    "missing": "Add it",
    "string_pattern_mismatch": "Name targets with letters, digits, '.', '_' and '-'",
}


class ConfigError(FlowhostError):
    """The targets config file cannot be read, or names no such target."""

    code = "invalid_config"
    status = 400


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TargetSettings(BaseModel):
    """One ``[targets.<name>]`` table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    auth: AuthKind = "none"
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$")] | None = None
    profile: Annotated[str, Field(min_length=1)] | None = None
    token_command: (
        Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] | None
    ) = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an http(s) URL such as https://api.example.com")
        if parts.query or parts.fragment:
            raise ValueError("expected a URL without a query or fragment")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _auth_fields(self) -> TargetSettings:
        # These messages carry their own "(got ...)" and fix: the input is the whole table.
        got = f"(got auth = {self.auth!r})"
        if self.auth != "sigv4" and (self.region or self.profile):
            raise ValueError(
                f'region and profile apply only to auth = "sigv4" {got}. '
                'Set auth = "sigv4", or remove them'
            )
        if self.auth != "token" and self.token_command:
            raise ValueError(
                f'token_command applies only to auth = "token" {got}. '
                'Set auth = "token", or remove it'
            )
        host = urlsplit(self.url).hostname or ""
        if self.auth != "none" and self.url.startswith("http://") and not _is_loopback(host):
            raise ValueError(
                f"auth = {self.auth!r} over plain http would send the credentials in clear "
                f"(got url = {self.url!r}). Use an https:// URL"
            )
        return self


class Target(TargetSettings):
    """A resolved target: its settings and the name it was chosen by."""

    name: str

    @property
    def region_or_guess(self) -> str | None:
        """The configured region, else the one an ``execute-api`` host names."""
        if self.region:
            return self.region
        host = (urlsplit(self.url).hostname or "").split(".")
        if len(host) >= 4 and host[1] == "execute-api":
            return host[2]
        return None


class Config(BaseModel):
    """The whole config file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    targets: dict[TargetName, TargetSettings] = Field(default_factory=dict[str, TargetSettings])


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$FLOWHOST_CONFIG``, else ``$XDG_CONFIG_HOME/flowhost/config.toml`` (``~/.config``)."""
    env = os.environ if environ is None else environ
    if env.get("FLOWHOST_CONFIG"):
        return Path(env["FLOWHOST_CONFIG"]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "flowhost" / "config.toml"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def parse_config(text: str, path: Path) -> Config:
    """The config in ``text`` (read from ``path``); one-line ``ConfigError`` otherwise."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}). Fix the syntax.") from None
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "(top level)"
        message = str(first["msg"]).removeprefix("Value error, ")
        fix = _FIXES.get(first["type"], "Fix that key; docs/aws.md (Targets) shows the format")
        more = f" [{exc.error_count() - 1} more problem(s)]" if exc.error_count() > 1 else ""
        if isinstance(first["input"], dict) and first["type"] == "value_error":
            raise ConfigError(f"{path}: {key}: {message}.{more}") from None  # got and fix inside
        got = "" if first["type"] == "missing" else f" (got {_shown(first['input'])})"
        raise ConfigError(f"{path}: {key}: {message}{got}. {fix}.{more}") from None


def load_config(environ: Mapping[str, str] | None = None) -> tuple[Path, Config]:
    """The config file's path and content; an empty config when the default file is absent."""
    env = os.environ if environ is None else environ
    path = config_path(env)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if env.get("FLOWHOST_CONFIG"):
            raise ConfigError(
                f"FLOWHOST_CONFIG: no such file (got {str(path)!r}). Create it, or unset "
                "FLOWHOST_CONFIG to use ~/.config/flowhost/config.toml."
            ) from None
        return path, Config()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it ({exc}). Fix its permissions.") from None
    return path, parse_config(text, path)


def targets_of(config: Config) -> dict[str, TargetSettings]:
    """Every target the config names, with the implicit ``local`` when it names none."""
    found = dict(config.targets)
    found.setdefault(LOCAL, TargetSettings(url=LOCAL_URL))
    return found


def _url_target(url: str, where: str) -> Target:
    try:
        return Target(name=URL_TARGET, url=url)
    except ValidationError as exc:
        message = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{where}: {message} (got {url!r}).") from None


def resolve_target(
    name: str | None = None, *, url: str | None = None, environ: Mapping[str, str] | None = None
) -> Target:
    """The target a command uses (see the module docstring for the order)."""
    env = os.environ if environ is None else environ
    if name and url:
        raise ConfigError(
            f"--target and --url: give one of them (got target {name!r} and url {url!r})."
        )
    if url:
        return _url_target(url, "--url")
    if not name and env.get("FLOWHOST_TARGET"):
        name = env["FLOWHOST_TARGET"]
    elif not name and env.get("FLOWHOST_URL"):
        return _url_target(env["FLOWHOST_URL"], "FLOWHOST_URL")
    name = name or LOCAL
    path, config = load_config(env)
    known = targets_of(config)
    if name not in known:
        raise ConfigError(
            f"target {name!r}: not configured in {path} (targets: {', '.join(sorted(known))}). "
            f"Add a [targets.{name}] table to that file, or pick one of those."
        )
    return Target(name=name, **known[name].model_dump())


def default_target_name(environ: Mapping[str, str] | None = None) -> str:
    """The target a command uses when given none: ``$FLOWHOST_TARGET`` or ``local``."""
    env = os.environ if environ is None else environ
    return env.get("FLOWHOST_TARGET") or LOCAL
