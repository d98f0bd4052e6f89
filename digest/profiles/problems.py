"""Validation errors as a person reads them: ``file:line:col: key: what was expected``."""

from __future__ import annotations

import difflib
import re
from typing import Any

from pydantic_core import ErrorDetails
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from .model import _PATTERN_MEANS, Interest, Profile


def start(node: Any) -> tuple[int, int]:
    lc = getattr(node, "lc", None)
    return (lc.line, lc.col) if lc is not None and lc.line is not None else (0, 0)


def position(root: CommentedMap, loc: tuple[int | str, ...]) -> tuple[int, int]:
    """The 0-based (line, col) of the deepest part of `loc` present in the file: the key for
    a mapping entry, the item for a list entry, the enclosing node for a missing key."""
    position, node = start(root), root
    for part in loc:
        key: Any = part
        if isinstance(node, CommentedMap) and key not in node:
            # pydantic names a key that is not text (a date, null, [a, b]) by its repr.
            key = next((k for k in node if repr(k) == part), part)
        try:
            if isinstance(node, CommentedMap) and key in node:
                position, node = tuple(node.lc.key(key)), node[key]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
                position, node = tuple(node.lc.item(part)), node[part]
            else:
                break
        except (KeyError, IndexError, TypeError):  # merged keys have no position of their own
            break
    return position[0], position[1]


def key_path(loc: tuple[int | str, ...]) -> str:
    if not loc:
        return "profile"
    # The first part is a key of the file's mapping even when it is a number (`1: x`).
    return f"{loc[0]}" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:])


def what(error: ErrorDetails) -> str:
    """What was expected, in the words of the profile format rather than pydantic's."""
    kind, ctx, loc = error["type"], error.get("ctx", {}), error["loc"]
    limits = {
        "less_than_equal": ("<=", "le"),
        "less_than": ("<", "lt"),
        "greater_than": (">", "gt"),
        "greater_than_equal": (">=", "ge"),
    }
    if kind in limits:
        operator, bound = limits[kind]
        return f"must be {operator} {ctx[bound]:g}"
    if kind == "extra_forbidden":
        allowed = Interest.model_fields if loc[:1] == ("interests",) else Profile.model_fields
        close = difflib.get_close_matches(str(loc[-1]), [k for k in allowed if k != "name"], n=1)
        return "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind == "too_long" and "actual_length" in ctx:
        return f"at most {ctx['max_length']} items (this has {ctx['actual_length']})"
    if kind == "string_too_long" and isinstance(error.get("input"), str):
        return f"at most {ctx['max_length']} characters (this has {len(error['input'])})"
    if kind == "string_pattern_mismatch":
        return _PATTERN_MEANS.get(ctx.get("pattern", ""), error["msg"])
    if kind == "literal_error":
        return f"must be {ctx['expected']}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        if loc[:1] == ("interests",):
            return "must be a string or a mapping with name, text, seed_papers, weight"
        return "must be a mapping of keys"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    simple = {
        "missing": "required key is missing",
        "string_type": "must be text (put it in quotes)",
        "string_too_short": "must not be empty",
        "int_type": "must be a whole number",
        "float_type": "must be a number",
        "bool_type": "must be true or false",
        "tuple_type": "must be a list",
        "list_type": "must be a list",
        "invalid_key": "keys must be text",
    }
    return simple.get(kind, str(error["msg"]))


def line_col(problem: str) -> tuple[int, int]:
    match = re.search(r":(\d+):(\d+): ", problem)
    return (int(match[1]), int(match[2])) if match else (0, 0)


# -- writing ------------------------------------------------------------------------------------
