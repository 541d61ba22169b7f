"""Method discovery: built-ins from ``sgbench.methods``, third-party entry points, or a .py path.

Third-party methods register under the entry-point group ``sgbench.methods``; set
``SGBENCH_NO_ENTRY_POINTS=1`` to ignore them (e.g. for a reproducible built-in-only run).
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import pkgutil
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType

from . import methods as builtin_methods
from .errors import UsageError, UserError
from .method import Method, did_you_mean

ENTRY_POINT_GROUP = "sgbench.methods"


def _method_class(module: ModuleType, name: str) -> type[Method]:
    """The one Method subclass defined in ``module``, named ``name``."""
    found = [obj for obj in vars(module).values()
             if inspect.isclass(obj) and issubclass(obj, Method)
             and obj.__module__ == module.__name__]
    if len(found) != 1:
        raise UserError(f"method file for '{name}' must define exactly one Method subclass, "
                        f"found {len(found)}")
    cls = found[0]
    cls.name = name
    return cls


def _import(module_name: str, label: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except Exception as exc:  # a broken plugin must not look like a crash of sgbench
        raise UserError(f"cannot import method '{label}': {type(exc).__name__}: {exc}") from exc


@lru_cache(maxsize=None)
def builtin_names() -> tuple[str, ...]:
    return tuple(sorted(m.name for m in pkgutil.iter_modules(builtin_methods.__path__)
                        if not m.name.startswith("_")))


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    if os.environ.get("SGBENCH_NO_ENTRY_POINTS"):
        return {}
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def method_names() -> list[str]:
    return sorted(set(builtin_names()) | set(_entry_points()))


def load_method(name: str) -> type[Method]:
    """A method class by registered name, or from a path to a ``.py`` file."""
    if name.endswith(".py"):
        return _load_file(Path(name))
    if name in builtin_names():
        return _method_class(_import(f"{builtin_methods.__name__}.{name}", name), name)
    entry_points = _entry_points()
    if name in entry_points:
        try:
            cls = entry_points[name].load()
        except Exception as exc:
            raise UserError(f"cannot load method plugin '{name}': {exc}") from exc
        if not (inspect.isclass(cls) and issubclass(cls, Method)):
            raise UserError(f"entry point '{name}' does not name a sgbench Method class")
        cls.name = name
        return cls
    raise UsageError(f"unknown method '{name}'{did_you_mean(name, method_names())} "
                     f"(see `sgbench list methods`)")


def _load_file(path: Path) -> type[Method]:
    if not path.is_file():
        raise UsageError(f"method file not found: {path}")
    module_name = f"sgbench_user_method_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise UserError(f"cannot import method file {path}: {type(exc).__name__}: {exc}") from exc
    return _method_class(module, path.stem)


def method_source_sha256(cls: type[Method]) -> str:
    """sha256 of the files that define the method: its own and those of the method classes it
    extends (e.g. st_asg's and a2sg's), outside sgbench's own contract."""
    files = dict.fromkeys(Path(inspect.getfile(c)) for c in cls.__mro__
                          if issubclass(c, Method) and c.__module__ != Method.__module__)
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def all_methods() -> list[type[Method]]:
    return [load_method(name) for name in method_names()]
