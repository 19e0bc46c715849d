"""Required tags on every taggable AWS resource."""

from typing import Any

import pytest

from policies.engine import UNKNOWN, PolicyConfig
from policies.gen_taggable import pulumi_aws_root, render, scan
from policies.rules import tags
from policies.rules.taggable import PULUMI_AWS_VERSION, TAGGABLE_TYPES
from policies.rules.tags import is_taggable
from tests.policies.support import DEV, TAGS, messages, res, run

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"


def test_all_three_tags_pass() -> None:
    assert run(tags.RULES, [res(LOG_GROUP, "api", {"tags": TAGS})]) == []


@pytest.mark.parametrize("key", sorted(TAGS))
def test_each_missing_tag_fails(key: str) -> None:
    partial = {k: v for k, v in TAGS.items() if k != key}
    found = messages(run(tags.RULES, [res(LOG_GROUP, "api", {"tags": partial})]))
    assert len(found) == 1
    assert f"missing ['{key}']" in found[0]


def test_untagged_taggable_resource_fails() -> None:
    found = messages(run(tags.RULES, [res("aws:sqs/queue:Queue", "jobs", {})]))
    assert len(found) == 1
    assert "provider default tags do not count" in found[0]


def test_default_tags_in_tags_all_do_not_count() -> None:
    assert len(run(tags.RULES, [res(LOG_GROUP, "api", {"tagsAll": TAGS})])) == 1


def test_empty_tag_value_fails() -> None:
    found = messages(run(tags.RULES, [res(LOG_GROUP, "api", {"tags": {**TAGS, "owner": ""}})]))
    assert len(found) == 1
    assert "empty ['owner']" in found[0]


def test_environment_tag_must_match_the_environment() -> None:
    prod = PolicyConfig(environment="prod")
    found = messages(run(tags.RULES, [res(LOG_GROUP, "api", {"tags": TAGS})], prod))
    assert len(found) == 1
    assert "must be 'prod'" in found[0]


def test_required_tags_come_from_config() -> None:
    config = PolicyConfig(environment="dev", required_tags=("cost-center",))
    assert len(run(tags.RULES, [res(LOG_GROUP, "api", {"tags": TAGS})], config)) == 1


@pytest.mark.parametrize(
    ("type_", "props"),
    [
        ("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", {"bucket": "b"}),
        ("kubernetes:core/v1:Namespace", {"metadata": {"name": "keda"}}),
        ("pulumi:providers:aws", {"region": "eu-west-1"}),
        (LOG_GROUP, {"tags": UNKNOWN}),
    ],
)
def test_untaggable_or_unknown_is_not_judged(type_: str, props: dict[str, Any]) -> None:
    assert run(tags.RULES, [res(type_, "x", props)]) == []


def test_autoscaling_group_tags_are_a_list() -> None:
    listed = [{"key": k, "value": v, "propagateAtLaunch": True} for k, v in TAGS.items()]
    group = "aws:autoscaling/group:Group"
    assert run(tags.RULES, [res(group, "asg", {"tags": listed})]) == []
    assert len(run(tags.RULES, [res(group, "asg", {"tags": listed[:2]})], DEV)) == 1


def test_a_type_newer_than_the_list_is_taggable_when_it_has_tags() -> None:
    assert is_taggable(res("aws:future/thing:Thing", "x", {"tags": {}}))
    assert not is_taggable(res("aws:future/thing:Thing", "x", {}))


def test_taggable_list_matches_the_installed_pulumi_aws() -> None:
    """Regenerate with `uv run python -m policies.gen_taggable` after upgrading pulumi-aws."""
    version, tokens = scan(pulumi_aws_root())
    assert (version, len(tokens)) == (PULUMI_AWS_VERSION, len(TAGGABLE_TYPES))
    assert tokens == TAGGABLE_TYPES
    assert "aws:s3/bucket:Bucket" in tokens
    assert "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock" not in tokens
    rendered = render(version, tokens).splitlines()
    assert [line for line in rendered if line.startswith("aws:")] == sorted(tokens)
