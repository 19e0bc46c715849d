"""Loads a service class from ``path/to/file.py[:ClassName]``."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path

from flowhost.errors import ServiceTargetError, SpecError
from flowhost.services.spec import WebServiceSpec

__all__ = ["load_service", "split_target"]


def split_target(target: str) -> tuple[Path, str | None]:
    """``"svc.py:Cls"`` -> ``(Path("svc.py"), "Cls")``; the class part is optional."""
    path, sep, cls_name = target.rpartition(":") if target.count(":") == 1 else (target, "", "")
    if not sep:
        path, cls_name = target, ""
    return Path(path), (cls_name or None)


def _import_file(path: Path) -> object:
    module_name = path.stem
    existing = sys.modules.get(module_name)
    if existing is not None:
        if getattr(existing, "__file__", None) == str(path):
            return existing
        module_name = f"flowhost_service_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - not a Python file
        raise SpecError(f"{path}: not a Python source file. Point at a .py file.")
    module = importlib.util.module_from_spec(spec)
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))  # sibling modules of the service import normally
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SpecError:
        sys.modules.pop(module_name, None)
        raise
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise SpecError(
            f"{path}: importing the service file failed ({type(exc).__name__}: {exc}). "
            "Fix the error above, or add the missing package to the service environment."
        ) from exc
    return module


def load_service(target: str) -> type[WebServiceSpec]:
    """Import the file and return the service class it names (or its only service class)."""
    path, cls_name = split_target(target)
    path = path.resolve()
    if not path.is_file():
        raise ServiceTargetError(
            f"{target}: no such file ({path}). Give the path to a service .py file."
        )
    module = _import_file(path)
    found = {
        name: obj
        for name, obj in vars(module).items()
        if inspect.isclass(obj)
        and issubclass(obj, WebServiceSpec)
        and obj is not WebServiceSpec
        and obj.__module__ == getattr(module, "__name__", None)
        and not obj.__dict__.get("abstract", False)
    }
    if cls_name is not None:
        if cls_name not in found:
            raise ServiceTargetError(
                f"{target}: no WebServiceSpec class {cls_name!r} in {path.name}. "
                f"Classes found: {', '.join(sorted(found)) or 'none'}."
            )
        return found[cls_name]
    if len(found) != 1:
        which = ", ".join(sorted(found)) or "none"
        raise ServiceTargetError(
            f"{target}: expected exactly one WebServiceSpec class in {path.name} (found: {which}). "
            f"Name one: {path.name}:ClassName."
        )
    return next(iter(found.values()))
