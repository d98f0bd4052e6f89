"""A Zotero library through its web API (pyzotero), read as references.

pyzotero does the paging and the API's conventions; the `transport` seam lets tests answer
with recorded responses instead of api.zotero.org.
"""

from __future__ import annotations

from typing import Any

import httpx

from ..errors import DigestError
from .refs import Reference, arxiv_id_in, clean_title

#: Item types that are not papers (children of papers, or annotations).
_NOT_PAPERS = frozenset({"note", "attachment", "annotation"})


def read_zotero(library_id: str, library_type: str, api_key: str | None, *,
                collection: str | None = None,
                transport: httpx.BaseTransport | None = None) -> list[Reference]:
    """Every top-level item of the library (or of one collection)."""
    try:
        from pyzotero import zotero
    except ImportError:
        raise DigestError("reading Zotero needs pyzotero: pip install "
                          "'digest-papers[import]'") from None
    if library_type not in ("user", "group"):
        raise DigestError(f"a Zotero library is 'user' or 'group', not {library_type!r}")
    client = zotero.Zotero(library_id, library_type, api_key)
    if transport is not None:
        client.client = httpx.Client(transport=transport, headers=client.default_headers(),
                                     follow_redirects=True)
    where = f"zotero:{library_type}/{library_id}"
    try:
        first = client.collection_items_top(collection, limit=100) if collection else \
            client.top(limit=100)
        items: list[dict[str, Any]] = client.everything(first) if first else []
    except Exception as exc:  # pyzotero raises its own errors and httpx's
        raise DigestError(f"{where}: {type(exc).__name__}: {exc}".rstrip(": ")) from None
    refs = []
    for item in items:
        data = item.get("data", item)
        if data.get("itemType") in _NOT_PAPERS:
            continue
        url = data.get("url")
        refs.append(Reference(
            f"{where}/items/{data.get('key', '?')}",
            arxiv_id_in(doi=data.get("DOI"), urls=(url,) if isinstance(url, str) else (),
                        text=" ".join(str(data.get(k) or "") for k in
                                      ("archiveID", "extra", "number", "publicationTitle"))),
            clean_title(data.get("title")),
        ))
    return refs
