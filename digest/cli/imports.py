"""`digest profiles import`: seed papers from a researcher's own library."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import DigestError
from .common import fail
from .profiles import profiles_group

if TYPE_CHECKING:
    from ..app import DigestApp
    from ..imports import Reference


@profiles_group.command("import")
@click.argument("profile")
@click.argument("files", nargs=-1, metavar="[FILE...]")
@click.option("--format", "fmt", type=click.Choice(["bibtex", "ris", "csl-json"]),
              help="Read every FILE as this format instead of going by its suffix "
                   "(.bib, .ris, .json).")
@click.option("--zotero", "zotero", metavar="user:ID|group:ID",
              help="A Zotero library through its web API; the API key is read from "
                   "$ZOTERO_API_KEY (not needed for a public library).")
@click.option("--zotero-collection", metavar="KEY", help="Only this collection of --zotero.")
@click.option("--arxiv-author", "authors", multiple=True, metavar="NAME",
              help="An arXiv author's latest papers (repeatable), as arXiv spells the name.")
@click.option("--max-per-author", type=click.IntRange(1, 500), default=50, show_default=True,
              help="Papers taken per --arxiv-author.")
@click.option("--no-fetch", is_flag=True,
              help="Do not fetch missing papers from the arXiv API; skip them.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.pass_obj
def import_command(app: DigestApp, profile: str, files: tuple[str, ...], fmt: str | None,
                   zotero: str | None, zotero_collection: str | None,
                   authors: tuple[str, ...], max_per_author: int, no_fetch: bool,
                   as_json: bool) -> None:
    """Add seed papers to PROFILE from BibTeX, RIS or CSL-JSON exports, a Zotero library or
    arXiv authors.

    Entries become seeds by arXiv id when they have one (eprint, an arXiv URL, a 10.48550
    DOI), else by title. Papers not in the store are fetched from the arXiv API by id. The
    profile (profiles/PROFILE.yaml) is created with an `id` if it does not exist; otherwise
    its seed_papers grow, keeping its comments. Reports what was matched, fetched and
    skipped; exit status 1 if nothing could be imported.
    """
    from ..imports import import_seeds, read_file
    from ..imports.seeds import author_references
    from ..profiles import add_seed_papers

    if not (files or zotero or authors):
        raise click.UsageError("give FILEs, --zotero or --arxiv-author")
    path = _profile_path(app, profile)
    refs: list[Reference] = []
    problems: list[str] = []
    try:
        for name in files:
            found, bad = read_file(name, fmt)
            refs += found
            problems += bad
        if zotero:
            refs += _zotero(zotero, zotero_collection)
        today = app.clock().date()
        for author in authors:
            found, bad = author_references(app, author, max_results=max_per_author,
                                           today=today)
            refs += found
            problems += bad
        report = import_seeds(app, refs, fetch=not no_fetch)
        report.skipped[:0] = problems
        report.path = path
        keys = report.matched + report.fetched
        report.added = add_seed_papers(path, keys) if keys else []
    except DigestError as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False))
    else:
        for line in report.skipped:
            click.echo(f"skipped: {line}", err=True)
        click.echo(f"{path}: {len(report.matched)} matched, {len(report.fetched)} fetched "
                   f"from arXiv, {len(report.skipped)} skipped; {len(report.added)} new seed "
                   "papers")
    if not report.matched and not report.fetched:
        sys.exit(1)


def _profile_path(app: DigestApp, name: str) -> Path:
    """The file of profile `name` (by id or file name), or the file a new one gets."""
    from ..profiles import load_profiles

    found = load_profiles(app.profiles_dir)
    if name in found.paths:
        return found.paths[name]
    by_file = {path.stem: path for path in found.paths.values()}
    if name in by_file:
        return by_file[name]
    path = Path(app.profiles_dir) / f"{name}.yaml"
    if path.exists():  # there, but invalid: say why rather than write into it blindly
        problems = [p for e in found.errors if Path(e.path) == path for p in e.problems]
        fail("\n".join(problems) or f"{path}: invalid profile")
    import re

    from ..profiles.model import _NAME

    if not re.match(_NAME, name):
        fail(f"{name!r} cannot name a profile: use letters, digits, '_', '.', '-'", 2)
    Path(app.profiles_dir).mkdir(parents=True, exist_ok=True)
    return path


def _zotero(spec: str, collection: str | None) -> list[Reference]:
    from ..imports.zotero import read_zotero

    kind, sep, library = spec.partition(":")
    if not sep or kind not in ("user", "group") or not library.strip():
        raise click.BadParameter("expected user:ID or group:ID", param_hint="--zotero")
    return read_zotero(library.strip(), kind, os.environ.get("ZOTERO_API_KEY") or None,
                       collection=collection)
