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


YAML_MAX_CHARS = 1_000_000  # a task, suite, spec or published file is far smaller
YAML_MAX_DEPTH = 64


class Loader(yaml.SafeLoader):
    """YAML's safe loader that also reads ``1e-3`` and ``5E4`` as floats (YAML 1.1 wants a dot
    in the mantissa and reads them as strings), refuses a key given twice in one mapping, and
    refuses aliases (``*name``: an alias bomb expands exponentially in whoever walks the data),
    and nesting deeper than YAML_MAX_DEPTH."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed",
                                              event.start_mark)
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > YAML_MAX_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nested deeper than "
                                                  f"{YAML_MAX_DEPTH} levels",
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key '{key}' is given twice",
                                                        key_node.start_mark)
            seen.add(key) if isinstance(key, (str, int, float, bool)) else None
        return super().construct_mapping(node, deep)


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def load_yaml_text(text: str) -> Any:
    if len(text) > YAML_MAX_CHARS:
        raise yaml.YAMLError(f"larger than {YAML_MAX_CHARS:,} characters")
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
