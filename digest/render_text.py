"""Text fit for each output: safe to display (control, bidi and invisible characters), URLs,
author lists, truncation, and markdown with its math kept."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from urllib.parse import quote, urlsplit

from digest.text import clean, collapse

#: Entries of each per-text cache: a day's digests repeat the same papers across profiles.
_CACHE_SIZE = 4096

# -- text ----------------------------------------------------------------------------------------

# Control characters other than tab and newline, and what XML 1.0 cannot hold at all.
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
# What a URL must not hold as is: the above, white space (`\s` in a str pattern is
# `str.isspace`), and what would change how the text after it reads: bidi controls and
# invisible characters. A URL holding any is percent-encoded.
_UNSAFE_OR_SPACE = re.compile(
    _UNSAFE.pattern + r"|\s|[\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]"
)
_BIDI_OPEN = {
    "\u202a": "\u202c",
    "\u202b": "\u202c",
    "\u202d": "\u202c",
    "\u202e": "\u202c",
    "\u2066": "\u2069",
    "\u2067": "\u2069",
    "\u2068": "\u2069",
}
_PDF, _PDI = "\u202c", "\u2069"
_BIDI_ANY = re.compile("[\u202a-\u202e\u2066-\u2069]")


def display_text(text: str) -> str:
    """Text fit to show anywhere: no control characters, one line, and any right-to-left
    override it opens closed at its end, so it cannot reverse what follows it."""
    text = collapse(_UNSAFE.sub("", text))
    if not _BIDI_ANY.search(text):
        return text
    owed: list[str] = []  # the closers of what is open, innermost last
    for ch in text:
        if ch in _BIDI_OPEN:
            owed.append(_BIDI_OPEN[ch])
        elif ch == _PDF:  # closes an embedding or override, never an isolate (UAX #9)
            if owed and owed[-1] == _PDF:
                owed.pop()
        elif ch == _PDI and _PDI in owed:  # closes its isolate and all opened inside it
            while owed.pop() != _PDI:
                pass
    return text + "".join(reversed(owed))


@lru_cache(maxsize=_CACHE_SIZE)
def safe_url(url: str | None) -> str | None:
    """`url` if it is an absolute http(s) URL (what a source gave may be anything)."""
    if not url:
        return None
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    if _UNSAFE_OR_SPACE.search(url):
        return quote(_UNSAFE.sub("", url), safe=":/?#[]@!$&'()*+,;=%~")
    return url


def short_authors(authors: Sequence[str]) -> str:
    """``A, B, C et al.`` for more than four authors, all of them otherwise."""
    if len(authors) > 4:
        return ", ".join(authors[:3]) + " et al."
    return ", ".join(authors)


def truncate(text: str, limit: int) -> tuple[str, bool]:
    """`text` cut to `limit` characters on a word boundary, with an ellipsis; and whether it was."""
    if len(text) <= limit:
        return text, False
    cut = text[:limit]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,;:-–—([") + "…", True


# -- markdown ------------------------------------------------------------------------------------

# Inline or display math in a raw title or abstract (not an escaped dollar).
_MATH = re.compile(r"\$\$[^$]{1,400}?\$\$|(?<![\\$])\$[^$\s](?:[^$]{0,298}?[^$\s\\])?\$(?!\$)")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~$])")
# What begins a heading, a list item or a setext underline at the start of a line.
_MD_BLOCK_START = re.compile(r"^(\s*)(?:(\d+)([.)])(?=\s|$)|([#+=-]))")


def keep_math(raw: str, cleaned: str) -> str:
    """The raw text with its ``$...$`` math kept and the rest cleaned as `clean` does;
    the cleaned text when the raw one has no math."""
    if not raw or "$" not in raw:
        return cleaned
    parts: list[str] = []
    last = 0
    for match in _MATH.finditer(raw):
        parts += [_clean_inner(raw[last : match.start()]), collapse(match.group(0))]
        last = match.end()
    parts.append(_clean_inner(raw[last:]))
    return collapse("".join(parts))


def _clean_inner(segment: str) -> str:
    """`clean`, keeping one space at either edge where there was white space."""
    core = clean(segment)
    if not core:
        return " " if segment else ""
    return (" " if segment[0].isspace() else "") + core + (" " if segment[-1].isspace() else "")


@lru_cache(maxsize=_CACHE_SIZE)
def escape_markdown(text: str, *, line_start: bool = True) -> str:
    """`text` as markdown that renders as exactly that text (GitHub-flavoured). With
    `line_start`, what would begin a heading or a list there is escaped too."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    if not line_start:
        return text
    return _MD_BLOCK_START.sub(_escape_block_start, text, count=1)


def _escape_block_start(m: re.Match[str]) -> str:
    return m[1] + (f"{m[2]}\\{m[3]}" if m[2] else f"\\{m[4]}")


def markdown_url(url: str) -> str:
    """A URL that can stand in a markdown link's parentheses."""
    return re.sub(r"[()<>\s]", lambda m: f"%{ord(m[0]):02X}", url)


@lru_cache(maxsize=_CACHE_SIZE)
def markdown_with_math(text: str) -> str:
    """Like `escape_markdown`, but ``$...$`` math is kept for GitHub to typeset. Inside math,
    what markdown or HTML would read as markup is rewritten into equivalent LaTeX."""
    out: list[str] = []
    last = 0
    for match in _MATH.finditer(text):
        out += [
            escape_markdown(text[last : match.start()], line_start=not out),
            _safe_math(match.group(0)),
        ]
        last = match.end()
    out.append(escape_markdown(text[last:], line_start=not out))
    return "".join(out)


def _safe_math(math: str) -> str:
    # \lt, \gt and an empty group render the same and are not HTML or a link.
    math = math.replace("<", r"\lt ").replace(">", r"\gt ")
    return math.replace("](", "]{}(").replace("`", "'")
