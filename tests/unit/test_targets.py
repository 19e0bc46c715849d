"""Targets: the config file, its one-line errors, and which target a command uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowhost.auth import BearerAuth, NoAuth, SigV4, auth_for
from flowhost.targets import (
    LOCAL_URL,
    ConfigError,
    Target,
    config_path,
    load_config,
    parse_config,
    resolve_target,
)

CONFIG = """
[targets.local]
url = "http://127.0.0.1:9090"

[targets.prod]
url = "https://abc123.execute-api.eu-west-1.amazonaws.com/"
auth = "sigv4"
profile = "ml"

[targets.ci]
url = "https://flowhost.example.com"
auth = "token"
token_command = ["vault", "read", "-field=token", "secret/flowhost"]
"""
WHERE = Path("/etc/flowhost.toml")


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, WHERE)
    message = caught.value.message
    assert "\n" not in message
    return message


def test_a_config_names_targets_with_their_auth() -> None:
    config = parse_config(CONFIG, WHERE)

    assert set(config.targets) == {"local", "prod", "ci"}
    prod = config.targets["prod"]
    assert (prod.url, prod.auth, prod.profile, prod.region) == (
        "https://abc123.execute-api.eu-west-1.amazonaws.com", "sigv4", "ml", None,
    )  # fmt: skip
    assert config.targets["ci"].token_command == [
        "vault",
        "read",
        "-field=token",
        "secret/flowhost",
    ]
    assert config.targets["local"].auth == "none"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[targets.x]\nurl = "https://a.example"\nauth = "iam"\n',
            "/etc/flowhost.toml: targets.x.auth: Input should be 'none', 'sigv4' or 'token' "
            '(got \'iam\'). Use auth = "none", "sigv4" or "token".',
        ),
        (
            '[targets.x]\nurl = "https://a.example"\nprofle = "ml"\n',
            "/etc/flowhost.toml: targets.x.profle: Extra inputs are not permitted (got 'ml'). "
            "Remove it: a target takes url, auth, region, profile and token_command.",
        ),
        (
            '[targets.x]\nauth = "sigv4"\n',
            "/etc/flowhost.toml: targets.x.url: Field required. Add it.",
        ),
        (
            '[targets.x]\nurl = "ftp://a.example"\n',
            "/etc/flowhost.toml: targets.x.url: expected an http(s) URL such as "
            "https://api.example.com (got 'ftp://a.example').",
        ),
        (
            '[targets.x]\nurl = "https://a.example"\nregion = "eu-west-1"\n',
            '/etc/flowhost.toml: targets.x: region and profile apply only to auth = "sigv4" '
            "(got auth = 'none'). Set auth = \"sigv4\", or remove them.",
        ),
        (
            '[targets.x]\nurl = "http://flowhost.example.com"\nauth = "token"\n',
            "/etc/flowhost.toml: targets.x: auth = 'token' over plain http would send the "
            "credentials in clear (got url = 'http://flowhost.example.com'). Use an https:// URL.",
        ),
        (
            '[target.x]\nurl = "https://a.example"\n',
            "/etc/flowhost.toml: target: Extra inputs are not permitted",
        ),
        ("[targets.x\n", "/etc/flowhost.toml: not valid TOML (Expected ']'"),
    ],
    ids=[
        "auth",
        "typo",
        "no-url",
        "scheme",
        "region-without-sigv4",
        "token-over-http",
        "top-level-typo",
        "toml",
    ],
)
def test_a_bad_config_is_one_line_naming_the_file_the_key_and_the_fix(
    text: str, expected: str
) -> None:
    assert error_of(text).startswith(expected)


def test_credentials_over_plain_http_are_allowed_on_loopback_only() -> None:
    config = parse_config('[targets.x]\nurl = "http://127.0.0.1:8080"\nauth = "token"\n', WHERE)

    assert config.targets["x"].auth == "token"


def write(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return {"FLOWHOST_CONFIG": str(path)}


def test_local_exists_without_a_config_file(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path)}

    assert config_path(env) == tmp_path / "flowhost" / "config.toml"
    target = resolve_target(environ=env)
    assert (target.name, target.url, target.auth) == ("local", LOCAL_URL, "none")


def test_a_missing_file_named_by_flowhost_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^FLOWHOST_CONFIG: no such file \(got '"):
        load_config({"FLOWHOST_CONFIG": str(tmp_path / "nope.toml")})


def test_which_target_a_command_uses(tmp_path: Path) -> None:
    env = write(tmp_path, CONFIG)

    assert resolve_target(environ=env).url == "http://127.0.0.1:9090"  # local, overridden
    assert resolve_target("prod", environ=env).auth == "sigv4"
    with_target = {**env, "FLOWHOST_TARGET": "ci", "FLOWHOST_URL": "http://127.0.0.1:1"}
    assert resolve_target(environ=with_target).name == "ci"
    assert resolve_target("prod", environ=with_target).name == "prod"  # the flag wins
    by_url = resolve_target(url="http://127.0.0.1:7000", environ=with_target)
    assert (by_url.name, by_url.url, by_url.auth) == ("url", "http://127.0.0.1:7000", "none")
    env_url = resolve_target(environ={**env, "FLOWHOST_URL": "http://127.0.0.1:7001/"})
    assert (env_url.name, env_url.url) == ("url", "http://127.0.0.1:7001")


def test_an_unknown_target_lists_the_configured_ones(tmp_path: Path) -> None:
    env = write(tmp_path, CONFIG)

    with pytest.raises(ConfigError) as caught:
        resolve_target("stagin", environ=env)
    assert caught.value.message == (
        f"target 'stagin': not configured in {tmp_path / 'config.toml'} "
        "(targets: ci, local, prod). Add a [targets.stagin] table to that file, "
        "or pick one of those."
    )
    with pytest.raises(ConfigError, match=r"targets: local\)"):
        resolve_target(environ={"FLOWHOST_TARGET": "prod", "XDG_CONFIG_HOME": str(tmp_path)})


def test_target_and_url_together_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"^--target and --url: give one of them"):
        resolve_target("prod", url="http://127.0.0.1:1", environ={})


def test_a_bad_url_is_one_line() -> None:
    with pytest.raises(ConfigError, match=r"^--url: expected an http\(s\) URL .* \(got 'nope'\)"):
        resolve_target(url="nope", environ={})


def test_each_auth_kind_gets_its_httpx_auth() -> None:
    sigv4 = Target(name="p", url="https://abc.execute-api.us-west-2.amazonaws.com", auth="sigv4")
    auth = auth_for(sigv4)
    assert isinstance(auth, SigV4)
    assert auth.region == "us-west-2"  # read from the execute-api host
    named = sigv4.model_copy(update={"region": "eu-central-1"})
    signer = auth_for(named)
    assert isinstance(signer, SigV4)
    assert signer.region == "eu-central-1"
    token = Target(name="t", url="https://a.example", auth="token")
    assert isinstance(auth_for(token), BearerAuth)
    assert isinstance(auth_for(Target(name="n", url="https://a.example")), NoAuth)
