"""Reader profiles: what a person wants in their digest, kept in a YAML file they edit.

A profile is a YAML file named after its owner (``profiles/ada.yaml`` is the profile "ada").
People write these by hand, so every problem in a file is reported at once, each with the
``file:line:col``, the key and what was expected. The file is read with ruamel.yaml in
round-trip mode (YAML 1.2: ``no`` stays a string; duplicate keys are an error) because the same
positions it keeps for error messages let `add_feedback` write a liked paper back without
disturbing the comments, order and quoting the person chose.
"""

from __future__ import annotations

import codecs
import difflib
import io
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import ConstructorError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scalarstring import ScalarString

from digest.cron import check_timezone, parse_cron
from digest.errors import ProfileError
from digest.text import parse_arxiv_id

__all__ = [
    "Interest",
    "Profile",
    "ProfileSet",
    "add_feedback",
    "load_profile",
    "load_profiles",
    "profile_json_schema",
    "write_schema",
]

_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s.]+$"
_CATEGORY = r"^[A-Za-z][A-Za-z-]*(\.[A-Za-z][A-Za-z-]*)?$"
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
#: What a pattern that did not match means, in words a person can act on.
_PATTERN_MEANS = {
    _EMAIL: "must be an email address like ada@example.org",
    _CATEGORY: "must be an arXiv category like cs.CV",
    _NAME: "the file name must be letters, digits, '_', '.' or '-' (it names the profile)",
}
#: Keys holding lists of paper ids: unquoted numbers in them are read as written (see `_plain`).
_ID_KEYS = frozenset({"seed_papers", "liked", "disliked"})

#: A non-empty string; YAML numbers and booleans are not silently turned into text.
_Text = Annotated[str, Strict(), StringConstraints(strip_whitespace=True, min_length=1)]
#: A paper as a person names it: an arXiv id, another id the store knows, or an exact title.
PaperRef = _Text
Format = Literal["email", "markdown", "rss"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Interest(_Frozen):
    """One topic a person follows. In YAML a bare string is an interest named and described
    by that string."""

    name: _Text = Field(description="Short label, shown in the digest next to the papers it found.")
    text: Annotated[str, Strict()] = Field(
        "",
        description="The topic in plain words; papers are ranked by similarity to it.",
    )
    seed_papers: tuple[PaperRef, ...] = Field(
        (),
        description="Papers that typify the topic: arXiv ids, other ids or exact titles.",
    )
    weight: Annotated[float, Strict()] = Field(
        1.0,
        gt=0,
        le=5,
        description="How much this topic counts against the others (above 0, at most 5): "
        "its papers count as that many times rarer (relevance + log10(weight)).",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_bare_string(cls, data: Any) -> Any:
        return {"name": data, "text": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _has_substance(self) -> Interest:
        if not self.text.strip() and not self.seed_papers:
            raise ValueError("an interest needs text or seed_papers to say what it is about")
        return self


#: The default threshold: the top 2% of the corpus for an interest (docs/evaluation.md chose it:
#: seed-only profiles get a digest on most days, keyword profiles are not flooded).
DEFAULT_MIN_RELEVANCE = 1.7
#: What a profile that still sets the old raw-cosine key is told (rank, run, explain, check).
MIN_SCORE_DEPRECATED = (
    "min_score is no longer used: a raw cosine means different things for different interests "
    "(0.1 left seed-only profiles with empty digests). Use min_relevance (on one scale for "
    "every interest: 2 = the top 1% of papers, 3 = the top 0.1%); this profile uses "
    "min_relevance {relevance:g}"
)


class Profile(_Frozen):
    """What one person wants in their digest, and when and how they want it."""

    version: Literal[1] = Field(description="Format version of the profile file; always 1.")
    name: Annotated[str, StringConstraints(pattern=_NAME)] = Field(
        description="The profile's name: its file name without extension (not a YAML key).",
    )
    email: Annotated[str, Strict(), StringConstraints(pattern=_EMAIL)] | None = Field(
        None,
        description="Address the email digest goes to; without it no email is sent.",
    )
    timezone: Annotated[str, Strict()] = Field(
        "UTC",
        description="IANA time zone (e.g. Europe/Berlin) in which the schedule is read.",
    )
    schedule: Annotated[str, Strict()] = Field(
        "0 7 * * *",
        description="When to send, as standard 5-field cron (minute hour day month weekday); "
        "0 and 7 are Sunday, names like mon-fri work.",
    )
    formats: tuple[Format, ...] = Field(
        ("email", "markdown", "rss"),
        description="Digests to produce: email, markdown, rss.",
    )
    max_papers: Annotated[int, Strict()] = Field(
        12, ge=1, le=200, description="At most this many papers per digest."
    )
    min_relevance: Annotated[float, Strict()] = Field(
        DEFAULT_MIN_RELEVANCE, ge=0, le=10,
        description="Papers less relevant than this are left out. Relevance is on the same "
        "scale for every interest: 2 means as relevant as the top 1% of all papers for that "
        "interest, 3 the top 0.1% (relevance = -log10 of that share).",
    )
    min_score: Annotated[float, Strict()] | None = Field(
        None, ge=0, le=1,
        description="Deprecated and ignored (a raw cosine meant different things for "
        "different interests): use min_relevance. A profile that sets it gets a warning.",
    )
    interests: tuple[Interest, ...] = Field(
        (),
        description="Topics followed: a string, or a mapping with name, text, "
        "seed_papers and weight.",
    )
    seed_papers: tuple[PaperRef, ...] = Field(
        (),
        description="Papers typical of the person's interests as a whole: arXiv ids, other ids "
        "or exact titles.",
    )
    liked: tuple[PaperRef, ...] = Field(
        (), description="Papers marked as good in past digests (digest appends to this)."
    )
    disliked: tuple[PaperRef, ...] = Field(
        (), description="Papers marked as not wanted (digest appends to this)."
    )
    avoid: tuple[_Text, ...] = Field(
        (), description="Words or phrases that push a paper down the ranking."
    )
    authors: tuple[_Text, ...] = Field(
        (), description="Authors whose new papers are always wanted (ranked first, past "
        "min_relevance), as named on arXiv."
    )
    categories: tuple[Annotated[str, Strict(), StringConstraints(pattern=_CATEGORY)], ...] = Field(
        (), description="arXiv categories to draw from (e.g. cs.CV); empty means all."
    )
    send_empty: Annotated[bool, Strict()] = Field(
        False,
        description='Send a short "nothing new" note when no paper qualifies, instead of nothing.',
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return check_timezone(value)

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        parse_cron(value)  # its ValueError says what is wrong
        return value

    @field_validator("formats")
    @classmethod
    def _email_needs_address(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        # Only runs when formats is written out: the default quietly skips email without one.
        if "email" in value and "email" in info.data and info.data["email"] is None:
            raise ValueError("'email' needs an email address: set `email` or drop 'email' here")
        return value

    @field_validator("interests")
    @classmethod
    def _distinct_names(cls, value: tuple[Interest, ...]) -> tuple[Interest, ...]:
        seen: set[str] = set()
        for interest in value:
            if interest.name.casefold() in seen:
                raise ValueError(f"two interests are named {interest.name!r}")
            seen.add(interest.name.casefold())
        return value

    @field_validator("disliked")
    @classmethod
    def _not_also_liked(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        liked = {_paper_key(p) for p in info.data.get("liked", ())}
        both = [p for p in value if _paper_key(p) in liked]
        if both:
            raise ValueError(f"{both[0]!r} is in both liked and disliked")
        return value

    @model_validator(mode="after")
    def _has_something_to_rank_by(self) -> Profile:
        if not (self.interests or self.seed_papers or self.liked):
            raise ValueError(
                "nothing to rank papers by: add at least one of interests, seed_papers, liked"
            )
        return self


@dataclass(frozen=True, slots=True)
class ProfileSet:
    """The profiles of a directory: the good ones, and an error for each bad file."""

    profiles: tuple[Profile, ...] = ()
    errors: tuple[ProfileError, ...] = ()
    #: The file each good profile came from, by profile name (for `add_feedback`).
    paths: Mapping[str, Path] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def get(self, name: str) -> Profile | None:
        return next((p for p in self.profiles if p.name == name), None)


def load_profile(path: str | os.PathLike[str]) -> Profile:
    """Read and validate one profile; its name is the file name without extension.

    Raises ProfileError listing every problem in the file as ``file:line:col: key: what``.
    """
    path = Path(path)
    root, text = _read_yaml(path)
    where = str(path)
    if root is None:
        raise ProfileError(
            where, [f"{where}:1:1: profile: the file has no keys; start with 'version: 1'"]
        )
    if not isinstance(root, CommentedMap):
        line, col = _start(root)
        raise ProfileError(
            where, [f"{where}:{line + 1}:{col + 1}: profile: must be a mapping of keys"]
        )
    data = _plain(root, text.splitlines())
    problems: list[str] = []
    if "name" in data:
        line, col = root.lc.key("name")
        problems.append(
            f"{where}:{line + 1}:{col + 1}: name: not a key here; "
            f"the profile is named after its file ({path.stem!r})"
        )
        del data["name"]
    try:
        profile = Profile.model_validate({**data, "name": path.stem})
    except ValidationError as exc:
        for error in exc.errors():
            line, col = _position(root, error["loc"])
            problems.append(
                f"{where}:{line + 1}:{col + 1}: {_key_path(error['loc'])}: {_what(error)}"
            )
    if problems:
        problems.sort(key=_line_col)
        raise ProfileError(where, problems)
    return profile


def load_profiles(
    source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
) -> ProfileSet:
    """Load every ``*.yaml``/``*.yml`` of a directory (sorted), or the files given.

    One bad file never stops the others: its ProfileError is in `errors`, the rest are loaded.
    Two files naming the same profile (``ada.yaml`` and ``ada.yml``) are an error for the second.
    """
    if isinstance(source, str | os.PathLike):
        source = Path(source)
        if source.is_dir():
            paths = sorted(
                p
                for p in source.iterdir()
                if p.suffix in (".yaml", ".yml") and not p.name.startswith(".") and p.is_file()
            )
        else:
            paths = [source]
    else:
        paths = [Path(p) for p in source]
    profiles: list[Profile] = []
    errors: list[ProfileError] = []
    found: dict[str, Path] = {}
    for path in paths:
        try:
            profile = load_profile(path)
        except ProfileError as exc:
            errors.append(exc)
            continue
        if profile.name in found:
            problem = f"{path}:1:1: profile: {found[profile.name]} already defines {profile.name!r}"
            errors.append(ProfileError(str(path), [problem]))
            continue
        found[profile.name] = path
        profiles.append(profile)
    return ProfileSet(tuple(profiles), tuple(errors), found)


def add_feedback(path: str | os.PathLike[str], paper_id: str, like: bool) -> bool:
    """Record that the person liked (or disliked) a paper, in their profile file.

    Appends `paper_id` to ``liked`` (or ``disliked``), creating the key if need be, and
    removes it from the other list. Comments, key order, quoting and indentation are kept;
    the file is replaced atomically. Returns False, writing nothing, if it was already there.
    The file must be valid YAML with a mapping at the top; other problems do not block feedback.
    """
    paper_id = paper_id.strip()
    if not paper_id:
        raise ValueError("paper_id is empty")
    path = Path(path)
    root, text = _read_yaml(path)
    if not isinstance(root, CommentedMap):
        raise ProfileError(str(path), [f"{path}:1:1: profile: must be a mapping of keys"])
    lines = text.splitlines()
    target, other = ("liked", "disliked") if like else ("disliked", "liked")
    for key in (target, other):
        if root.get(key) is not None and not isinstance(root[key], CommentedSeq):
            line, col = root.lc.key(key)
            raise ProfileError(str(path), [f"{path}:{line + 1}:{col + 1}: {key}: must be a list"])

    wanted = _paper_key(paper_id)
    changed = False
    if isinstance(root.get(other), CommentedSeq):
        seq = root[other]
        for i in reversed(range(len(seq))):
            if _paper_key(_id_text(seq, i, lines)) == wanted:
                _delete_keeping_comments(root, other, i)
                changed = True
    seq = root.get(target)
    if not isinstance(seq, CommentedSeq):
        seq = root[target] = CommentedSeq()
    if all(_paper_key(_id_text(seq, i, lines)) != wanted for i in range(len(seq))):
        _append_keeping_comments(seq, _styled_like(paper_id, seq, root.get(other)))
        changed = True
    if changed:
        _write_atomically(path, _dump(root, text))
    return changed


def profile_json_schema() -> dict[str, Any]:
    """JSON Schema of a profile *file*, for editors (yaml-language-server) to check as people type.

    It is the model's schema less `name` (which comes from the file name), with bare strings
    allowed as interests.
    """
    schema = Profile.model_json_schema()
    schema["properties"].pop("name")
    schema["required"].remove("name")
    schema["properties"]["interests"]["items"] = {
        "anyOf": [
            {"$ref": "#/$defs/Interest"},
            {"type": "string", "minLength": 1, "description": "Name and text of an interest."},
        ]
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "digest profile",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def write_schema(path: str | os.PathLike[str]) -> Path:
    """Write `profile_json_schema` to `path` (conventionally ``profiles/profile.schema.json``)."""
    path = Path(path)
    text = json.dumps(profile_json_schema(), indent=2, ensure_ascii=False) + "\n"
    _write_atomically(path, text)
    return path


# -- reading ------------------------------------------------------------------------------------


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


def _yaml() -> YAML:
    yaml = YAML()  # round-trip: keeps comments, order, quoting and positions
    yaml.Constructor = _Constructor
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a long line the person wrote
    return yaml


def _read_yaml(path: Path) -> tuple[Any, str]:
    where = str(path)
    try:
        data = path.read_bytes()
        text = data.decode("utf-8-sig")  # as is: CRLF files stay CRLF
    except OSError as exc:
        raise ProfileError(
            where, [f"{where}:1:1: profile: cannot read the file ({exc.strerror or exc})"]
        ) from exc
    except UnicodeDecodeError as exc:
        # The decoder counts from after the byte order mark.
        body = data[3:] if data.startswith(codecs.BOM_UTF8) else data
        line, col = _line_col_at(body[: exc.start].decode("utf-8", "replace"))
        raise ProfileError(
            where, [f"{where}:{line}:{col}: profile: cannot read the file (not UTF-8 text)"]
        ) from exc
    try:
        return _yaml().load(text), text
    except MarkedYAMLError as exc:
        raise ProfileError(where, _yaml_problems(where, text, exc)) from exc
    except ReaderError as exc:  # a character YAML does not allow, such as a control character
        line, col = _line_col_at(text[: exc.position])
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


def _line_col_at(before: str) -> tuple[int, int]:
    """The 1-based line and column just after `before`, the text ahead of a problem."""
    return before.count("\n") + 1, len(before) - before.rfind("\n")


def _yaml_problems(where: str, text: str, exc: MarkedYAMLError) -> list[str]:
    """Problems for a file ruamel rejected. Duplicate keys are all listed, each with the line
    of the first occurrence; for a syntax error there is only the parser's one message."""
    if "duplicate key" in str(exc.problem):
        duplicates = _duplicate_keys(where, _yaml().compose(text))
        if duplicates:
            return duplicates
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line, mark.column) if mark else (0, 0)
    what = str(exc.problem or exc.context or exc)
    if exc.context and exc.problem:
        what = f"{exc.problem} ({exc.context})"
    return [f"{where}:{line + 1}:{col + 1}: {what}"]


def _duplicate_keys(where: str, node: Any, path: str = "") -> list[str]:
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
            problems += _duplicate_keys(where, value, label)
    elif node.id == "sequence":
        for i, item in enumerate(node.value):
            problems += _duplicate_keys(where, item, f"{path}[{i}]")
    return problems


def _plain(node: Any, lines: list[str], done: dict[int, Any] | None = None) -> Any:
    """ruamel's round-trip types as plain Python, so strict validation sees str, int, dict.

    In lists of paper ids an unquoted arXiv id is read by YAML as a number (2504.13120
    becomes 2504.1312), so those items are taken as written in the file instead. A node an
    alias repeats is converted once (`done`), so that nested aliases, each repeating the one
    before ("billion laughs"), cost their size in the file rather than their expanded size.
    """
    done = {} if done is None else done
    if isinstance(node, dict | list) and id(node) in done:
        return done[id(node)]
    plain: Any
    if isinstance(node, dict):
        plain = {
            key: [_id_text(value, i, lines, done) for i in range(len(value))]
            if key in _ID_KEYS and isinstance(value, CommentedSeq)
            else _plain(value, lines, done)
            for key, value in node.items()
        }
    elif isinstance(node, list):
        plain = [_plain(item, lines, done) for item in node]
    else:
        return _scalar(node)
    done[id(node)] = plain
    return plain


def _scalar(node: Any) -> Any:
    for kind in (bool, int, float, str):
        if isinstance(node, kind):
            return kind(node)
    return node


def _id_text(
    seq: CommentedSeq, index: int, lines: list[str], done: dict[int, Any] | None = None
) -> Any:
    value = seq[index]
    if isinstance(value, int | float) and not isinstance(value, bool):
        line, col = seq.lc.item(index)
        token = re.match(r"[^\s,\[\]{}#]+", lines[line][col:]) if line < len(lines) else None
        return token.group(0) if token else str(value)
    return _plain(value, lines, done)


# -- explaining ---------------------------------------------------------------------------------


def _start(node: Any) -> tuple[int, int]:
    lc = getattr(node, "lc", None)
    return (lc.line, lc.col) if lc is not None and lc.line is not None else (0, 0)


def _position(root: CommentedMap, loc: tuple[int | str, ...]) -> tuple[int, int]:
    """The 0-based (line, col) of the deepest part of `loc` present in the file: the key for
    a mapping entry, the item for a list entry, the enclosing node for a missing key."""
    position, node = _start(root), root
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


def _key_path(loc: tuple[int | str, ...]) -> str:
    if not loc:
        return "profile"
    # The first part is a key of the file's mapping even when it is a number (`1: x`).
    return f"{loc[0]}" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:])


def _what(error: ErrorDetails) -> str:
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


def _line_col(problem: str) -> tuple[int, int]:
    match = re.search(r":(\d+):(\d+): ", problem)
    return (int(match[1]), int(match[2])) if match else (0, 0)


# -- writing ------------------------------------------------------------------------------------


def _paper_key(ref: Any) -> str:
    """What makes two references the same paper here: arXiv ids match without version or
    prefix; anything else (other ids, titles) must match exactly."""
    text = str(ref).strip()
    parsed = parse_arxiv_id(text)
    return parsed[0] if parsed else text


def _styled_like(paper_id: str, *seqs: Any) -> Any:
    """`paper_id` quoted the way the list's existing items are (or the other list's)."""
    for seq in seqs:
        if isinstance(seq, CommentedSeq):
            for item in reversed(seq):
                if isinstance(item, ScalarString):
                    return type(item)(paper_id)
                if isinstance(item, str):
                    return paper_id
    return paper_id


def _append_keeping_comments(seq: CommentedSeq, value: Any) -> None:
    """Append, keeping the comment block below the list below it.

    ruamel stores the blank lines and comments that follow a list (often the heading of the
    next key) on its last item; appended naively, the new item would land under them.
    """
    last = len(seq) - 1
    seq.append(value)
    entry = seq.ca.items.get(last)
    if last < 0 or not entry or entry[0] is None:
        return
    token = entry[0]
    eol, newline, below = token.value.partition("\n")
    if not below:  # only an end-of-line comment: it stays with its item
        return
    moved = type(token)(newline + below, token.start_mark, token.end_mark, column=0)
    seq.ca.items[last + 1] = [moved, None, None, None]
    if eol.strip():
        token.value = eol + "\n"
    else:
        del seq.ca.items[last]


def _delete_keeping_comments(root: CommentedMap, key: str, index: int) -> None:
    """Delete an item, keeping the comment block below the list (see above) in place."""
    seq = root[key]
    entry = seq.ca.items.get(index) if index == len(seq) - 1 else None
    del seq[index]
    if not entry or entry[0] is None:
        return
    token = entry[0]
    below = token.value.partition("\n")[2]
    if not below:
        return
    if seq:
        previous = seq.ca.items.get(index - 1)
        if previous and previous[0] is not None:
            previous[0].value += below  # after the item's own end-of-line comment
        else:
            moved = type(token)("\n" + below, token.start_mark, token.end_mark, column=0)
            seq.ca.items[index - 1] = [moved, None, None, None]
    else:
        # An empty block list has nowhere to hang comments: write it as [] and hang them on
        # the key, which ruamel prints after the value.
        seq.fa.set_flow_style()
        moved = type(token)("\n" + below, token.start_mark, token.end_mark, column=0)
        slots = root.ca.items.setdefault(key, [None, None, None, None])
        slots[2] = moved


def _dump(root: CommentedMap, original: str) -> str:
    """Serialize with the indentation and line endings the file already uses.

    ruamel does not record indentation, so try the common layouts and keep the first one that
    reproduces the untouched file; comments and order are kept in any case.
    """
    crlf = "\r\n" in original
    original = original.replace("\r\n", "\n")
    unchanged = _yaml().load(original)
    layouts = [(m, s, o) for m in (2, 4) for s, o in ((2, 0), (4, 2), (4, 0), (3, 1), (6, 4))]
    layout = next((lay for lay in layouts if _dump_as(unchanged, lay) == original), layouts[2])
    text = _dump_as(root, layout)
    return text.replace("\n", "\r\n") if crlf else text


def _dump_as(root: Any, layout: tuple[int, int, int]) -> str:
    yaml = _yaml()
    yaml.indent(mapping=layout[0], sequence=layout[1], offset=layout[2])
    out = io.StringIO()
    yaml.dump(root, out)
    return out.getvalue()


def _write_atomically(path: Path, text: str) -> None:
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
