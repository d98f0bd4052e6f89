"""Reading and writing profile YAML with ruamel.yaml in round-trip mode.

YAML 1.2 (``no`` stays a string; duplicate keys are an error). The positions ruamel keeps serve
the error messages, and its round trip lets feedback be written back without disturbing the
comments, order and quoting a person chose.
"""

from __future__ import annotations

import codecs
import io
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import ConstructorError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError

from digest.errors import ProfileError

#: Keys holding lists of paper ids: unquoted numbers in them are read as written (see `plain`).
ID_KEYS = frozenset({"seed_papers", "liked", "disliked"})


class _Constructor(RoundTripConstructor):
    """ruamel's round-trip constructor, whose failures on a well-formed value (``2001-02-30``,
    ``!!int abc``, a number of 5,000 digits) become errors with the value's position."""

    def construct_non_recursive_object(self, node: Any, tag: str | None = None) -> Any:
        try:
            return super().construct_non_recursive_object(node, tag)
        except (ValueError, KeyError, TypeError, OverflowError) as exc:
            value = node.value if isinstance(node.value, str) else node.id
            shown = value if len(value) <= 40 else value[:37] + "..."
            kind = str(node.tag).rsplit(":", 1)[-1]  # tag:yaml.org,2002:timestamp
            raise ConstructorError(
                None, None, f"cannot read {shown!r} as {kind}: {exc}", node.start_mark
            ) from exc


def make_yaml() -> YAML:
    yaml = YAML()  # round-trip: keeps comments, order, quoting and positions
    yaml.Constructor = _Constructor
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a long line the person wrote
    return yaml


#: A profile file larger than this is refused before parsing: YAML of that size takes ruamel
#: seconds, and one runaway file (300,000 `avoid` terms) must not stall a run for every profile.
MAX_BYTES = 1_000_000


def read_yaml(path: Path) -> tuple[Any, str]:
    where = str(path)
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise ProfileError(where, [f"{where}:1:1: profile: the file is larger than "
                                       f"{MAX_BYTES:,} bytes; a profile is a page of YAML"])
        text = data.decode("utf-8-sig")  # as is: CRLF files stay CRLF
    except OSError as exc:
        raise ProfileError(
            where, [f"{where}:1:1: profile: cannot read the file ({exc.strerror or exc})"]
        ) from exc
    except UnicodeDecodeError as exc:
        # The decoder counts from after the byte order mark.
        body = data[3:] if data.startswith(codecs.BOM_UTF8) else data
        line, col = line_col_at(body[: exc.start].decode("utf-8", "replace"))
        raise ProfileError(
            where, [f"{where}:{line}:{col}: profile: cannot read the file (not UTF-8 text)"]
        ) from exc
    try:
        return make_yaml().load(text), text
    except MarkedYAMLError as exc:
        raise ProfileError(where, yaml_problems(where, text, exc)) from exc
    except ReaderError as exc:  # a character YAML does not allow, such as a control character
        line, col = line_col_at(text[: exc.position])
        what = f"U+{exc.character:04X}" if isinstance(exc.character, int) else exc.character
        raise ProfileError(
            where, [f"{where}:{line}:{col}: character {what} is not allowed in YAML"]
        ) from exc
    except YAMLError as exc:
        raise ProfileError(where, [f"{where}:1:1: {exc}"]) from exc
    except RecursionError:
        raise ProfileError(
            where, [f"{where}:1:1: profile: lists or mappings are nested too deeply to read"]
        ) from None


def line_col_at(before: str) -> tuple[int, int]:
    """The 1-based line and column just after `before`, the text ahead of a problem."""
    return before.count("\n") + 1, len(before) - before.rfind("\n")


def yaml_problems(where: str, text: str, exc: MarkedYAMLError) -> list[str]:
    """Problems for a file ruamel rejected. Duplicate keys are all listed, each with the line
    of the first occurrence; for a syntax error there is only the parser's one message."""
    if "duplicate key" in str(exc.problem):
        duplicates = duplicate_keys(where, make_yaml().compose(text))
        if duplicates:
            return duplicates
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line, mark.column) if mark else (0, 0)
    what = str(exc.problem or exc.context or exc)
    if exc.context and exc.problem:
        what = f"{exc.problem} ({exc.context})"
    return [f"{where}:{line + 1}:{col + 1}: {what}"]


def duplicate_keys(where: str, node: Any, path: str = "") -> list[str]:
    """Every repeated key in the composed YAML tree (ruamel itself stops at the first)."""
    problems: list[str] = []
    if node is None:
        return problems
    if node.id == "mapping":
        first: dict[Any, int] = {}
        for key, value in node.value:
            label = f"{path}.{key.value}" if path else str(key.value)
            if key.id != "scalar":  # complex keys ([a, b]: ...) are unhashable and never typos
                pass
            elif key.value in first:
                mark = key.start_mark
                problems.append(
                    f"{where}:{mark.line + 1}:{mark.column + 1}: {label}: "
                    f"duplicate key (first at line {first[key.value] + 1})"
                )
            else:
                first[key.value] = key.start_mark.line
            problems += duplicate_keys(where, value, label)
    elif node.id == "sequence":
        for i, item in enumerate(node.value):
            problems += duplicate_keys(where, item, f"{path}[{i}]")
    return problems


def plain(node: Any, lines: list[str], done: dict[int, Any] | None = None) -> Any:
    """ruamel's round-trip types as plain Python, so strict validation sees str, int, dict.

    In lists of paper ids an unquoted arXiv id is read by YAML as a number (2504.13120
    becomes 2504.1312), so those items are taken as written in the file instead. A node an
    alias repeats is converted once (`done`), so that nested aliases, each repeating the one
    before ("billion laughs"), cost their size in the file rather than their expanded size.
    """
    done = {} if done is None else done
    if isinstance(node, dict | list) and id(node) in done:
        return done[id(node)]
    out: Any
    if isinstance(node, dict):
        out = {
            key: [id_text(value, i, lines, done) for i in range(len(value))]
            if key in ID_KEYS and isinstance(value, CommentedSeq)
            else plain(value, lines, done)
            for key, value in node.items()
        }
    elif isinstance(node, list):
        out = [plain(item, lines, done) for item in node]
    else:
        return scalar(node)
    done[id(node)] = out
    return out


def scalar(node: Any) -> Any:
    for kind in (bool, int, float, str):
        if isinstance(node, kind):
            return kind(node)
    return node


def id_text(
    seq: CommentedSeq, index: int, lines: list[str], done: dict[int, Any] | None = None
) -> Any:
    value = seq[index]
    if isinstance(value, int | float) and not isinstance(value, bool):
        line, col = seq.lc.item(index)
        token = re.match(r"[^\s,\[\]{}#]+", lines[line][col:]) if line < len(lines) else None
        return token.group(0) if token else str(value)
    return plain(value, lines, done)


# -- writing ------------------------------------------------------------------------------------

#: Indentation as (mapping, sequence, offset): the common layouts, ruamel's default first.
Layout = tuple[int, int, int]
_LAYOUTS: list[Layout] = [(m, s, o) for m in (2, 4)
                          for s, o in ((2, 0), (4, 2), (4, 0), (3, 1), (6, 4))]


def layout_of(root: Any, original: str) -> Layout:
    """The layout that reproduces `original` from `root`, the tree read from it (call it
    before changing `root`). ruamel does not record indentation, so the common layouts are
    tried in turn; comments and order are kept whichever is chosen."""
    text = original.replace("\r\n", "\n")
    return next((lay for lay in _LAYOUTS if dump_as(root, lay) == text), _LAYOUTS[2])


def dump(root: CommentedMap, original: str, layout: Layout | None = None) -> str:
    """Serialize with the indentation (`layout_of`, unless given) and line endings the file
    already uses."""
    if layout is None:
        layout = layout_of(make_yaml().load(original.replace("\r\n", "\n")), original)
    text = dump_as(root, layout)
    return text.replace("\n", "\r\n") if "\r\n" in original else text


def dump_as(root: Any, layout: tuple[int, int, int]) -> str:
    yaml = make_yaml()
    yaml.indent(mapping=layout[0], sequence=layout[1], offset=layout[2])
    out = io.StringIO()
    yaml.dump(root, out)
    return out.getvalue()


def write_atomically(path: Path, text: str) -> None:
    """Write beside the target and rename over it, so a crash never leaves half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
