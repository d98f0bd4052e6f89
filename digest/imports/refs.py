"""A reference as a reference manager holds it, reduced to what finds the paper."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..text import collapse, parse_arxiv_id

#: arXiv's DOIs: 10.48550/arXiv.2503.12572 (case varies between exporters).
_ARXIV_DOI = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/)?10\.48550/arxiv\.(.+)$", re.I)
#: An arXiv id inside free text, as Zotero writes it in `extra` ("arXiv: 2503.13107 [cs]").
_IN_TEXT = re.compile(r"arxiv[:\s]\s*([a-z-]+(?:\.[A-Z]{2})?/\d{7}|\d{4}\.\d{4,5})(?:v\d+)?",
                      re.I)


@dataclass(frozen=True, slots=True)
class Reference:
    """One entry of a library: where it is (for messages), its arXiv id, its title."""

    where: str
    arxiv_id: str | None
    title: str | None

    @property
    def ref(self) -> str | None:
        """How a profile names it: the arXiv id, else the title."""
        return self.arxiv_id or self.title


def arxiv_id_in(*, eprint: str | None = None, archive: str | None = None,
                doi: str | None = None, urls: tuple[str, ...] = (),
                text: str | None = None) -> str | None:
    """The arXiv id (without version) an entry names in any of its usual places: an eprint
    field (when its archive prefix is arXiv or not given), an arXiv DOI, an arXiv URL, or
    ``arXiv:ID`` in a free-text field."""
    candidates: list[str] = []
    if eprint and (archive is None or archive.strip().lower() == "arxiv"):
        candidates.append(eprint)
    if doi and (match := _ARXIV_DOI.match(doi.strip())):
        candidates.append(match.group(1))
    candidates += [u for u in urls if "arxiv.org/" in u.lower()]
    if text and (match := _IN_TEXT.search(text)):
        candidates.append(match.group(1))
    for candidate in candidates:
        found = parse_arxiv_id(candidate.strip())
        if found:
            return found[0]
    return None


def clean_title(value: object) -> str | None:
    """A title as exported (BibTeX braces, line breaks) as plain text, or None if empty."""
    if not isinstance(value, str):
        return None
    text = collapse(value.replace("{", "").replace("}", ""))
    return text or None
