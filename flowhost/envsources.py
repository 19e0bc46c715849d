"""Where a named environment's requirements come from, read on the client.

``flowhost env register NAME --from SOURCE`` takes one of:

- ``requirements.txt`` (any ``*.txt``): pip requirements, as written (``-r`` is not
  followed: list the packages themselves);
- ``pyproject.toml``: its ``[project].dependencies``;
- ``path/flow.py:step``: the packages of a Metaflow step, read from the flow file with
  :mod:`ast` (the flow is never imported): the step's ``@pypi(packages=...)`` or
  ``@conda(packages=...)`` merged over the flow class's ``@pypi_base`` / ``@conda_base``;
- ``Flow/run-id/step``: the same, read from the flow file in the run's code package.

Each package ``name: version`` becomes ``name==version``; a version that starts with an
operator (``>=1.5``) is kept as it is, an empty one means any version. The requirements
are checked line by line as the platform checks them, so a bad line is named here, with
the file it came from, before anything is sent.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path
from typing import Any

from flowhost.errors import FlowhostError, NotFoundError

__all__ = ["EnvironmentSourceError", "packages_of_step", "requirements_from"]

FORMS = (
    "requirements.txt, pyproject.toml, path/flow.py:step (a Metaflow step's @pypi/@conda), "
    "or Flow/run-id/step (a Metaflow run's step)"
)
_RUN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)/([^/\s]+)/([A-Za-z_][A-Za-z0-9_]*)$")
_OPERATOR = ("=", "<", ">", "!", "~")
_STEP_DECORATORS = ("pypi", "conda")
_BASE_DECORATORS = ("pypi_base", "conda_base")


class EnvironmentSourceError(FlowhostError):
    """A ``--from`` source that cannot be read, or has no requirements to register."""

    code = "invalid_environment_source"
    status = 400


def requirements_from(source: str) -> tuple[str, str]:
    """(the requirements, one per line, checked; a description of where they came from)."""
    run = _RUN.match(source)
    path_part, colon, step = source.rpartition(":")
    if colon and path_part.endswith(".py") and step:
        text = _flow_file(Path(path_part), step)
        where = f"{path_part}:{step}"
    elif source.endswith(".txt"):
        text, where = _read(Path(source)), source
    elif Path(source).name == "pyproject.toml":
        text, where = _pyproject(Path(source)), f"{source} [project].dependencies"
    elif run is not None:
        text, where = _run(*run.groups()), source
    else:
        raise EnvironmentSourceError(
            f"--from: {source!r} is not a source of requirements. Give {FORMS}."
        )
    return _checked(text, where), where


def _checked(text: str, where: str) -> str:
    """The requirements normalised as the platform normalises them; a bad line named."""
    from flowhost.lambdas.store.environments import InvalidEnvironment, normalise_requirements

    try:
        return normalise_requirements(text, origin=where)
    except InvalidEnvironment as exc:
        raise EnvironmentSourceError(exc.message) from None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EnvironmentSourceError(
            f"--from: no such file {str(path)!r}. Give the path of an existing file; {FORMS}."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EnvironmentSourceError(f"--from: cannot read {str(path)!r} ({exc}).") from None


def _pyproject(path: Path) -> str:
    try:
        project = tomllib.loads(_read(path)).get("project", {})
    except tomllib.TOMLDecodeError as exc:
        raise EnvironmentSourceError(f"{path}: not valid TOML ({exc}).") from None
    if "dependencies" in project.get("dynamic", []):
        raise EnvironmentSourceError(
            f"{path}: [project].dependencies is dynamic (computed at build time), so there is "
            "nothing to read. Export them to a requirements.txt and register that."
        )
    dependencies = project.get("dependencies")
    if not isinstance(dependencies, list) or not dependencies:
        raise EnvironmentSourceError(
            f"{path}: no [project].dependencies to register (got {dependencies!r}). List the "
            "packages there, or register a requirements.txt."
        )
    return "\n".join(str(d) for d in dependencies)


def _flow_file(path: Path, step: str) -> str:
    return _as_requirements(packages_of_step(_read(path), step, filename=str(path)))


def _run(flow: str, run_id: str, step: str) -> str:
    """The step's packages from the flow file in the run's code package."""
    from metaflow.client.core import Run, get_namespace, namespace
    from metaflow.exception import MetaflowNamespaceMismatch, MetaflowNotFound, MetaflowUnknownUser

    pathspec = f"{flow}/{run_id}"
    try:
        previous = get_namespace()
    except MetaflowUnknownUser:  # no user to default to: nothing to go back to either
        previous = None
    namespace(None)  # a pinned run: any user's
    try:
        try:
            code = Run(pathspec).code
        except (MetaflowNotFound, MetaflowNamespaceMismatch):
            raise NotFoundError(
                f"--from: no Metaflow run {pathspec!r} in the metadata in play. Check the "
                "run id (see 'python flow.py list runs'), or register from the flow file: "
                f"--from path/flow.py:{step}."
            ) from None
    finally:
        namespace(previous)
    if code is None:
        raise EnvironmentSourceError(
            f"--from: run {pathspec} has no code package (a run whose steps all ran locally "
            f"keeps none), so its flow file cannot be read. Register from the flow file: "
            f"--from path/flow.py:{step}."
        )
    return _as_requirements(
        packages_of_step(str(code.flowspec), step, filename=f"{pathspec} flow file", flow=flow)
    )


def _as_requirements(packages: dict[str, str]) -> str:
    lines: list[str] = []
    for name, version in packages.items():
        spec = version.strip()
        if not spec:
            lines.append(name)
        elif spec.startswith(_OPERATOR):
            lines.append(f"{name}{spec}")
        else:
            lines.append(f"{name}=={spec}")
    return "\n".join(lines)


def _is_step(node: ast.expr) -> bool:
    target = node.func if isinstance(node, ast.Call) else node
    return (isinstance(target, ast.Name) and target.id == "step") or (
        isinstance(target, ast.Attribute) and target.attr == "step"
    )


def _decorator_name(node: ast.expr) -> str | None:
    target = node.func if isinstance(node, ast.Call) else node
    if isinstance(target, ast.Name):
        return target.id
    return target.attr if isinstance(target, ast.Attribute) else None


def _constants(tree: ast.Module) -> dict[str, Any]:
    """Module-level ``NAME = <literal>`` assignments (a packages dict may be one)."""
    found: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                try:
                    found[target.id] = ast.literal_eval(node.value)
                except ValueError:
                    continue
    return found


def _packages(decorator: ast.expr, constants: dict[str, Any], where: str) -> dict[str, str] | None:
    """The ``packages`` (or conda's ``libraries``) of one decorator; None when disabled."""
    if not isinstance(decorator, ast.Call):
        return {}
    keywords = {k.arg: k.value for k in decorator.keywords if k.arg is not None}
    name = _decorator_name(decorator)

    def literal(node: ast.expr, field: str) -> Any:
        if isinstance(node, ast.Name) and node.id in constants:
            return constants[node.id]
        try:
            return ast.literal_eval(node)
        except ValueError:
            raise EnvironmentSourceError(
                f"{where}: @{name}({field}=...) at line {node.lineno} is not a literal "
                f"(got {ast.unparse(node)!r}), so it cannot be read without running the flow. "
                "Write the dict in the decorator, or register a requirements.txt."
            ) from None

    if "disabled" in keywords and literal(keywords["disabled"], "disabled") is True:
        return None
    node = keywords.get("packages", keywords.get("libraries"))
    if node is None:
        return {}
    value = literal(node, "packages")
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str | int | float) for k, v in value.items()
    ):
        raise EnvironmentSourceError(
            f"{where}: @{name}(packages=...) at line {node.lineno} must map package names to "
            f"versions, e.g. {{'pandas': '2.2.3'}} (got {ast.unparse(node)!r})."
        )
    # conda names may carry a channel (conda-forge::numpy): the name is after it
    return {str(k).rpartition("::")[2]: str(v) for k, v in value.items()}


def _flow_classes(tree: ast.Module, step: str) -> list[tuple[ast.ClassDef, ast.FunctionDef]]:
    found: list[tuple[ast.ClassDef, ast.FunctionDef]] = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if (
                    isinstance(item, ast.FunctionDef)
                    and item.name == step
                    and any(_is_step(d) for d in item.decorator_list)
                ):
                    found.append((node, item))
    return found


def _steps_of(tree: ast.Module) -> str:
    steps = [
        f"{node.name}.{item.name}"
        for node in tree.body
        if isinstance(node, ast.ClassDef)
        for item in node.body
        if isinstance(item, ast.FunctionDef) and any(_is_step(d) for d in item.decorator_list)
    ]
    return ", ".join(steps) or "none"


def packages_of_step(
    source: str, step: str, *, filename: str, flow: str | None = None
) -> dict[str, str]:
    """The packages (name -> version) a Metaflow step declares, read from the flow file's
    source: the flow class's ``@pypi_base``/``@conda_base``, then the step's ``@pypi``/
    ``@conda`` over them. ``flow`` picks the class by name when the file has several."""
    try:
        tree = ast.parse(source, filename)
    except SyntaxError as exc:
        raise EnvironmentSourceError(
            f"{filename}: not valid Python (line {exc.lineno}: {exc.msg})."
        ) from None
    found = [(c, f) for c, f in _flow_classes(tree, step) if flow is None or c.name == flow]
    if not found:
        in_flow = f" of {flow}" if flow else ""
        raise EnvironmentSourceError(
            f"{filename}: no @step {step!r}{in_flow} (steps: {_steps_of(tree)}). Name a step "
            "of the flow after the colon, e.g. flow.py:train."
        )
    if len(found) > 1:
        names = ", ".join(c.name for c, _ in found)
        raise EnvironmentSourceError(
            f"{filename}: several classes have a step {step!r} ({names}). Register from a run "
            "of the flow you mean (Flow/run-id/step), or keep one flow per file."
        )
    cls, method = found[0]
    constants = _constants(tree)
    where = f"{filename}:{step}"
    merged: dict[str, str] = {}
    declared = False
    for names, decorators in (
        (_BASE_DECORATORS, cls.decorator_list), (_STEP_DECORATORS, method.decorator_list),
    ):  # fmt: skip
        for decorator in decorators:
            if _decorator_name(decorator) in names:
                packages = _packages(decorator, constants, where)
                if packages is not None:
                    declared = True
                    merged.update(packages)
    if not merged:
        said = "declares no packages" if declared else "has no @pypi or @conda packages"
        raise EnvironmentSourceError(
            f"{where}: the step {said} (nor does {cls.name} with @pypi_base/@conda_base). "
            "Add @pypi(packages={'pandas': '2.2.3'}) to the step, or register a "
            "requirements.txt."
        )
    return merged
