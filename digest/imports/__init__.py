"""Seed papers from a researcher's own library: reference-manager exports (BibTeX, RIS,
CSL-JSON), a Zotero library through its web API, or an arXiv author's papers.

Each entry becomes a `Reference` (an arXiv id when one hides in it, else its title); `seeds`
matches references against the store, fetches missing arXiv papers by id, and writes the
matches into a profile's ``seed_papers``.
"""

from __future__ import annotations

from .files import FORMATS, read_file
from .refs import Reference, arxiv_id_in
from .seeds import ImportReport, import_seeds

__all__ = ["FORMATS", "ImportReport", "Reference", "arxiv_id_in", "import_seeds", "read_file"]
