"""Plain data types for the nouns of digest.

`RawPaper` is what a source parsed; `Paper` is what the store holds. They are kept apart on
purpose: a source knows nothing of identity, merging or first-seen times.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RawPaper:
    """One paper as a source parsed it, before it meets the store."""

    #: Title as the source gave it (may hold LaTeX and hard line breaks).
    title: str
    #: Abstract as the source gave it; empty for title-only records.
    abstract: str = ""
    #: Identifier as given: an arXiv id (with or without version, ``arXiv:`` prefix or URL)
    #: or any other id, kept exactly; None when the source has no ids (saved HF pages).
    id: str | None = None
    authors: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    #: Day the paper was announced (arXiv listing day, HF featured day); None if unknown.
    date: dt.date | None = None
    url: str | None = None
    #: True for arXiv ``replace``/``replace-cross`` items: they update a paper already stored
    #: and never create one.
    update_only: bool = False


@dataclass(frozen=True, slots=True)
class Rejected:
    """An item a parser could not read; the rest of its source is still read."""

    #: Where the item is: ``path:line`` or ``url entry N``.
    where: str
    #: What was wrong and what was expected.
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


#: What a parser yields, in input order.
ParsedItem = RawPaper | Rejected


@dataclass(frozen=True, slots=True)
class Paper:
    """A paper as the store holds it."""

    #: Internal row id; stable across merges, used by the ledger.
    pid: int
    #: Public identity: arXiv id without version, another source's id as given,
    #: or ``title:<hash>`` for papers known only by title.
    key: str
    #: Clean title and abstract (LaTeX as Unicode, white space collapsed).
    title: str
    abstract: str
    authors: tuple[str, ...]
    categories: tuple[str, ...]
    #: Day of first announcement.
    announced: dt.date | None
    #: When this store first saw the paper (UTC); never changes after insertion.
    first_seen: dt.datetime
    url: str | None
    #: Latest arXiv version seen (None if not an arXiv paper or unknown).
    version: int | None = None
    arxiv_id: str | None = None
    #: Raw title and abstract as last received.
    title_raw: str = ""
    abstract_raw: str = ""
    #: Source kinds the paper came from (``arxiv-rss``, ``hf-page``, ``jsonl`` ...).
    sources: tuple[str, ...] = field(default=())

    @property
    def abs_url(self) -> str | None:
        """The abstract page without version (stable, for links and feed guids)."""
        if self.arxiv_id:
            return f"https://arxiv.org/abs/{self.arxiv_id}"
        return self.url


@dataclass(slots=True)
class SourceResult:
    """What ingesting one source did. `error` is set when the whole source failed."""

    source: str
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    #: Items read but not stored on purpose (e.g. a replacement of a paper we never saw).
    skipped: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    error: str | None = None
    #: True when the server answered 304 Not Modified (nothing was read).
    not_modified: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.rejected

    def as_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "new": self.new,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "rejected": len(self.rejected),
            "rejections": [str(r) for r in self.rejected],
            "error": self.error,
            "not_modified": self.not_modified,
        }


@dataclass(frozen=True, slots=True)
class Why:
    """Why a paper was recommended to a profile (or, from `explain`, why not)."""

    #: Name of the interest the paper matched best (``seed papers`` for profile-level seeds).
    interest: str
    #: Similarity to that interest before boosts and penalties, 0..1.
    similarity: float
    #: Terms that contributed most to the similarity, best first.
    terms: tuple[str, ...] = ()
    #: Followed authors of the profile who wrote the paper.
    authors: tuple[str, ...] = ()
    #: The most similar seed or liked paper: its key and title, and the similarity.
    seed_key: str | None = None
    seed_title: str | None = None
    seed_similarity: float | None = None
    #: Avoided terms or disliked papers that pushed the paper down.
    penalties: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "interest": self.interest,
            "similarity": round(self.similarity, 4),
            "terms": list(self.terms),
            "authors": list(self.authors),
            "seed": None if self.seed_key is None else {
                "id": self.seed_key, "title": self.seed_title,
                "similarity": None if self.seed_similarity is None
                else round(self.seed_similarity, 4),
            },
            "penalties": list(self.penalties),
        }


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One paper chosen for one profile, with its final score and the reasons."""

    paper: Paper
    score: float
    why: Why


@dataclass(frozen=True, slots=True)
class Digest:
    """What one profile gets in one run: its papers, best first (possibly none)."""

    #: Profile name (the YAML file's stem).
    profile: str
    #: Identifies the digest in the ledger: the run's day, ``YYYY-MM-DD``.
    key: str
    #: The day the digest is for.
    day: dt.date
    items: tuple[Recommendation, ...]
    #: When it was generated (UTC); shown in the email, never inside feeds.
    generated_at: dt.datetime
