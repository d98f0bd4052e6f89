"""Reference-manager export files: BibTeX (bibtexparser), RIS (rispy), CSL-JSON (stdlib).

These are what Zotero, Mendeley and JabRef export. Each reader returns the references and a
problem for each entry it could not read (with its line or index); one bad entry never stops
the others. The parsers are imported on use: they are the optional ``import`` extra.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import DigestError
from .refs import Reference, arxiv_id_in, clean_title

#: Formats by name, and the file suffixes that choose them.
FORMATS = {"bibtex": (".bib", ".bibtex"), "ris": (".ris",), "csl-json": (".json",)}

Read = tuple[list[Reference], list[str]]


def read_file(path: str | Path, fmt: str | None = None) -> Read:
    """References in an export file, its format given or chosen by its suffix."""
    path = Path(path)
    if fmt is None:
        fmt = next((name for name, suffixes in FORMATS.items()
                    if path.suffix.lower() in suffixes), None)
        if fmt is None:
            raise DigestError(f"{path}: cannot tell the format from the name; say --format "
                              f"{'|'.join(FORMATS)}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise DigestError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise DigestError(f"{path}: not UTF-8 text") from None
    readers: dict[str, Callable[[str, str], Read]] = {
        "bibtex": read_bibtex, "ris": read_ris, "csl-json": read_csl_json,
    }
    if fmt not in readers:
        raise DigestError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return readers[fmt](text, str(path))


def _need(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise DigestError(f"reading this format needs {module}: pip install "
                          "'digest-papers[import]'") from None


def read_bibtex(text: str, where: str) -> Read:
    bibtexparser = _need("bibtexparser")
    logging.getLogger("bibtexparser").setLevel(logging.CRITICAL)  # we report failed blocks
    library = bibtexparser.parse_string(text)
    refs: list[Reference] = []
    for entry in library.entries:
        fields = {k.lower(): str(v.value) for k, v in entry.fields_dict.items()}
        urls = tuple(fields[k] for k in ("url", "howpublished") if k in fields)
        refs.append(Reference(
            f"{where}:{entry.start_line + 1} ({entry.key})",
            arxiv_id_in(eprint=fields.get("eprint"), archive=fields.get("archiveprefix")
                        or fields.get("eprinttype"), doi=fields.get("doi"), urls=urls,
                        text=fields.get("journal") or fields.get("note")),
            clean_title(fields.get("title")),
        ))
    problems = [f"{where}:{block.start_line + 1}: cannot read this entry: {_why(block)}"
                for block in library.failed_blocks]
    return refs, problems


def _why(block: Any) -> str:
    error = getattr(block, "error", None)
    lines = str(error).strip().splitlines() if error else []
    return lines[-1].strip() if lines else "malformed"


def read_ris(text: str, where: str) -> Read:
    rispy = _need("rispy")
    try:
        entries = rispy.loads(text)
    except Exception as exc:  # rispy raises bare IOError/ValueError/KeyError on bad input
        raise DigestError(f"{where}: not a RIS file: {exc}") from None
    refs = []
    for n, entry in enumerate(entries, start=1):
        urls = tuple(entry.get("urls") or ()) + tuple(
            str(entry[k]) for k in ("url", "link_to_pdf") if isinstance(entry.get(k), str))
        title = entry.get("title") or entry.get("primary_title") or entry.get("translated_title")
        refs.append(Reference(
            f"{where}: entry {n}",
            arxiv_id_in(doi=entry.get("doi"), urls=urls,
                        text=" ".join(str(entry.get(k) or "") for k in ("notes", "note",
                                                                          "secondary_title"))),
            clean_title(title),
        ))
    return refs, []


def read_csl_json(text: str, where: str) -> Read:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DigestError(f"{where}:{exc.lineno}: not JSON: {exc.msg}") from None
    items = data if isinstance(data, list) else data.get("items") if isinstance(data, dict) \
        else None
    if not isinstance(items, list):
        raise DigestError(f"{where}: not CSL-JSON: expected a list of items")
    refs, problems = [], []
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(f"{where}: item {n}: not an object")
            continue
        urls = tuple(str(item[k]) for k in ("URL", "url") if isinstance(item.get(k), str))
        refs.append(Reference(
            f"{where}: item {n}" + (f" ({item['id']})" if "id" in item else ""),
            arxiv_id_in(doi=item.get("DOI") if isinstance(item.get("DOI"), str) else None,
                        urls=urls, text=" ".join(str(item.get(k) or "") for k in
                                                 ("number", "archive_location", "note"))),
            clean_title(item.get("title")),
        ))
    return refs, problems
