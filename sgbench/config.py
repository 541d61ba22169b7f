"""Task configuration: versioned YAML files with ``include:``, ``-o key=value`` overrides and the
``paper`` protocol overlay. Unknown keys are errors, with the closest known names.

Resolution order: schema defaults < included files < the task file < the method's paper recipe
(``--protocol paper``) < ``-o`` overrides < ``--T`` / ``--epochs``.
"""
from __future__ import annotations

import copy
import math
import hashlib
import importlib.resources
import json
import re
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Callable

import yaml

from .errors import UsageError, UserError
from .params import Allowed
from .values import YAML_MAX_CHARS, coerce, did_you_mean, load_yaml_text, split_assignment

TASK_PACKAGE = "sgbench.tasks"
PROTOCOLS = ("controlled", "paper")

# Every key a task may set, with its default. ``data`` and ``model`` also take the keyword
# arguments of their dataset and architecture builders (checked when those are built).
DEFAULTS: dict[str, Any] = {
    "name": None, "version": None, "description": "", "citation": "", "T": 4,
    "data": {"dataset": None, "encoding": "direct"},
    "model": {"arch": None},
    "neuron": {"charge": "tau", "tau": 2.0, "decay_input": True, "decay": 0.5,
               "learnable_decay": False, "v_threshold": 1.0, "reset": "hard", "v_reset": 0.0,
               "detach_reset": False, "backend": "auto", "require_fused": False},
    "train": {"epochs": 10, "batch_size": 64, "optimizer": "adam", "lr": 1e-3, "momentum": 0.9,
              "weight_decay": 0.0, "schedule": "cosine", "loss": "ce", "label_smoothing": 0.0,
              "amp": False, "channels_last": False, "workers": "auto",
              "drop_last": False},
    "eval": {"batch_size": 256},
}
OPEN_SECTIONS = ("data", "model")  # sections whose extra keys are builder arguments
# Keys that exist only with a setting: the TET loss's weight lambda and target phi (Deng et al.,
# ICLR 2022, Eq. 12; lambda = 0.05 on CIFAR). Other configs, and their hashes, stay as they were.
CONDITIONAL = {("train", "loss", "tet"): {"tet_lambda": 0.05, "tet_phi": 1.0}}
CHARGES, RESETS, BACKENDS = ("tau", "mul", "if"), ("hard", "soft"), ("auto", "torch", "cupy")
OPTIMIZERS, SCHEDULES, LOSSES = ("adam", "adamw", "sgd"), ("cosine", "constant"), ("ce", "mse",
                                                                                    "tet")
ENCODINGS = ("direct", "poisson", "frames", "rows", "pixels", "latency")
NUMBER, TEXT, FLAG = (int, float), (str,), (bool,)
# The type and allowed values of every fixed key (builder arguments are checked by their builders).
SCHEMA: dict[str, tuple[tuple, Allowed | None]] = {
    "name": (TEXT, None), "version": ((int, str), None), "description": (TEXT, None),
    "citation": (TEXT, None), "T": ((int,), Allowed(ge=1)),
    "data.dataset": (TEXT, None), "data.encoding": (TEXT, Allowed(choices=ENCODINGS)),
    "model.arch": (TEXT, None),
    "neuron.charge": (TEXT, Allowed(choices=CHARGES)), "neuron.tau": (NUMBER, None),
    "neuron.decay_input": (FLAG, None), "neuron.decay": (NUMBER, None),
    "neuron.learnable_decay": (FLAG, None), "neuron.v_threshold": (NUMBER, None),
    "neuron.reset": (TEXT, Allowed(choices=RESETS)), "neuron.v_reset": (NUMBER, None),
    "neuron.detach_reset": (FLAG, None), "neuron.backend": (TEXT, Allowed(choices=BACKENDS)),
    "neuron.require_fused": (FLAG, None),
    "train.epochs": ((int,), Allowed(ge=1)), "train.batch_size": ((int,), Allowed(ge=1)),
    "train.optimizer": (TEXT, Allowed(choices=OPTIMIZERS)), "train.lr": (NUMBER, Allowed(gt=0)),
    "train.momentum": (NUMBER, Allowed(ge=0, lt=1)), "train.weight_decay": (NUMBER, Allowed(ge=0)),
    "train.schedule": (TEXT, Allowed(choices=SCHEDULES)),
    "train.loss": (TEXT, Allowed(choices=LOSSES)),
    "train.label_smoothing": (NUMBER, Allowed(ge=0, lt=1)), "train.amp": (FLAG, None),
    "train.tet_lambda": (NUMBER, Allowed(ge=0, le=1)), "train.tet_phi": (NUMBER, None),
    "train.channels_last": (FLAG, None), "train.workers": ((int, str), None),
    "train.drop_last": (FLAG, None), "eval.batch_size": ((int,), Allowed(ge=1)),
}
# Keys about how results are read, not how a run trains: kept out of the resolved config (and its
# hash). `target_top1`: the test top-1 (%) whose first epoch `compare` reports (time-to-target).
# `rope`: the half-width (points of top-1) within which two methods count as practically equal.
ANNOTATIONS: dict[str, tuple[tuple, Allowed]] = {"target_top1": (NUMBER, Allowed(gt=0, le=100)),
                                                 "rope": (NUMBER, Allowed(gt=0, le=100))}


def check_values(config: dict[str, Any], source: str) -> None:
    """Every fixed key has its type and an allowed value (before anything runs)."""
    for dotted, (kinds, allowed) in SCHEMA.items():
        section, _, key = dotted.rpartition(".")
        node = config.get(section, {}) if section else config
        if key not in node:
            continue
        value = node[key]
        bad_type = not isinstance(value, kinds) or (isinstance(value, bool) and FLAG != kinds)
        if bad_type or (isinstance(value, float) and not math.isfinite(value)):
            names = " or ".join("number" if k is float else k.__name__ for k in kinds
                                if not (k is int and float in kinds))
            raise UsageError(f"{source}: {dotted} must be a {names}, got {value!r}")
        problem = allowed.problem(value) if allowed is not None else None
        if problem:
            raise UsageError(f"{source}: {dotted}={value!r} {problem}")


def task_names() -> list[str]:
    root = importlib.resources.files(TASK_PACKAGE)
    return sorted(p.name[:-5] for p in root.iterdir()
                  if p.name.endswith(".yaml") and not p.name.startswith("_"))


def _task_file(name: str) -> Traversable | Path:
    if name.endswith((".yaml", ".yml")):
        path = Path(name)
        if not path.is_file():
            raise UsageError(f"task file not found: {name}")
        return path
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) or ".." in name:
        raise UsageError(f"unknown task '{name}': a task is a name from `sgbench list tasks` "
                         f"or a path to a .yaml file")
    candidate = importlib.resources.files(TASK_PACKAGE) / f"{name}.yaml"
    if not candidate.is_file():
        raise UsageError(f"unknown task '{name}'{did_you_mean(name, task_names())} "
                         f"(see `sgbench list tasks`)")
    return candidate


def load_yaml(path: Traversable | Path, what: str) -> Any:
    """A YAML file's content; a syntax error, a duplicate key, an alias, too deep nesting, a file
    too large or not UTF-8, or a special file (a FIFO) is one line that names the file."""
    if isinstance(path, Path) and path.exists() and not path.is_file():
        raise UserError(f"{what} file {path} is not a regular file")
    try:
        with path.open("rb") as fh:  # never more than the limit read (a huge or sparse file)
            data = fh.read(YAML_MAX_CHARS + 1)
        if len(data) > YAML_MAX_CHARS:
            raise UserError(f"{what} file {path} is larger than {YAML_MAX_CHARS:,} bytes")
        return load_yaml_text(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UserError(f"{what} file {path} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise UserError(f"cannot read {what} file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"malformed {what} YAML in {path}{where}: "
                        f"{getattr(exc, 'problem', None) or exc}") from None


def _read_yaml(path: Traversable | Path) -> dict[str, Any]:
    data = load_yaml(path, "task")
    if not isinstance(data, dict):
        raise UserError(f"task file {path} must hold a mapping, not {type(data).__name__}")
    return data


MAX_INCLUDE_DEPTH, MAX_INCLUDED_FILES = 16, 128  # far beyond any real task's few levels


def _load_with_includes(path: Traversable | Path, seen: tuple[str, ...] = (),
                        loaded: list[int] | None = None) -> dict[str, Any]:
    """The task file merged over its includes; a cycle, a chain deeper than
    MAX_INCLUDE_DEPTH or more than MAX_INCLUDED_FILES reads in all (a fan-out that includes
    files many times over) is one line."""
    path = path.resolve() if isinstance(path, Path) else path  # a cycle spelt through '..' too
    if str(path) in seen:
        raise UsageError(f"include cycle: {' -> '.join(seen + (str(path),))}")
    if len(seen) >= MAX_INCLUDE_DEPTH:
        raise UsageError(f"{seen[0]}: includes nest more than {MAX_INCLUDE_DEPTH} files deep "
                         f"(at {path})")
    loaded = [0] if loaded is None else loaded
    loaded[0] += 1
    if loaded[0] > MAX_INCLUDED_FILES:
        raise UsageError(f"{seen[0] if seen else path}: more than {MAX_INCLUDED_FILES} task "
                         f"files read through its includes (a file included many times over?)")
    data = _read_yaml(path)
    includes = data.pop("include", [])
    names = [includes] if isinstance(includes, str) else includes
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise UsageError(f"{path}: include must be a file name or a list of file names, "
                        f"got {includes!r}")
    merged: dict[str, Any] = {}
    for name in names:
        included = path.parent / name
        if not included.is_file():
            raise UsageError(f"{path}: included file {name} not found (looked in {path.parent})")
        merged = deep_merge(merged, _load_with_includes(included, seen + (str(path),), loaded))
    return deep_merge(merged, data)


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def nest(dotted: dict[str, Any]) -> dict[str, Any]:
    """{'train.epochs': 5} -> {'train': {'epochs': 5}}."""
    out: dict[str, Any] = {}
    for key, value in dotted.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def _apply_override(config: dict[str, Any], item: str) -> None:
    key, text = split_assignment(item, "-o")
    if not key or not text:
        raise UsageError(f"-o needs key=value with both given, got '{item}'")
    node, parts = config, key.split(".")
    for depth, part in enumerate(parts[:-1]):
        if not isinstance(node.get(part), dict):
            raise UsageError(f"unknown -o key '{key}'{did_you_mean(part, node)}")
        node = node[part]
    leaf = parts[-1]
    section = parts[0] if len(parts) > 1 else None
    optional = _conditional_keys(section) if len(parts) == 2 else {}
    if leaf not in node and leaf not in optional and section not in OPEN_SECTIONS:
        raise UsageError(f"unknown -o key '{key}'{did_you_mean(leaf, node)}; "
                         f"known keys here: {', '.join(node)}")
    node[leaf] = coerce(text, node.get(leaf, optional.get(leaf)), f"-o {key}")


def validate(config: dict[str, Any], source: str) -> None:
    for key, value in config.items():
        if key not in DEFAULTS:
            raise UserError(f"{source}: unknown key '{key}'{did_you_mean(key, DEFAULTS)}")
        if isinstance(DEFAULTS[key], dict):
            if not isinstance(value, dict):
                raise UserError(f"{source}: '{key}' must be a mapping")
            if key not in OPEN_SECTIONS:
                for sub in value:
                    if sub not in DEFAULTS[key] and sub not in _conditional_keys(key):
                        raise UserError(f"{source}: unknown key '{key}.{sub}'"
                                        f"{did_you_mean(sub, DEFAULTS[key])}")
    for required in ("name", "version"):
        if config.get(required) is None:
            raise UserError(f"{source}: the task must set '{required}'")
    for section, key in (("data", "dataset"), ("model", "arch")):
        if not config[section].get(key):
            raise UserError(f"{source}: the task must set '{section}.{key}'")
    check_values(config, source)


def resolve_task(name: str, *, T: int | None = None, epochs: int | None = None,
                 overrides: list[str] = (), protocol: str = "controlled",
                 paper_overlay: Callable[[str], dict[str, Any]] | None = None
                 ) -> dict[str, Any]:
    """The fully resolved configuration of one run of task ``name``.

    ``paper_overlay(dataset)`` gives the method's dotted-key overlay, used under ``paper``.
    """
    if protocol not in PROTOCOLS:
        raise UsageError(f"--protocol must be one of {', '.join(PROTOCOLS)}; got '{protocol}'")
    path = _task_file(name)
    task = _load_with_includes(path)
    _pop_annotations(task, str(path))
    validate(deep_merge(DEFAULTS, task), str(path))
    config = deep_merge(DEFAULTS, task)
    if protocol == "paper" and paper_overlay is not None:
        config = deep_merge(config, nest(paper_overlay(config["data"]["dataset"])))
        validate(config, "paper recipe")
    for item in overrides:
        _apply_override(config, item)
    if T is not None:
        config["T"] = T
    if epochs is not None:
        config["train"]["epochs"] = epochs
    _fill_conditional(config)
    validate(config, "overrides")
    return config


def _pop_annotations(task: dict[str, Any], source: str) -> dict[str, Any]:
    """Remove and check the task's annotation keys (see ANNOTATIONS)."""
    found = {key: task.pop(key) for key in ANNOTATIONS if key in task}
    for key, value in found.items():
        types, allowed = ANNOTATIONS[key]
        if isinstance(value, bool) or not isinstance(value, types):
            raise UserError(f"{source}: '{key}' must be a number, got {value!r}")
        problem = allowed.problem(value)
        if problem:
            raise UserError(f"{source}: '{key}' {problem}")
    return found


def task_annotations(name: str) -> dict[str, Any]:
    """A built-in task's annotations (e.g. its target top-1); empty for unknown names."""
    if name not in task_names():
        return {}
    return _pop_annotations(_load_with_includes(_task_file(name)), name)


def _conditional_keys(section: str) -> dict[str, Any]:
    return {k: v for (where, _, _), keys in CONDITIONAL.items() if where == section
            for k, v in keys.items()}


def _fill_conditional(config: dict[str, Any]) -> None:
    """Each conditional key with its default where its setting holds; an error where it is set
    without the setting."""
    for (section, key, value), keys in CONDITIONAL.items():
        node = config[section]
        if node.get(key) == value:
            for name, default in keys.items():
                node.setdefault(name, default)
        elif set(keys) & set(node):
            raise UsageError(f"{section}.{', '.join(sorted(set(keys) & set(node)))} applies "
                             f"only with {section}.{key}: {value}")


def config_sha256(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def describe_task(name: str) -> dict[str, Any]:
    config = resolve_task(name)
    return {"name": name, "version": config["version"], "dataset": config["data"]["dataset"],
            "arch": config["model"]["arch"], "T": config["T"],
            "description": config["description"], "citation": config["citation"]}
