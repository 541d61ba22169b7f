"""Method parameters: a ``Params`` dataclass whose fields declare what values they allow.

    @dataclass
    class Params:
        width: float = param(1.0, gt=0)                      # a bound
        schedule: str = param("log", choices=("log", "linear"))

One validator checks every field (types, finite numbers, bounds, choices) and then the method's
own cross-field rule (``Method.param_problems``), for ``run``, ``sweep`` (before any job starts),
``check-method`` and every construction of a method.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from .errors import UsageError, UserError
from .values import coerce, did_you_mean, split_assignment

KEY = "sgbench"  # where a field's Allowed lives in its metadata


@dataclass(frozen=True)
class Allowed:
    """The values a parameter allows: bounds (gt, ge, lt, le) and/or a set of choices."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    choices: tuple | None = None

    def problem(self, value: Any) -> str | None:
        if self.choices is not None:
            return None if value in self.choices else \
                f"must be one of {', '.join(map(str, self.choices))}"
        checks = ((self.gt, lambda v, b: v > b, ">"), (self.ge, lambda v, b: v >= b, ">="),
                  (self.lt, lambda v, b: v < b, "<"), (self.le, lambda v, b: v <= b, "<="))
        if any(bound is not None and not ok(value, bound) for bound, ok, _ in checks):
            return f"must be {self.describe()}"
        return None

    def describe(self) -> str:
        if self.choices is not None:
            return f"one of {', '.join(map(str, self.choices))}"
        parts = [f"{sign} {bound:g}" for bound, sign in ((self.gt, ">"), (self.ge, ">="),
                                                         (self.lt, "<"), (self.le, "<="))
                 if bound is not None]
        return " and ".join(parts) or "any value"


def param(default: Any, *, gt: float | None = None, ge: float | None = None,
          lt: float | None = None, le: float | None = None, choices: Sequence | None = None
          ) -> Any:
    """A ``Params`` field with its allowed values."""
    allowed = Allowed(gt, ge, lt, le, tuple(choices) if choices is not None else None)
    return field(default=default, metadata={KEY: allowed})


def params_fields(method_cls) -> dict[str, dataclasses.Field]:
    if not dataclasses.is_dataclass(method_cls.Params):
        raise UserError(f"method '{method_cls.name}': its Params must be a dataclass "
                        f"(decorate it with @dataclass)")
    return {f.name: f for f in dataclasses.fields(method_cls.Params)}


def allowed(f: dataclasses.Field) -> Allowed | None:
    return f.metadata.get(KEY)


def problems(method_cls, params: Any) -> list[str]:
    """Every way ``params`` breaks its fields' declarations or the method's own rule."""
    found = []
    for name, f in params_fields(method_cls).items():
        value = getattr(params, name)
        if isinstance(value, float) and not math.isfinite(value):
            found.append(f"{name}={value} must be a finite number")
            continue
        rule = allowed(f)
        message = rule.problem(value) if rule is not None else None
        if message:
            found.append(f"{name}={value} {message}")
    if found:
        return found
    try:
        return list(method_cls.param_problems(params))
    except Exception as exc:  # noqa: BLE001 - a plugin's bug, reported as one line
        raise UserError(f"method '{getattr(method_cls, 'name', '?')}': its param_problems "
                        f"raised {type(exc).__name__}: {exc}") from exc


def validate(method_cls, params: Any) -> None:
    """Raise a usage error (exit 2) naming the method, the parameter and what it allows."""
    found = problems(method_cls, params)
    if found:
        raise UsageError(f"method '{method_cls.name}': {'; '.join(found)}")


def parse_params(method_cls, assignments: Sequence[str]) -> Any:
    """``method_cls.Params`` from ``key=value`` strings, validated."""
    fields = params_fields(method_cls)
    defaults = method_cls.Params()
    values: dict[str, Any] = {}
    for item in assignments:
        key, text = split_assignment(item, "--param")
        if key not in fields:
            raise UsageError(f"unknown --param '{key}' for method '{method_cls.name}'"
                             f"{did_you_mean(key, fields)}; its parameters: "
                             f"{', '.join(fields) or 'none'}")
        values[key] = coerce(text, getattr(defaults, key),
                             f"--param {key} of method '{method_cls.name}'")
    params = method_cls.Params(**values)
    validate(method_cls, params)
    return params


def describe(method_cls) -> list[dict[str, Any]]:
    """Each parameter: name, default and what it allows (for `list methods` and docs)."""
    defaults = method_cls.Params()
    return [{"name": name, "default": getattr(defaults, name),
             "allowed": allowed(f).describe() if allowed(f) else "any value"}
            for name, f in params_fields(method_cls).items()]


def declared_bounds(cls) -> list[tuple[str, Any]]:
    """Each parameter's declared edge values, for the contract check: its ``ge``/``le`` bounds,
    a value just inside its ``gt``/``lt`` bounds (the next integer for an int field), and each
    of its choices."""
    found = []
    for f in dataclasses.fields(cls.Params):
        allowed = f.metadata.get(KEY)
        if allowed is None:
            continue
        if allowed.choices is not None:
            found += [(f.name, choice) for choice in allowed.choices]
            continue
        integer = isinstance(f.default, int) and not isinstance(f.default, bool)
        for bound, inward in ((allowed.ge, 0), (allowed.le, 0), (allowed.gt, 1), (allowed.lt, -1)):
            if bound is None:
                continue
            step = 1 if integer else 1e-3 * max(1.0, abs(bound))
            value = bound + inward * step
            found.append((f.name, int(value) if integer else float(value)))
    return found
