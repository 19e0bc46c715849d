"""The one path contract (flowhost.services.routing): how the local router, the serving
runtime on AWS and the load balancer's rules read ``/{service}[@{ref}]/{endpoint}``."""

from __future__ import annotations

import pytest

from flowhost.services.routing import RoutePath, join_path, path_patterns, split_path


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/sentiment/predict", RoutePath("sentiment", None, "/predict")),
        ("/sentiment@v3/predict", RoutePath("sentiment", "v3", "/predict")),
        ("/sentiment@canary/predict", RoutePath("sentiment", "canary", "/predict")),
        ("/sentiment@12/predict", RoutePath("sentiment", "12", "/predict")),
        ("/sentiment/docs/oauth2-redirect", RoutePath("sentiment", None, "/docs/oauth2-redirect")),
        ("/sentiment/", RoutePath("sentiment", None, "/")),
        ("/sentiment", RoutePath("sentiment", None, "")),
        ("/healthz", RoutePath("healthz", None, "")),
        ("sentiment/predict", RoutePath("sentiment", None, "/predict")),
    ],
)
def test_split(path: str, expected: RoutePath) -> None:
    assert split_path(path) == expected


@pytest.mark.parametrize(
    "path", ["/", "", "/@v1/predict", "/svc@/predict", "/svc@A B/x", "/svc@-x/y"]
)
def test_paths_that_name_no_service(path: str) -> None:
    assert split_path(path) is None


@pytest.mark.parametrize(
    "path",
    ["/sentiment/predict", "/sentiment@v3/predict", "/sentiment@canary/a/b", "/sentiment"],
)
def test_join_is_the_inverse_of_split(path: str) -> None:
    parts = split_path(path)
    assert parts is not None
    assert join_path(*parts) == path


def test_join() -> None:
    assert join_path("svc") == "/svc"
    assert join_path("svc", "v3", "predict") == "/svc@v3/predict"
    assert join_path("svc", None, "/predict") == "/svc/predict"
    assert RoutePath("svc", "canary", "/x").prefix == "/svc@canary"


def test_every_path_a_rule_matches_splits_to_its_service_and_alias() -> None:
    for alias, ref in (("production", None), ("canary", "canary"), ("v3", "v3")):
        base, wildcard = path_patterns("sentiment", alias)
        assert wildcard == base + "/*"
        assert split_path(wildcard.replace("*", "predict")) == RoutePath(
            "sentiment", ref, "/predict"
        )


def test_a_pattern_longer_than_the_load_balancer_allows() -> None:
    with pytest.raises(ValueError, match="longer than ALB's 128 characters"):
        path_patterns("s", "a" * 130)
