"""From references to seed papers: match against the store, fetch what arXiv has by id,
write the result into a profile.

A reference with an arXiv id that the store lacks is fetched from the arXiv API (one polite
request per 100 ids, through the app's HTTP client) instead of only being warned about; one
without an id is matched by its title (normalized as the store compares titles). What
matches nothing is skipped, and said.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..ingest import IngestContext, Opened
from ..sources import arxiv
from ..sources.resolve import ArxivApiSource
from ..text import parse_arxiv_id
from ..types import RawPaper

if TYPE_CHECKING:
    from ..app import DigestApp
    from .refs import Reference

#: Ids asked of the arXiv API per request.
_BATCH = 100


@dataclass
class ImportReport:
    """What an import did: papers matched in the store, fetched from arXiv, and skipped."""

    matched: list[str] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "where: why"
    added: list[str] = field(default_factory=list)  # seeds new to the profile
    path: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"profile": str(self.path) if self.path else None, "matched": self.matched,
                "fetched": self.fetched, "skipped": self.skipped, "added": self.added}


@dataclass
class _Recording:
    """A source that remembers the ids of the papers it yields."""

    inner: ArxivApiSource
    ids: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def kind(self) -> str:
        return self.inner.kind

    def open(self, ctx: IngestContext) -> Opened:
        opened = self.inner.open(ctx)
        return Opened(self._watch(opened.items))

    def _watch(self, items: Any) -> Iterator[Any]:
        for item in items:
            if isinstance(item, RawPaper) and item.id:
                found = parse_arxiv_id(item.id)
                self.ids.append(found[0] if found else item.id)
            yield item


def _fetch(app: DigestApp, query: arxiv.ApiQuery, name: str,
           today: dt.date) -> tuple[list[str], str | None]:
    """Ingest the papers of an arXiv API query; their ids, and the error if it failed."""
    source = _Recording(ArxivApiSource(name, arxiv.ApiSpec(query)))
    (result,) = app.ingest([source], today=today)
    return source.ids, result.error


def author_references(app: DigestApp, author: str, *, max_results: int = 50,
                      today: dt.date) -> tuple[list[Reference], list[str]]:
    """An arXiv author's latest papers (an ``au:`` query), ingested, as references."""
    from .refs import Reference

    name = author.strip().replace('"', "")
    query = arxiv.ApiQuery(search_query=f'au:"{name}"', max_results=max_results,
                           page_size=min(max_results, 100), sort_by="submittedDate")
    ids, error = _fetch(app, query, f"arxiv-api:au:{name}", today)
    problems = [f"arxiv author {name!r}: {error}"] if error else []
    if not ids and not error:
        problems.append(f"arxiv author {name!r}: no papers found (arXiv spells names as "
                        "'First Last')")
    return [Reference(f"arxiv author {name!r}", i, None) for i in ids], problems


def import_seeds(app: DigestApp, refs: Sequence[Reference], *, fetch: bool = True,
                 today: dt.date | None = None) -> ImportReport:
    """Match `refs` to papers in the store, fetching missing arXiv ids when `fetch`."""
    today = today or app.clock().date()
    report = ImportReport()
    wanted = [r for r in refs if r.ref]
    report.skipped += [f"{r.where}: no arXiv id and no title" for r in refs if not r.ref]
    with app.open_store() as store:
        found = store.find_refs(dict.fromkeys(r.ref for r in wanted if r.ref))
    missing = sorted({r.arxiv_id for r in wanted if r.arxiv_id and found.get(r.arxiv_id) is None})
    fetched: set[str] = set()
    if missing and fetch:
        for start in range(0, len(missing), _BATCH):
            batch = tuple(missing[start:start + _BATCH])
            ids, error = _fetch(app, arxiv.ApiQuery(id_list=batch), "arxiv-api:id:" +
                                ",".join(batch[:3]) + ("..." if len(batch) > 3 else ""), today)
            fetched.update(ids)
            if error:
                report.skipped.append(f"fetching {len(batch)} papers from arXiv: {error}")
        with app.open_store() as store:
            found.update(store.find_refs(missing))
    seen: set[str] = set()
    for ref in wanted:
        paper = found.get(ref.ref or "")
        if paper is None:
            why = ("not in the store, and not found on arXiv" if ref.arxiv_id and fetch
                   else "not in the store (fetching is off)" if ref.arxiv_id
                   else "no arXiv id, and no paper with this title in the store")
            report.skipped.append(f"{ref.where}: {ref.ref}: {why}")
            continue
        if paper.key in seen:
            continue
        seen.add(paper.key)
        (report.fetched if ref.arxiv_id in fetched else report.matched).append(paper.key)
    return report
