"""A sweep spec: the grid of jobs, each with a stable id, checked before anything runs."""
from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError, UserError
from ..files import safe_name

DEVICES = ("auto", "cpu", "cuda")
SPEC_KEYS = {"name", "methods", "tasks", "T", "seeds", "protocols", "params", "epochs",
             "overrides", "device", "out"}


@dataclass(frozen=True)
class Job:
    method: str
    task: str
    T: int | None
    seed: int
    protocol: str
    params: tuple[str, ...] = ()
    epochs: int | None = None
    overrides: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """The job's folder: task and method names (file stems), T, seed, protocol, and a hash of
        the rest, including the full paths of a task or method given as a file, so that
        `digits` and `alt/digits.yaml`, or `a/m.py` and `b/m.py`, never share a folder."""
        paths = [str(Path(x).resolve()) for x in (self.task, self.method)
                 if x.endswith((".py", ".yaml", ".yml"))]
        key = [self.params, self.epochs, self.overrides] + ([paths] if paths else [])
        digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:8]
        T = "default" if self.T is None else self.T
        task, method = Path(self.task).stem, Path(self.method).stem  # names or file paths
        return f"{task}_{method}_T{T}_s{self.seed}_{self.protocol}_{digest}"

    def argv(self, folder: Path, device: str, resume: bool) -> list[str]:
        """The `sgbench run` arguments of this job."""
        args = ["run", "--method", self.method, "--task", self.task, "--seed", str(self.seed),
                "--protocol", self.protocol, "--device", device, "--out", str(folder)]
        args += ["--T", str(self.T)] if self.T is not None else []
        args += ["--epochs", str(self.epochs)] if self.epochs is not None else []
        for p in self.params:
            args += ["--param", p]
        for o in self.overrides:
            args += ["--override", o]
        return args + (["--resume"] if resume else [])


@dataclass
class Spec:
    name: str
    jobs: list[Job]
    device: str
    out: Path


def _as_list(value: Any, key: str, kind: type, low: int | None = None) -> list:
    """A value or a non-empty list of them, each of ``kind`` (and >= ``low``), without repeats."""
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, kind) and not isinstance(v, bool) for v in values) \
            or (low is not None and min(values) < low):
        bound = f" >= {low}" if low is not None else ""
        name = {int: "an integer", str: "a name"}.get(kind, f"a {kind.__name__}")
        raise UsageError(f"sweep spec: '{key}' must be {name}{bound} or a non-empty list of "
                         f"them; got {value!r}")
    return list(dict.fromkeys(values))


def _param_grid(method: str, grid: dict[str, Any]) -> list[tuple[str, ...]]:
    """Every combination of one method's params: {alpha: [2, 4], ...} -> ("alpha=2", ...), ..."""
    if not isinstance(grid, dict):
        raise UserError(f"sweep spec: params.{method} must map parameter names to values")
    keys = sorted(grid)
    values = [list(dict.fromkeys(map(json.dumps, grid[k])))
              if isinstance(grid[k], list) else [json.dumps(grid[k])] for k in keys]
    values = [[json.loads(v) for v in vs] for vs in values]
    return [tuple(f"{k}={json.dumps(v) if not isinstance(v, str) else v}"
                  for k, v in zip(keys, combo)) for combo in itertools.product(*values)]


def load_spec(path: Path, out: Path | None = None) -> Spec:
    """Read and check a sweep spec; every method, task and param is checked before anything runs."""
    from ..config import load_yaml, resolve_task
    from ..params import parse_params
    from ..registry import load_method

    if not path.is_file():
        raise UserError(f"no sweep spec at '{path}'")
    spec = load_yaml(path, "sweep spec")
    if not isinstance(spec, dict):
        raise UserError(f"sweep spec '{path}' must be a mapping of keys to values")
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise UserError(f"sweep spec: unknown key(s) {', '.join(sorted(unknown))}; "
                        f"known: {', '.join(sorted(SPEC_KEYS))}")
    for key in ("methods", "tasks"):
        if key not in spec:
            raise UserError(f"sweep spec: '{key}' is required")
    methods = _as_list(spec["methods"], "methods", str)
    tasks = _as_list(spec["tasks"], "tasks", str)
    Ts = [None] if spec.get("T") is None else _as_list(spec["T"], "T", int, low=1)
    seeds = _as_list(spec.get("seeds", 0), "seeds", int, low=0)
    protocols = _as_list(spec.get("protocols", "controlled"), "protocols", str)
    overrides = tuple(_as_list(spec["overrides"], "overrides", str)) if spec.get("overrides") \
        else ()
    epochs = spec.get("epochs")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int)
                               or epochs < 1):
        raise UsageError(f"sweep spec: 'epochs' must be a positive integer; got {epochs!r}")
    bad = [p for p in protocols if p not in ("controlled", "paper")]
    if bad:
        raise UsageError(f"sweep spec: protocols are controlled or paper; got {bad}")
    device = spec.get("device", "auto")
    if device not in DEVICES:
        raise UsageError(f"sweep spec: 'device' must be one of {', '.join(DEVICES)}; "
                         f"got {device!r}")
    params = spec.get("params") or {}
    if not isinstance(params, dict) or set(params) - set(methods):
        raise UserError("sweep spec: 'params' maps names from 'methods' to their parameter grids")
    grids = {}
    for method in methods:
        cls = load_method(method)
        grids[method] = _param_grid(method, params.get(method, {}))
        for combo in grids[method]:
            parse_params(cls, list(combo))
    for task in tasks:  # unknown tasks and override keys fail here, not in every job
        resolve_task(task, epochs=epochs, overrides=list(overrides))
    unique: dict[str, Job] = {}  # the same job twice (a file spelt two ways too) runs once
    for job in (Job(m, task, T, seed, protocol, combo, epochs, overrides)
                for task in tasks for T in Ts for m in methods for combo in grids[m]
                for protocol in protocols for seed in seeds):
        unique.setdefault(job.id, job)
    jobs = list(unique.values())
    if not jobs:
        raise UsageError(f"sweep spec {path}: its grid has no jobs (an empty parameter list?)")
    name = safe_name(spec.get("name") or path.stem)  # a folder name: nothing may escape
    return Spec(name, jobs, device, out or Path(spec.get("out") or Path("results/sweeps") / name))
