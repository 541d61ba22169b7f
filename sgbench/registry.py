"""Method discovery and identity.

A method comes from one of three origins: built into sgbench (``methods/<name>.py``, installed as
``sgbench.methods``), an
installed package's entry point in the group ``sgbench.methods``, or a ``.py`` file named on the
command line. Its name is the class's own ``name`` attribute when it sets one, else its module's
file stem; an entry point must carry that same name, so a plugin is called the same whichever
way it is loaded. Two methods never share a name: an entry point or a file named like a built-in
(or like another entry point) is an error that names both origins. A method's identity in a
record is its name, its origin (package and version, or file) and the sha256 of its source.

Discovery reads names and metadata without importing anything (``sgbench list methods`` reads
each module's source); a method is imported only when it is used, and a broken plugin affects
only itself. ``SGBENCH_NO_ENTRY_POINTS=1`` ignores entry points.
"""
from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__
from .errors import UsageError, UserError
from .values import did_you_mean

ENTRY_POINT_GROUP = "sgbench.methods"
BUILTIN_PACKAGE = "sgbench.methods"
BUILTIN_DIR = Path(importlib.util.find_spec(BUILTIN_PACKAGE).submodule_search_locations[0])
DESCRIBED = ("citation", "kinds", "fidelity")


@dataclass(frozen=True)
class Origin:
    kind: str  # built-in | entry point | file
    where: str  # the module (built-in, entry point "module:attr") or the file's path
    package: str | None = None
    version: str | None = None

    def describe(self) -> str:
        if self.kind == "file":
            return f"file {self.where}"
        if self.kind == "built-in":
            return f"built-in (sgbench {self.version})"
        return f"entry point of {self.package} {self.version} ({self.where})"

    def as_record(self) -> dict[str, Any]:
        return {"kind": self.kind, "where": self.where, "package": self.package,
                "version": self.version}


@dataclass(frozen=True)
class Candidate:
    """A method that can be loaded, found without importing it."""

    name: str
    origin: Origin
    source: Path | None  # its module's file, when it can be found without importing
    attr: str | None = None  # the class's name in the module (entry points say it)


def builtin_names() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in BUILTIN_DIR.glob("*.py") if not p.stem.startswith("_")))


def _builtins() -> list[Candidate]:
    return [Candidate(name, Origin("built-in", f"{BUILTIN_PACKAGE}.{name}", "sgbench",
                                   __version__), BUILTIN_DIR / f"{name}.py")
            for name in builtin_names()]


def _module_file(module: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    return Path(spec.origin) if spec is not None and spec.origin not in (None, "built-in") \
        else None


def _entry_points() -> list[Candidate]:
    if os.environ.get("SGBENCH_NO_ENTRY_POINTS"):
        return []
    found = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        origin = Origin("entry point", ep.value, dist.name if dist else None,
                        dist.version if dist else None)
        found.append(Candidate(ep.name, origin, _module_file(ep.module), ep.attr))
    return found


def candidates() -> dict[str, list[Candidate]]:
    """Every discoverable method by name (more than one candidate for a name is a conflict). An
    entry point that claims a built-in's name is left out (``refused_entry_points``): a clash
    hurts only the newcomer, never the built-in."""
    builtins = _builtins()
    by_name: dict[str, list[Candidate]] = {c.name: [c] for c in builtins}
    for candidate in _entry_points():
        if candidate.name not in by_name or by_name[candidate.name][0].origin.kind != "built-in":
            by_name.setdefault(candidate.name, []).append(candidate)
    return by_name


def refused_entry_points() -> list[tuple[Candidate, str]]:
    """Entry points that claim a built-in's name, with why they are not loaded."""
    taken = set(builtin_names())
    return [(c, f"entry point '{c.name}' of {c.origin.package} {c.origin.version} claims the "
                f"name of sgbench's built-in '{c.name}' and is ignored: give the plugin another "
                f"name (its class's `name` and its entry point's)")
            for c in _entry_points() if c.name in taken]


def method_names() -> list[str]:
    return sorted(candidates())


def _conflict(name: str, origins: list[Origin]) -> UserError:
    return UserError(f"method name '{name}' is claimed by more than one method: "
                     f"{'; '.join(o.describe() for o in origins)}. Give the plugin another name "
                     f"(its class's `name`, its file's or entry point's name)")


def load_method(spec: str) -> type:
    """A method class by registered name, or from a path to a ``.py`` file."""
    if spec.endswith(".py"):
        return _load_file(Path(spec))
    found = candidates().get(spec)
    if not found:
        raise UsageError(f"unknown method '{spec}'{did_you_mean(spec, method_names())} "
                         f"(see `sgbench list methods`)")
    if len(found) > 1:
        raise _conflict(spec, [c.origin for c in found])
    return _load(found[0])


def _load(candidate: Candidate) -> type:
    if candidate.origin.kind == "built-in":
        module = _import(candidate.origin.where, candidate.name)
        return _adopt(_method_class(module, candidate.name), candidate.name, candidate.origin)
    try:
        module = importlib.import_module(candidate.origin.where.split(":")[0])
        cls = getattr(module, candidate.attr)
    except Exception as exc:  # a broken plugin must not look like a crash of sgbench
        raise UserError(f"cannot load method plugin '{candidate.name}' "
                        f"({candidate.origin.describe()}): {type(exc).__name__}: {exc}") from exc
    if not _is_method(cls):
        raise UserError(f"entry point '{candidate.name}' ({candidate.origin.where}) does not "
                        f"name a sgbench Method class")
    own = _declared_name(cls, module)
    if own != candidate.name:
        raise UserError(f"entry point '{candidate.name}' ({candidate.origin.describe()}) loads "
                        f"the method '{own}': name the entry point '{own}', or set "
                        f"name = '{candidate.name}' in its class")
    return _adopt(cls, own, candidate.origin)


def _load_file(path: Path) -> type:
    if not path.is_file():
        raise UsageError(f"method file not found: {path}")
    path = path.resolve()
    content = path.read_bytes()
    for found in candidates().values():  # a registered method's own file, or a copy of it
        source = found[0].source if len(found) == 1 else None
        if source is not None and (source.resolve() == path or _reads(source) == content):
            return _load(found[0])
    module = _import_file(path)
    cls = _method_class(module, path.stem)
    name, origin = _declared_name(cls, module), Origin("file", str(path))
    taken = candidates().get(name, [])
    if taken and taken[0].origin.kind != "built-in":
        raise UserError(f"method '{name}' in {path} differs from the installed one of that name "
                        f"({taken[0].origin.describe()}): reinstall the package (pip install "
                        f"-e . keeps it current), or set SGBENCH_NO_ENTRY_POINTS=1 to run the "
                        f"file instead of installed plugins")
    if taken:
        raise _conflict(name, [origin] + [c.origin for c in taken])
    return _adopt(cls, name, origin)


def _reads(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _import_file(path: Path):
    """The module of a method file, imported once per process for each content it has."""
    digest = hashlib.sha256(str(path).encode() + path.read_bytes()).hexdigest()[:12]
    module_name = f"sgbench_user_method_{path.stem}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit and the like too: a plugin must not end sgbench
        sys.modules.pop(module_name, None)
        raise UserError(f"cannot import method file {path}: {type(exc).__name__}: {exc}") from exc
    return module


def _import(module_name: str, label: str):
    try:
        return importlib.import_module(module_name)
    except Exception as exc:
        raise UserError(f"cannot import method '{label}': {type(exc).__name__}: {exc}") from exc


def _is_method(obj: Any) -> bool:
    from .method import Method

    return inspect.isclass(obj) and issubclass(obj, Method)


def _method_class(module, label: str) -> type:
    """The one Method subclass defined in ``module``."""
    found = [obj for obj in vars(module).values()
             if _is_method(obj) and obj.__module__ == module.__name__]
    if len(found) != 1:
        raise UserError(f"method file for '{label}' must define exactly one Method subclass, "
                        f"found {len(found)}")
    return found[0]


def _declared_name(cls: type, module) -> str:
    """The class's own ``name`` (not an inherited one), else its module's file stem."""
    own = cls.__dict__.get("name")
    if own:
        return str(own)
    return Path(getattr(module, "__file__", None) or module.__name__).stem


def _adopt(cls: type, name: str, origin: Origin) -> type:
    cls.name, cls.origin = name, origin
    return cls


def method_files(cls: type) -> list[Path]:
    """The files whose content is the method's identity: the modules of the method classes it
    extends (e.g. st_asg's and a2sg's), outside sgbench's own contract, and for a method that a
    package installs, every module of that package, so a formula moved into a sibling module
    and changed there changes the method's hash too."""
    files = _class_files(cls)
    origin = getattr(cls, "origin", None)
    if origin is not None and origin.kind == "entry point":
        files += _package_files(origin.where.split(":")[0])
    return list(dict.fromkeys(files))


def _class_files(cls: type) -> list[Path]:
    from .method import Method

    return list(dict.fromkeys(Path(inspect.getfile(c)) for c in cls.__mro__
                              if issubclass(c, Method) and c.__module__ != Method.__module__))


def _package_files(module: str) -> list[Path]:
    """Every Python module of the top-level package that ``module`` belongs to (just the module
    when it is not in a package)."""
    top = importlib.util.find_spec(module.split(".")[0])
    if top is None or not top.submodule_search_locations:
        found = _module_file(module)
        return [found] if found else []
    return sorted(p for root in top.submodule_search_locations
                  for p in Path(root).rglob("*.py") if "__pycache__" not in p.parts)


def method_source_sha256(cls: type) -> str:
    """sha256 of the method's files (``method_files``): the class files' contents, then each
    further module of its package with its name (a module added or renamed counts too)."""
    digest = hashlib.sha256()
    classes = _class_files(cls)
    for path in method_files(cls):
        if path not in classes:
            digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def builtin_methods() -> list[type]:
    return [load_method(name) for name in builtin_names()]


# -- static description: `sgbench list methods` without importing any method ------------------

def describe_all() -> list[dict[str, Any]]:
    """Every discoverable method with its origin and metadata, read from its source; a conflict,
    a missing module or dependency, or a source that cannot be read is reported in its row."""
    rows = []
    for name, found in sorted(candidates().items()):
        for candidate in found:
            row = {"name": name, "origin": candidate.origin.describe(), "kinds": [],
                   "fidelity": "", "citation": "", "error": None}
            try:
                if len(found) > 1:
                    raise _conflict(name, [c.origin for c in found])
                row.update(_static_metadata(candidate))
            except UserError as exc:
                row["error"] = str(exc)
            rows.append(row)
    for candidate, why in refused_entry_points():  # shown, so the plugin's author sees why
        rows.append({"name": candidate.name, "origin": candidate.origin.describe(),
                     "kinds": [], "fidelity": "", "citation": "", "error": why})
    return rows


def _static_metadata(candidate: Candidate) -> dict[str, Any]:
    if candidate.source is None or not candidate.source.is_file():
        raise UserError(f"cannot find the module of {candidate.origin.describe()}")
    try:
        tree = ast.parse(candidate.source.read_text(), filename=str(candidate.source))
    except (SyntaxError, OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {candidate.source}: {exc}") from None
    missing = _missing_imports(tree)
    if missing:
        raise UserError(f"{candidate.source} imports {', '.join(missing)}, which is not "
                        f"installed")
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef)
               and (node.name == candidate.attr if candidate.attr
                    else "citation" in _literals(node))]
    if len(classes) != 1:
        raise UserError(f"{candidate.source}: no method class found")
    values = _literals(classes[0])
    return {key: values.get(key, "?") for key in DESCRIBED}


def static_defaults(name: str) -> dict[str, Any] | None:
    """A discoverable method's default parameters, read from its ``Params`` class in its source
    (None when they cannot be read that way)."""
    found = candidates().get(name)
    if not found or found[0].source is None or not found[0].source.is_file():
        return None
    try:
        tree = ast.parse(found[0].source.read_text())
    except (SyntaxError, OSError, UnicodeDecodeError):
        return None
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef)
               and (node.name == found[0].attr if found[0].attr
                    else "citation" in _literals(node))]
    params = [n for c in classes for n in c.body
              if isinstance(n, ast.ClassDef) and n.name == "Params"]
    if len(params) != 1:
        return None
    defaults = {}
    for item in params[0].body:
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and item.value:
            value = item.value.args[0] if isinstance(item.value, ast.Call) and \
                item.value.args else item.value
            try:
                defaults[item.target.id] = ast.literal_eval(value)
            except ValueError:
                return None
    return defaults


def _literals(node: ast.ClassDef) -> dict[str, Any]:
    out = {}
    for item in node.body:
        if isinstance(item, ast.Assign) and len(item.targets) == 1 \
                and isinstance(item.targets[0], ast.Name):
            try:
                value = ast.literal_eval(item.value)
            except ValueError:
                continue
            out[item.targets[0].id] = list(value) if isinstance(value, tuple) else value
    return out


def _missing_imports(tree: ast.Module) -> list[str]:
    names = [alias.name for node in tree.body if isinstance(node, ast.Import)
             for alias in node.names]
    names += [node.module for node in tree.body
              if isinstance(node, ast.ImportFrom) and node.module and not node.level]
    tops = dict.fromkeys(name.split(".")[0] for name in names)
    return [top for top in tops if importlib.util.find_spec(top) is None]
