"""Resources, Scaling, Artifacts and Environment: parsing, and SpecErrors that say what to fix."""

import re

import pydantic
import pytest

from flowhost.errors import ArtifactError, SpecError
from flowhost.services import (
    Artifacts,
    Environment,
    Resources,
    Scaling,
    WebServiceSpec,
    definition_of,
    endpoint,
)
from flowhost.services.config import ArtifactBinding


def parts(*literals: str) -> str:
    """A ``match=`` pattern: the literal pieces, in this order, anywhere in the message."""
    return "(?s)" + ".*".join(re.escape(p) for p in literals)


# -- Resources ---------------------------------------------------------------------------------


def test_resources_defaults_and_memory_quantities() -> None:
    assert Resources() == Resources(cpu=1.0, memory=2048, gpu=0, gpu_type=None)
    assert Resources(memory="2Gi").memory == 2048
    assert Resources(memory="512Mi").memory == 512
    assert Resources(memory=1024).memory == 1024
    assert Resources(cpu=0.5, gpu=1, gpu_type="g5").gpu_type == "g5"


def test_resources_bad_memory() -> None:
    with pytest.raises(SpecError, match=parts("Resources: memory: cannot read '2GB?'")) as info:
        Resources(memory="2GB?")
    assert "(got '2GB?')" in info.value.message
    assert "Use a quantity between '128Mi' and '120Gi', or an int number of MiB." in (
        info.value.message
    )


def test_resources_cpu_has_a_floor() -> None:
    with pytest.raises(
        SpecError, match=parts("Resources: cpu: ", "greater than or equal to 0.25", "(got 0)")
    ) as i:
        Resources(cpu=0)
    assert "Give vCPUs as a number" in i.value.message


@pytest.mark.parametrize("gpu", [-1, 9])
def test_resources_gpu_bounds(gpu: int) -> None:
    with pytest.raises(SpecError, match=parts("Resources: gpu: ", f"(got {gpu})", "whole number")):
        Resources(gpu=gpu)


def test_resources_gpu_type_needs_gpu() -> None:
    with pytest.raises(
        SpecError, match=parts("Resources: ", "gpu_type is set but gpu is 0", "set gpu=1 or more")
    ) as info:
        Resources(gpu_type="g5")
    assert "'gpu_type': 'g5'" in info.value.message  # the value


def test_settings_are_frozen_and_strict() -> None:
    resources = Resources()
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        resources.cpu = 2  # pyright: ignore[reportAttributeAccessIssue]
    with pytest.raises(SpecError, match=parts("Environment: ", "gpus", "Extra inputs")):
        Environment(name="py311", gpus=1)  # pyright: ignore[reportCallIssue]


# -- Scaling -----------------------------------------------------------------------------------


def test_scaling_idle_timeout_is_parsed() -> None:
    assert Scaling(idle_timeout="10m").idle_timeout == 600
    assert Scaling(idle_timeout="1h30m").idle_timeout == 5400
    assert Scaling(idle_timeout=90).idle_timeout == 90
    assert Scaling(min_instances=2, max_instances=2).min_instances == 2


def test_scaling_min_above_max() -> None:
    with pytest.raises(
        SpecError,
        match=parts(
            "Scaling: ",
            "min_instances (3) is greater than max_instances (2)",
            "raise max_instances or lower min_instances",
        ),
    ):
        Scaling(min_instances=3, max_instances=2)


def test_scaling_unreadable_idle_timeout() -> None:
    with pytest.raises(
        SpecError,
        match=parts("Scaling: idle_timeout: cannot read 'ten minutes' as a duration"),
    ) as info:
        Scaling(idle_timeout="ten minutes")
    assert "(got 'ten minutes')" in info.value.message
    assert "Use a duration like '30s', '10m' or '1h'" in info.value.message


@pytest.mark.parametrize(
    ("kwargs", "got"),
    [
        # a duration out of bounds is reported in seconds, next to the accepted range
        ({"idle_timeout": "2d"}, "(got 172800.0). Use a duration like '30s'"),
        ({"idle_timeout": "500ms"}, "(got 0.5). Use a duration like '30s'"),
        ({"min_instances": -1}, "(got -1). Use 0 to allow scale to zero"),
        ({"max_instances": 0}, "(got 0). Use a positive count"),
        ({"target_concurrency": 0}, "(got 0). Use the number of requests"),
    ],
)
def test_scaling_bounds(kwargs: dict[str, int | str], got: str) -> None:
    (field,) = kwargs
    with pytest.raises(SpecError, match=parts(f"Scaling: {field}: ", got)):
        Scaling(**kwargs)  # pyright: ignore[reportArgumentType]


# -- Artifacts and Environment -----------------------------------------------------------------


def test_artifacts_forms() -> None:
    assert Artifacts(flow="TrainFlow").flow_name == "TrainFlow"
    assert Artifacts(run="TrainFlow/123").flow_name == "TrainFlow"
    both = Artifacts(flow="TrainFlow", run="TrainFlow/123")
    assert both.binding() == ArtifactBinding(flow="TrainFlow", run="TrainFlow/123")
    assert type(both.binding()) is ArtifactBinding


def test_artifacts_needs_flow_or_run() -> None:
    with pytest.raises(SpecError, match=parts("Artifacts: ", "give flow='FlowName'", "(got {})")):
        Artifacts()


@pytest.mark.parametrize("run", ["TrainFlow", "TrainFlow/", "/123", "Train Flow/1", "a/b/c"])
def test_artifacts_bad_run_pathspec(run: str) -> None:
    with pytest.raises(
        SpecError,
        match=parts("Artifacts: run: not a run pathspec", f"(got {run!r})", "like 'TrainFlow/123'"),
    ):
        Artifacts(run=run)


def test_artifacts_bad_flow_name() -> None:
    with pytest.raises(
        SpecError, match=parts("Artifacts: flow: ", "(got 'my-flow')", "class name")
    ):
        Artifacts(flow="my-flow")


def test_artifacts_flow_and_run_must_agree() -> None:
    with pytest.raises(
        SpecError,
        match=parts("run 'OtherFlow/1' belongs to flow 'OtherFlow', not 'TrainFlow'", "drop flow"),
    ):
        Artifacts(flow="TrainFlow", run="OtherFlow/1")


def test_environment_needs_exactly_one_source() -> None:
    assert Environment.parse("requirements.txt") == Environment(requirements="requirements.txt")
    assert Environment.parse("deps/base.in") == Environment(requirements="deps/base.in")
    assert Environment.parse("py311-torch") == Environment(name="py311-torch")
    for kwargs in ({}, {"requirements": "r.txt", "name": "x"}):
        with pytest.raises(SpecError, match=parts("Environment: ", "give exactly one of")):
            Environment(**kwargs)


# -- inside a class body, errors name the class --------------------------------------------------


def test_setting_error_in_class_body_names_the_class() -> None:
    with pytest.raises(SpecError, match=parts("Sentiment: Resources: memory:", "'2GB?'")):

        class Sentiment(WebServiceSpec):
            resources = Resources(memory="2GB?")

    with pytest.raises(SpecError, match=parts("Ranker: Scaling: ", "min_instances (3)")):

        class Ranker(WebServiceSpec):
            scaling = Scaling(min_instances=3, max_instances=2)


def test_settings_without_own_init_also_name_the_class() -> None:
    """Artifacts and Environment sit one frame shallower than Resources and Scaling."""
    with pytest.raises(SpecError, match=parts("Sentiment: Artifacts: run: ", "(got 'TrainFlow')")):

        class Sentiment(WebServiceSpec):
            artifacts = Artifacts(run="TrainFlow")

    with pytest.raises(SpecError, match=parts("Ranker: Environment: ", "exactly one of")):

        class Ranker(WebServiceSpec):
            environment = Environment()


def test_nested_class_body_names_the_inner_class() -> None:
    with pytest.raises(SpecError, match=parts("Outer.Inner: Artifacts: run:")):

        class Outer:
            class Inner(WebServiceSpec):
                artifacts = Artifacts(run="x")


def test_setting_outside_a_class_body_names_only_the_setting() -> None:
    with pytest.raises(SpecError) as info:
        Resources(cpu=0)
    assert info.value.message.startswith("Resources: cpu: ")


def test_setting_given_as_dict_is_validated_and_named() -> None:
    class Dicts(WebServiceSpec):
        resources = {"memory": "1Gi"}  # noqa: RUF012  # pyright: ignore[reportAssignmentType]

        @endpoint
        def ping(self) -> dict: ...

    assert definition_of(Dicts).resources.memory == 1024
    with pytest.raises(SpecError, match=parts("Bad.resources: Resources: memory:", "'2GB?'")):

        class Bad(WebServiceSpec):
            resources = {"memory": "2GB?"}  # noqa: RUF012  # pyright: ignore[reportAssignmentType]

            @endpoint
            def ping(self) -> dict: ...


def test_setting_of_the_wrong_type() -> None:
    with pytest.raises(
        SpecError,
        match=parts("Bad.scaling: expected Scaling(...) (got int 4)", "scaling = Scaling"),
    ):

        class Bad(WebServiceSpec):
            scaling = 4  # pyright: ignore[reportAssignmentType]

            @endpoint
            def ping(self) -> dict: ...


# -- the artifacts descriptor ------------------------------------------------------------------


class WithArtifacts(WebServiceSpec):
    artifacts = Artifacts(flow="TrainFlow")

    @endpoint
    def ping(self) -> dict: ...


def test_artifacts_on_the_class_is_the_declaration() -> None:
    declared = WithArtifacts.artifacts
    assert isinstance(declared, Artifacts)
    assert declared.flow == "TrainFlow"
    binding = definition_of(WithArtifacts).artifacts
    assert binding == ArtifactBinding(flow="TrainFlow")
    assert type(binding) is ArtifactBinding


def test_artifacts_on_an_unbound_instance_says_how_to_bind() -> None:
    instance = WithArtifacts()
    with pytest.raises(ArtifactError, match=parts("WithArtifacts.artifacts: not bound yet")) as i:
        _ = instance.artifacts
    assert "flowhost.services.testing.start(ServiceClass, run=...)" in i.value.message


def test_bound_artifacts_shadow_the_declaration() -> None:
    instance = WithArtifacts()
    instance.__dict__["artifacts"] = "bound"  # what the runtime does at start
    assert instance.artifacts == "bound"
    assert isinstance(WithArtifacts.artifacts, Artifacts)
