"""The command line: a thin layer that parses arguments, calls the library, prints.

Results go to stdout (``--json`` for programs), progress and logs to stderr. Exit status: 0 all
went well, 1 something failed or was rejected, 2 the command line itself was wrong.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import click

from . import __version__
from .config import Config, load_config
from .errors import ConfigError, DigestError
from .http import HttpClient
from .ingest import IngestContext, Source, ingest
from .sources.resolve import FORMATS, FileSource, resolve
from .store import Store
from .types import SourceResult

#: The bundled sample of real papers, so the demo runs without ../shared.
SAMPLE = "sample"


def sample_path() -> str:
    return str(resources.files("digest") / "data" / "sample.jsonl.gz")


@dataclass
class App:
    """What every command shares: configuration, and where the store is."""

    config: Config
    db_url: str
    profiles_dir: str

    def open_store(self) -> Store:
        return Store.open(self.db_url)


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"digest: {message}", err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="digest")
@click.option("--db", "db_url", envvar="DIGEST_DB", metavar="URL",
              help="Database URL [env DIGEST_DB; default from config, else "
                   "sqlite:///out/digest.sqlite].")
@click.option("--config", "config_path", envvar="DIGEST_CONFIG", metavar="FILE",
              help="Configuration file [env DIGEST_CONFIG; default ./digest.toml if present].")
@click.option("--profiles", "profiles_dir", envvar="DIGEST_PROFILES", metavar="DIR",
              help="Folder of profile YAML files [env DIGEST_PROFILES; default from config, "
                   "else ./profiles].")
@click.pass_context
def main(ctx: click.Context, db_url: str | None, config_path: str | None,
         profiles_dir: str | None) -> None:
    """digest: personalized research-paper digests.

    Ingest new papers, rank them against each person's interest profile, and deliver digests.
    """
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        _fail(str(exc))
    ctx.obj = App(config, db_url or config.database, profiles_dir or config.profiles_dir)


@contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    """A progress bar on stderr for large inputs, only when stderr is a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
        TextColumn("{task.fields[papers]} papers"), console=Console(stderr=True), transient=True,
    )
    with progress:
        yield progress


@main.command("ingest")
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)),
              help="Read every SOURCE as this format instead of guessing it.")
@click.option("--date", "day", type=click.DateTime(["%Y-%m-%d"]), metavar="YYYY-MM-DD",
              help="Ingest as if today were this day: a day without year (\"Mar 11\") resolves "
                   "to the latest such day not after it; undated papers are announced on it.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.pass_obj
def ingest_command(app: App, sources: tuple[str, ...], fmt: str | None,
                   day: dt.datetime | None, as_json: bool) -> None:
    """Read new papers from each SOURCE into the store.

    SOURCE is a file (JSON Lines, CSV, a saved Hugging Face papers page, an arXiv feed or API
    response; gzip is read transparently), a URL, or a named source:

    \b
      sample                                the bundled sample of real papers
      arxiv:cs.CV+cs.LG                     today's arXiv announcement (RSS)
      arxiv-api:cs.CV:2026-11-01..2026-11-20  back-fill from the arXiv API
      arxiv-api:id:2104.12255,2111.09886    particular papers from the arXiv API
      hf:2026-11-20                         Hugging Face daily papers of that day

    Each source is stored whole or not at all. Bad records are reported with their line and
    skipped. Exit status 1 when anything was rejected or a source failed.
    """
    now = dt.datetime.now(dt.UTC)
    today = day.date() if day else now.date()
    resolved: list[Source] = []
    for spec in sources:
        try:
            if spec == SAMPLE and not Path(spec).exists():
                resolved.append(FileSource(sample_path(), "jsonl"))
            else:
                resolved.append(resolve(spec, today=today, fmt=fmt))
        except ValueError as exc:
            _fail(str(exc), 2)
    http = HttpClient(contact=app.config.http.contact, timeout=app.config.http.timeout,
                      max_retries=app.config.http.retries)
    try:
        with app.open_store() as store, http, _progress(not as_json) as bar:
            ctx = IngestContext(now=now, today=today, http=http, store=store)
            tasks: dict[str, Any] = {}

            def on_progress(source: Source, papers: int, done: int | None,
                            total: int | None) -> None:
                if bar is None:
                    return
                if source.name not in tasks:
                    tasks[source.name] = bar.add_task(source.name, total=total, papers=0)
                bar.update(tasks[source.name], completed=done or 0, papers=papers)

            results = ingest(store, resolved, ctx, progress=on_progress)
            info = store.info()
    except DigestError as exc:
        _fail(str(exc))
    _print_results(results, as_json, info.papers)
    if any(not r.ok for r in results):
        sys.exit(1)


def _print_results(results: list[SourceResult], as_json: bool, total: int) -> None:
    if as_json:
        click.echo(json.dumps({"sources": [r.as_dict() for r in results],
                               "papers_in_store": total}, ensure_ascii=False))
        return
    for result in results:
        for rejected in result.rejected[:50]:
            click.echo(f"rejected: {rejected}", err=True)
        if len(result.rejected) > 50:
            click.echo(f"rejected: ... and {len(result.rejected) - 50} more in {result.source}",
                       err=True)
        if result.error:
            click.echo(f"failed: {result.source}: {result.error}", err=True)
    width = max([len("source")] + [len(r.source) for r in results])
    click.echo(f"{'source':<{width}}  {'new':>7} {'updated':>7} {'unchanged':>9} "
               f"{'skipped':>7} {'rejected':>8}  status")
    for r in results:
        status = "failed" if r.error else "not modified" if r.not_modified else "ok"
        click.echo(f"{r.source:<{width}}  {r.new:>7} {r.updated:>7} {r.unchanged:>9} "
                   f"{r.skipped:>7} {len(r.rejected):>8}  {status}")
    click.echo(f"{total} papers in the store")


@main.group("profiles")
def profiles_group() -> None:
    """Check profile files."""


@profiles_group.command("check")
@click.argument("paths", nargs=-1, metavar="[PATH...]")
@click.pass_obj
def profiles_check(app: App, paths: tuple[str, ...]) -> None:
    """Validate profiles (default: every profile in the profiles folder).

    Prints each problem as file:line:col: key: what was expected, and warns about seed, liked
    and disliked papers that are not in the store. Exit status 1 if any profile is invalid.
    """
    from .profiles import load_profiles

    found = load_profiles(list(paths) if paths else app.profiles_dir)
    for error in found.errors:
        for problem in error.problems:
            click.echo(problem)
    refs = {ref: p.name for p in found.profiles for ref in _profile_refs(p)}
    if refs and _store_exists(app.db_url):
        try:
            with app.open_store() as store:
                resolved = store.resolve_refs(refs)
        except DigestError as exc:
            _fail(str(exc))
        for ref, paper in resolved.items():
            if paper is None:
                click.echo(f"{found.paths[refs[ref]]}: warning: paper {ref!r} is not in the "
                           "store (ingest it, or check the id)")
    click.echo(f"{len(found.profiles)} valid, {len(found.errors)} invalid", err=True)
    if found.errors:
        sys.exit(1)


def _profile_refs(profile: Any) -> list[str]:
    refs = [*profile.seed_papers, *profile.liked, *profile.disliked]
    for interest in profile.interests:
        refs.extend(interest.seed_papers)
    return refs


def _store_exists(url: str) -> bool:
    from sqlalchemy.engine.url import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return True
    return bool(parsed.database) and Path(str(parsed.database)).exists()


@main.command("feedback")
@click.argument("profile")
@click.argument("paper_id")
@click.option("--like/--dislike", "like", default=None, required=True,
              help="Whether the paper was wanted.")
@click.pass_obj
def feedback_command(app: App, profile: str, paper_id: str, like: bool) -> None:
    """Record that PROFILE liked or disliked PAPER_ID.

    Appends the paper to `liked` or `disliked` in the profile's YAML file, keeping its comments,
    order and formatting; the next ranking reflects it.
    """
    from .profiles import add_feedback, load_profiles

    found = load_profiles(app.profiles_dir)
    path = found.paths.get(profile)
    if path is None:
        known = ", ".join(sorted(found.paths)) or "none"
        _fail(f"no valid profile named {profile!r} in {app.profiles_dir} (profiles: {known})")
        return
    try:
        changed = add_feedback(path, paper_id, like)
    except DigestError as exc:
        _fail(str(exc))
    verb = "liked" if like else "disliked"
    click.echo(f"{path}: {paper_id} {verb}" if changed else
               f"{path}: {paper_id} was already {verb}; nothing changed")


if __name__ == "__main__":  # pragma: no cover
    main()
