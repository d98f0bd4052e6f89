"""What every command shares: one-line failures, profile lookup, terminal-safe text, -v/-q."""

from __future__ import annotations

import logging
import re
import sys
from typing import TYPE_CHECKING, NoReturn

import click

from ..errors import DigestError

if TYPE_CHECKING:
    from ..app import DigestApp
    from ..profiles import Profile

#: Exit status of every command for a profile name that does not exist: like any other wrong
#: argument on the command line.
UNKNOWN_PROFILE = 2

DAY = click.DateTime(["%Y-%m-%d"])


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"digest: {message}", err=True)
    sys.exit(code)


def problem(exc: Exception) -> str:
    """What went wrong, for a person: an OSError as ``path: reason``."""
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return str(exc)


def load_named_profiles(app: DigestApp, names: tuple[str, ...]) -> list[Profile]:
    """The named profiles (all without names); invalid ones are reported on stderr."""
    try:
        found = app.profiles(names)
    except DigestError as exc:
        fail(str(exc), UNKNOWN_PROFILE)
    for error in found.errors:
        for line in error.problems:
            click.echo(f"invalid profile: {line}", err=True)
    return list(found.profiles)


def has_invalid(app: DigestApp, names: tuple[str, ...]) -> bool:
    try:
        return bool(app.profiles(names).errors)
    except DigestError:
        return True


#: C0 and C1 control characters but tab and newline: an escape sequence in a paper's title
#: (``\x1b]0;...\x07\x1b[2J``) must not retitle or clear the reader's terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def safe(text: str) -> str:
    """`text` from a paper, fit to print on a terminal."""
    return _CONTROL.sub("", text)


def _set_verbosity(ctx: click.Context, param: click.Parameter, value: int) -> None:
    if not value:
        return
    root = ctx.find_root().meta
    root[f"digest.{param.name}"] = root.get(f"digest.{param.name}", 0) + value
    level = logging.WARNING - 10 * root.get("digest.verbose", 0) + 10 * root.get("digest.quiet", 0)
    level = min(max(level, logging.DEBUG), logging.CRITICAL)
    logger = logging.getLogger()
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)


def verbosity_options() -> list[click.Option]:
    """-v/-q for a command: more or less logging on stderr (each may be repeated)."""
    return [
        click.Option(["-v", "--verbose"], count=True, expose_value=False, callback=_set_verbosity,
                     help="Log more on stderr (-vv: debug)."),
        click.Option(["-q", "--quiet"], count=True, expose_value=False, callback=_set_verbosity,
                     help="Log only errors on stderr."),
    ]


class Group(click.Group):
    """A group whose every command, and every subgroup's, takes -v/-q."""

    group_class = type  # subgroups made with @group.group are Groups too

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        if not any(p.name == "verbose" for p in cmd.params):
            cmd.params.extend(verbosity_options())
        super().add_command(cmd, name)
