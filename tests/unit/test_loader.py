"""Loading a service class from ``file.py[:Class]``, and paths relative to that file."""

import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowhost.errors import SpecError
from flowhost.services import Environment, WebServiceSpec, definition_of, endpoint, load_service
from flowhost.services.loader import split_target


def parts(*literals: str) -> str:
    """A ``match=`` pattern: the literal pieces, in this order, anywhere in the message."""
    return "(?s)" + ".*".join(re.escape(p) for p in literals)


SERVICE = """\
from flowhost.services import WebServiceSpec, endpoint

class {name}(WebServiceSpec):
    {body}

    @endpoint
    def ping(self) -> dict:
        return {{}}
"""


@pytest.fixture(autouse=True)
def _restore_imports(tmp_path: Path) -> Iterator[None]:
    """load_service adds the file's folder to sys.path and the module to sys.modules."""
    saved_path = list(sys.path)
    yield
    sys.path[:] = saved_path
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


def write(path: Path, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def service(path: Path, *classes: str, body: str = "pass") -> Path:
    return write(path, "\n".join(SERVICE.format(name=c, body=body) for c in classes))


def test_split_target() -> None:
    assert split_target("svc.py") == (Path("svc.py"), None)
    assert split_target("dir/svc.py:Sentiment") == (Path("dir/svc.py"), "Sentiment")
    assert split_target("svc.py:") == (Path("svc.py"), None)


def test_the_only_class(tmp_path: Path) -> None:
    path = service(tmp_path / "svc.py", "Sentiment")
    cls = load_service(str(path))
    assert cls.__name__ == "Sentiment"
    assert issubclass(cls, WebServiceSpec)
    assert definition_of(cls).entrypoint == "svc.py:Sentiment"
    assert load_service(str(path)) is cls  # loading again reuses the module


def test_named_class(tmp_path: Path) -> None:
    path = service(tmp_path / "svc.py", "Ranker", "Sentiment")
    assert load_service(f"{path}:Sentiment").__name__ == "Sentiment"
    assert load_service(f"{path}:Ranker").__name__ == "Ranker"


def test_unknown_class_lists_the_found_ones(tmp_path: Path) -> None:
    path = service(tmp_path / "svc.py", "Ranker", "Sentiment")
    with pytest.raises(
        SpecError,
        match=parts(
            f"{path}:Nope: no WebServiceSpec class 'Nope' in svc.py.", "found: Ranker, Sentiment."
        ),
    ):
        load_service(f"{path}:Nope")


def test_several_classes_need_a_name(tmp_path: Path) -> None:
    path = service(tmp_path / "svc.py", "Sentiment", "Ranker")
    with pytest.raises(
        SpecError,
        match=parts(
            f"{path}: expected exactly one WebServiceSpec class in svc.py",
            "(found: Ranker, Sentiment)",
            "Name one: svc.py:ClassName.",
        ),
    ):
        load_service(str(path))


def test_no_class(tmp_path: Path) -> None:
    path = write(tmp_path / "svc.py", "x = 1\n")
    with pytest.raises(SpecError, match=parts(f"{path}: expected exactly one", "(found: none)")):
        load_service(str(path))


def test_imported_and_abstract_classes_do_not_count(tmp_path: Path) -> None:
    service(tmp_path / "shared.py", "Shared")
    path = write(
        tmp_path / "svc.py",
        """\
        from flowhost.services import WebServiceSpec, endpoint
        from shared import Shared  # a sibling module imports normally

        class Base(WebServiceSpec):
            abstract = True

        class Sentiment(Base):
            @endpoint
            def ping(self) -> dict:
                return {}
        """,
    )
    assert load_service(str(path)).__name__ == "Sentiment"


def test_missing_file(tmp_path: Path) -> None:
    target = str(tmp_path / "nothere.py")
    with pytest.raises(
        SpecError, match=parts(f"{target}: no such file", "Give the path to a service .py file.")
    ):
        load_service(target)
    with pytest.raises(SpecError, match="no such file"):
        load_service(f"{target}:Sentiment")


def test_a_file_that_fails_to_import(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.py", "raise ImportError('no module named torchy')\n")
    with pytest.raises(
        SpecError,
        match=parts(
            f"{path}: importing the service file failed (ImportError: no module named torchy)",
            "add the missing package to the service environment.",
        ),
    ) as info:
        load_service(str(path))
    assert isinstance(info.value.__cause__, ImportError)
    assert "broken" not in sys.modules


def test_a_spec_error_in_the_file_passes_through(tmp_path: Path) -> None:
    path = service(tmp_path / "svc.py", "Sentiment", body='name = "Not A Slug"')
    with pytest.raises(SpecError, match=parts("Sentiment.name: must be a DNS-safe slug")):
        load_service(str(path))
    assert "svc" not in sys.modules


def test_same_file_name_in_two_folders(tmp_path: Path) -> None:
    first = load_service(str(service(tmp_path / "a" / "svc.py", "First")))
    second = load_service(str(service(tmp_path / "b" / "svc.py", "Second")))
    assert (first.__name__, second.__name__) == ("First", "Second")
    assert first.__module__ != second.__module__


# -- environment requirements are relative to the service file --------------------------------


def test_requirements_next_to_the_service_file(tmp_path: Path) -> None:
    write(tmp_path / "requirements.txt", "scikit-learn\n")
    write(tmp_path / "deps" / "base.txt", "numpy\n")
    path = service(
        tmp_path / "svc.py",
        "Sentiment",
        body='environment = Environment(requirements="requirements.txt")',
    )
    path.write_text("from flowhost.services import Environment\n" + path.read_text())
    d = definition_of(load_service(str(path)))
    assert d.environment == Environment(requirements="requirements.txt")

    plain = service(tmp_path / "plain.py", "Plain", body='environment = "deps/base.txt"')
    assert definition_of(load_service(str(plain))).environment == Environment(
        requirements="deps/base.txt"
    )


def test_missing_requirements_file(tmp_path: Path) -> None:
    (tmp_path / "nested").mkdir()
    write(tmp_path / "requirements.txt", "numpy\n")  # one folder above the service file
    path = service(
        tmp_path / "nested" / "svc.py", "Sentiment", body='environment = "requirements.txt"'
    )
    with pytest.raises(
        SpecError,
        match=parts(
            "Sentiment.environment: requirements file not found (got 'requirements.txt'",
            f"looked at {tmp_path / 'nested' / 'requirements.txt'})",
            "Give a path relative to svc.py.",
        ),
    ):
        load_service(str(path))


def test_missing_requirements_for_a_class_defined_here() -> None:
    with pytest.raises(
        SpecError,
        match=parts(
            "Sentiment.environment: requirements file not found (got 'no-such-requirements.txt'",
            f"looked at {Path(__file__).parent / 'no-such-requirements.txt'}",
            f"relative to {Path(__file__).name}",
        ),
    ):

        class Sentiment(WebServiceSpec):
            environment = Environment(requirements="no-such-requirements.txt")

            @endpoint
            def ping(self) -> dict: ...


def test_named_environment_needs_no_file() -> None:
    class Sentiment(WebServiceSpec):
        environment = "py311-torch"

        @endpoint
        def ping(self) -> dict: ...

    assert definition_of(Sentiment).environment == Environment(name="py311-torch")
