"""Values a user types (``key=value`` assignments, names): parsing, type checks, suggestions.

Imports nothing heavy, so that read-only commands stay fast.
"""
from __future__ import annotations

import difflib
import math
import re
from typing import Any

import yaml

from .errors import UsageError


def did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def split_assignment(item: str, flag: str) -> tuple[str, str]:
    if "=" not in item:
        raise UsageError(f"{flag} expects key=value, got '{item}'")
    key, value = item.split("=", 1)
    return key.strip(), value.strip()


class Loader(yaml.SafeLoader):
    """YAML's safe loader that also reads ``1e-3`` and ``5E4`` as floats (YAML 1.1 wants a dot
    in the mantissa and reads them as strings)."""


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def load_yaml_text(text: str) -> Any:
    return yaml.load(text, Loader=Loader)


def parse_scalar(text: str) -> Any:
    """YAML's reading of ``text``, except that numbers YAML 1.1 leaves as strings (``1e-3``,
    ``.5e2``) are numbers, and ``nan``/``inf`` spelt any way are floats."""
    try:
        value = load_yaml_text(text) if text != "" else ""
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def coerce(text: str, like: Any, what: str) -> Any:
    """Parse ``text`` and check it has the type of the default ``like``; floats must be finite."""
    if isinstance(like, str):
        return text
    value = parse_scalar(text)
    if like is None:
        return value
    if isinstance(like, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(like, (int, float)) and isinstance(value, (int, float)) \
            and not isinstance(value, bool):
        if isinstance(like, int) and not isinstance(value, int):
            raise UsageError(f"{what} must be an integer, got '{text}'")
        if not math.isfinite(value):
            raise UsageError(f"{what} must be a finite number, got '{text}'")
        return type(like)(value)
    elif isinstance(like, (list, tuple)) and isinstance(value, list):
        return value
    raise UsageError(f"{what} must be of type {type(like).__name__}, got '{text}'")
