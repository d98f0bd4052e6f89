"""`digest ingest`: read new papers into the store."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from ..errors import DigestError
from ..sources.resolve import FORMATS, resolve
from .common import fail
from .group import main

if TYPE_CHECKING:
    from ..app import DigestApp
    from ..ingest import Source
    from ..types import SourceResult


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
def ingest_command(app: DigestApp, sources: tuple[str, ...], fmt: str | None,
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
    today = day.date() if day else app.clock().date()
    resolved: list[Source] = []
    for spec in sources:
        try:
            resolved.append(resolve(spec, today=today, fmt=fmt))
        except ValueError as exc:
            fail(str(exc), 2)
    try:
        with _progress(not as_json) as bar:
            tasks: dict[str, Any] = {}

            def on_progress(source: Source, papers: int, done: int | None,
                            total: int | None) -> None:
                if bar is None:
                    return
                if source.name not in tasks:
                    tasks[source.name] = bar.add_task(source.name, total=total, papers=0)
                bar.update(tasks[source.name], completed=done or 0, papers=papers)

            results = app.ingest(resolved, today=today, progress=on_progress)
        with app.open_store() as store:
            info = store.info()
    except DigestError as exc:
        fail(str(exc))
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

