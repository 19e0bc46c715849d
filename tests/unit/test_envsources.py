"""Where a named environment's requirements come from: requirements.txt, pyproject.toml,
a flow file's step (read with ast, never imported) and a Metaflow run's step (its code
package's flow file)."""

from __future__ import annotations

import importlib
import textwrap
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest

from flowhost.envsources import EnvironmentSourceError, packages_of_step, requirements_from
from flowhost.errors import NotFoundError

ROOT = Path(__file__).resolve().parents[2]

FLOW = textwrap.dedent(
    """\
    from metaflow import FlowSpec, conda, pypi, pypi_base, step

    EXTRA = {"scipy": ">=1.13"}
    raise SystemExit("the flow file is never run")


    @pypi_base(packages={"pandas": "2.2.3", "numpy": "1.26.4"}, python="3.11")
    class TrainFlow(FlowSpec):
        @step
        def start(self):
            self.next(self.train)

        @pypi(packages={"numpy": "2.1.0", "scikit-learn": "~=1.5.2", "requests": ""})
        @step
        def train(self):
            self.next(self.score)

        @pypi(packages=EXTRA)
        @step
        def score(self):
            self.next(self.end)

        @pypi(disabled=True)
        @step
        def end(self):
            pass


    @conda(libraries={"conda-forge::xgboost": "2.1.1"})
    def not_a_step():
        pass
    """
)


@pytest.fixture
def flow_file(tmp_path: Path) -> Path:
    path = tmp_path / "flow.py"
    path.write_text(FLOW)
    return path


def test_a_requirements_file_is_read_as_written(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text("# serving\nscikit-learn==1.5.2\n\nnumpy<2  # abi\n")
    assert requirements_from(str(path)) == ("scikit-learn==1.5.2\nnumpy<2", str(path))


def test_a_requirements_file_is_not_followed_into_includes(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("numpy\n")
    path = tmp_path / "requirements.txt"
    path.write_text("pandas\n-r base.txt\n")
    with pytest.raises(EnvironmentSourceError) as caught:
        requirements_from(str(path))
    assert caught.value.message == (
        f"{path} line 2: '-r base.txt' is a pip option (-r), which the platform does not "
        "take: list the packages themselves."
    )


def test_pyproject_dependencies(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname = "x"\ndependencies = ["pandas>=2", "pyarrow==17.0.0"]\n')
    assert requirements_from(str(path)) == (
        "pandas>=2\npyarrow==17.0.0", f"{path} [project].dependencies",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ('[project]\nname = "x"\n', r"no \[project\]\.dependencies to register"),
        ('[project]\nname = "x"\ndynamic = ["dependencies"]\n', "is dynamic"),
        ("[project\n", "not valid TOML"),
    ],
)
def test_pyproject_without_dependencies_says_so(tmp_path: Path, body: str, said: str) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text(body)
    with pytest.raises(EnvironmentSourceError, match=said):
        requirements_from(str(path))


def test_a_step_merges_its_packages_over_the_flows(flow_file: Path) -> None:
    text, where = requirements_from(f"{flow_file}:train")
    assert where == f"{flow_file}:train"
    assert text.split("\n") == [
        "pandas==2.2.3", "numpy==2.1.0", "scikit-learn~=1.5.2", "requests",
    ]  # fmt: skip


def test_a_step_without_its_own_decorator_gets_the_flows(flow_file: Path) -> None:
    assert requirements_from(f"{flow_file}:start")[0] == "pandas==2.2.3\nnumpy==1.26.4"
    assert requirements_from(f"{flow_file}:end")[0] == "pandas==2.2.3\nnumpy==1.26.4"  # disabled


def test_a_packages_dict_may_be_a_module_constant(flow_file: Path) -> None:
    assert requirements_from(f"{flow_file}:score")[0].split("\n")[-1] == "scipy>=1.13"


def test_conda_packages_drop_their_channel() -> None:
    source = textwrap.dedent(
        """\
        @conda_base(python="3.11", packages={"conda-forge::numpy": "1.26.4"})
        class F(FlowSpec):
            @metaflow.conda(libraries={"xgboost": "2.1.*"})
            @metaflow.step
            def start(self):
                pass
        """
    )
    assert packages_of_step(source, "start", filename="f.py") == {
        "numpy": "1.26.4", "xgboost": "2.1.*",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("step", "source", "said"),
    [
        ("fit", FLOW, r"no @step 'fit' \(steps: TrainFlow.start, TrainFlow.train, "),
        ("not_a_step", FLOW, "no @step 'not_a_step'"),
        ("start", "class F(FlowSpec):\n  @step\n  def start(self): pass\n",
         "has no @pypi or @conda packages"),
        ("start", "class F:\n  @pypi(packages=make())\n  @step\n  def start(self): pass\n",
         r"@pypi\(packages=...\) at line 2 is not a literal \(got 'make\(\)'\)"),
        ("start", "class F:\n  @pypi(packages=['numpy'])\n  @step\n  def start(self): pass\n",
         "must map package names to versions"),
        ("start", "class F(:\n", r"not valid Python \(line 1"),
    ],
)  # fmt: skip
def test_flow_files_that_cannot_be_read_say_why(step: str, source: str, said: str) -> None:
    with pytest.raises(EnvironmentSourceError, match=said):
        packages_of_step(source, step, filename="flow.py")


def test_the_example_flow_declares_no_packages() -> None:
    example = ROOT / "examples" / "flows" / "sentiment_flow.py"
    with pytest.raises(EnvironmentSourceError, match=r"sentiment_flow.py:train: the step has no"):
        requirements_from(f"{example}:train")


def test_a_bad_version_is_named_with_its_source(flow_file: Path) -> None:
    flow_file.write_text(FLOW.replace('"2.1.0"', '"two"'))
    with pytest.raises(EnvironmentSourceError, match=rf"{flow_file}:train line 2: 'numpy==two'"):
        requirements_from(f"{flow_file}:train")


class FakeRun:
    """``metaflow.Run`` of a run whose code package holds ``FLOW`` (or none)."""

    flowspec: str | None = FLOW
    asked: list[str] = []  # noqa: RUF012
    missing: type[Exception] = LookupError

    def __init__(self, pathspec: str) -> None:
        self.asked.append(pathspec)
        if pathspec.endswith("/404"):
            raise self.missing(pathspec)
        self.code = None if self.flowspec is None else SimpleNamespace(flowspec=self.flowspec)


@pytest.fixture
def fake_run(monkeypatch: pytest.MonkeyPatch) -> type[FakeRun]:
    """Metaflow's client with ``Run`` faked (what the client does with it is real)."""
    with warnings.catch_warnings():  # metaflow's vendored yaml imports the old _yaml path
        warnings.simplefilter("ignore", DeprecationWarning)
        exceptions = importlib.import_module("metaflow.exception")
        importlib.import_module("metaflow.client.core")
    FakeRun.flowspec, FakeRun.asked = FLOW, []
    FakeRun.missing = exceptions.MetaflowNotFound
    monkeypatch.setattr("metaflow.client.core.Run", FakeRun)
    return FakeRun


def test_a_runs_step_is_read_from_its_code_package(fake_run: type[FakeRun]) -> None:
    text, where = requirements_from("TrainFlow/1734/train")
    assert fake_run.asked == ["TrainFlow/1734"]
    assert where == "TrainFlow/1734/train"
    assert text.startswith("pandas==2.2.3\nnumpy==2.1.0\n")


def test_a_run_without_a_code_package_names_the_fix(fake_run: type[FakeRun]) -> None:
    fake_run.flowspec = None
    with pytest.raises(EnvironmentSourceError) as caught:
        requirements_from("TrainFlow/1734/train")
    assert caught.value.message == (
        "--from: run TrainFlow/1734 has no code package (a run whose steps all ran locally "
        "keeps none), so its flow file cannot be read. Register from the flow file: "
        "--from path/flow.py:train."
    )


def test_a_missing_run_is_not_found(fake_run: type[FakeRun]) -> None:
    with pytest.raises(NotFoundError, match=r"no Metaflow run 'TrainFlow/404'"):
        requirements_from("TrainFlow/404/train")


def test_a_runs_flow_is_picked_by_name(fake_run: type[FakeRun]) -> None:
    with pytest.raises(EnvironmentSourceError, match="no @step 'train' of OtherFlow"):
        requirements_from("OtherFlow/1/train")


@pytest.mark.parametrize("source", ["requirements", "env.yml", "flow.py", "a/b", "missing.txt"])
def test_other_sources_are_refused_naming_the_forms(source: str) -> None:
    with pytest.raises(EnvironmentSourceError, match=r"--from: .*(requirements\.txt|no such)"):
        requirements_from(source)
