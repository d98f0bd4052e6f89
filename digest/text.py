"""Text hygiene: LaTeX to Unicode, white space, title normalization, arXiv ids.

Everything a source hands over passes through here before it is stored or scored.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from functools import lru_cache
from typing import Any

from pylatexenc.latex2text import LatexNodes2Text
from pylatexenc.latexwalker import LatexWalker, get_default_latex_context_db

# pylatexenc logs a warning for every macro it cannot expand; the fallback handles those.
logging.getLogger("pylatexenc").setLevel(logging.ERROR)

# Characters that make a string worth handing to the LaTeX converter. Plain prose (most titles,
# many abstracts) skips it: the converter costs about a millisecond per abstract.
_LATEXISH = re.compile(r"[\\${}]")

# A version of more digits than this is no arXiv version (and too long for int() to read).
_NEW_ID = re.compile(r"(\d{4}\.\d{4,5})(?:v(\d{1,9}))?")
# An archive is a short name (astro-ph, cond-mat); bounded, so an id fits the store's 64
# characters (PostgreSQL enforces them) and a longer "archive" is some other id.
_OLD_ID = re.compile(r"([a-z][a-z\-]{0,39}(?:\.[A-Z]{2})?/\d{7})(?:v(\d{1,9}))?")
_ID_PREFIX = re.compile(
    r"^(?:arxiv:|oai:arxiv\.org:|https?://(?:www\.|export\.)?arxiv\.org/(?:abs|pdf)/)",
    re.IGNORECASE,
)


_SURROGATE = re.compile("[\ud800-\udfff]")


def has_lone_surrogate(text: str) -> bool:
    """Whether `text` holds a surrogate code point on its own, as JSON can escape one
    (``"\\ud800"``). Such a string is not text: it cannot be encoded, stored or shown."""
    return _SURROGATE.search(text) is not None


def collapse(text: str) -> str:
    """Collapse runs of white space (arXiv titles carry hard line breaks) and strip."""
    return " ".join(text.split())


@lru_cache(maxsize=1)
def _converter() -> tuple[LatexNodes2Text, Any]:
    # Building the default macro table costs more than converting a short island: build once.
    converter = LatexNodes2Text(math_mode="text", strict_latex_spaces=True)
    return converter, get_default_latex_context_db()


# LaTeX islands in otherwise plain prose: inline math, a macro with its braced arguments, an
# escaped character, a braced group. Only these are handed to the converter (cached), which
# keeps cleaning at a few microseconds per abstract instead of milliseconds.
_ISLAND = re.compile(
    r"\$\$[^$]{1,400}?\$\$"
    r"|\$[^$]{1,300}?\$"
    r"|\\[a-zA-Z]+\*?(?:\[[^\]{}]{0,40}\])?(?:\{[^{}]{0,300}\})*"
    r"|\\['\"`^~=.](?:[a-zA-Z]|\{[a-zA-Z]\})"
    r"|\\[^a-zA-Z\s]"
    r"|\{[^{}]{0,300}\}"
)


# Escaped characters that stand for themselves: no need to parse them.
_ESCAPED = {"\\%": "%", "\\&": "&", "\\_": "_", "\\$": "$", "\\#": "#", "\\,": " ", "\\-": "",
            "\\(": "", "\\)": "", "\\ ": " ", "\\{": "{", "\\}": "}"}


# Simple math, the common case ($k$, $^2$, $\times$, $F_1$, $O(n^{2})$): letters, digits,
# operators, braces and macros without arguments. Converted token by token, each macro once.
_SIMPLE_MATH = re.compile(r"\$([^$\\{}]|\\[a-zA-Z]+(?![a-zA-Z{])\s*|\{[^$\\{}]*\})+\$")
_ONE_MACRO = re.compile(r"\$\\[a-zA-Z]+\s*\$")
_MATH_TOKEN = re.compile(r"\\[a-zA-Z]+\s*|[{}$]")
# Font and emphasis macros around plain text: the text itself.
_FONT = re.compile(
    r"\\(?:textbf|textit|emph|texttt|textsc|textrm|textsf|textup|textnormal|underline|mbox|"
    r"mathrm|mathbf|mathit|mathsf|mathtt|boldsymbol|text)\{([^{}\\$]*)\}"
)


def _math_token(match: re.Match[str]) -> str:
    token = match.group(0)
    if token in "{}$":
        return ""
    text = _island_to_text("$" + token.strip() + "$")
    # Keep the space that separated a word-like macro from what follows ("n \log n").
    return text + " " if token[-1].isspace() and text[-1:].isalnum() else text


@lru_cache(maxsize=65536)
def _island_to_text(island: str) -> str:
    if island in _ESCAPED:
        return _ESCAPED[island]
    font = _FONT.fullmatch(island)
    if font:
        return collapse(font.group(1))
    if _SIMPLE_MATH.fullmatch(island) and not _ONE_MACRO.fullmatch(island):
        return collapse(_MATH_TOKEN.sub(_math_token, island))
    converter, context = _converter()
    try:
        walker = LatexWalker(island, latex_context=context, tolerant_parsing=True)
        out = converter.nodelist_to_text(walker.get_latex_nodes()[0])
    except Exception:  # the converter raises assorted errors on broken input
        return island
    out = collapse(out)
    # The converter is tolerant and sometimes swallows what it misreads: keep the raw island.
    if not out and island.strip("${} "):
        return island
    return out


def clean(text: str) -> str:
    """LaTeX to Unicode, white space collapsed: the text shown to people and scored.

    Plain prose is left alone (a ``~`` meaning "about", a ``%`` meaning percent, an
    ``_`` in a URL); only recognisable LaTeX islands are converted.
    """
    if not text:
        return ""
    base = collapse(text)
    if not _LATEXISH.search(base):
        return base
    return collapse(_ISLAND.sub(lambda m: _island_to_text(m.group(0)), base))


# Words written more than one way in titles. Applied to the lower-cased title before
# punctuation goes, since "w/o" and "&" are punctuation.
_ABBREVIATIONS = (
    (re.compile(r"\bw/o\b"), " without "),
    (re.compile(r"\bw/(?=\s|\w)"), " with "),
    (re.compile(r"&"), " and "),
    (re.compile(r"\+"), " plus "),  # C++ is not C
    (re.compile(r"\bvs\.?(?=\s)"), " versus "),
)
_GREEK_NAMES = (
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
    "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "sigma", "tau", "upsilon", "phi",
    "chi", "psi", "omega",
)  # fmt: skip
# Greek letters by name, as titles spell them out ("α-Net", "alpha-Net"); ς is final sigma.
_GREEK = {chr(0x3B1 + i): name for i, name in enumerate(_GREEK_NAMES)} | {
    "ϵ": "epsilon", "ϕ": "phi", "ϑ": "theta"}
# A run of anything but letters and digits between two digits: "1.5", "1-2" and "1 2" stay
# apart from "15" and "12" (model sizes and versions), all written alike.
_BETWEEN_DIGITS = re.compile(r"(\d)[\W_]+(?=\d)")
_NOT_ALNUM_OR_NUL = re.compile(r"[^\w\x00]+|_+")


def normalize_title(title: str, *, cleaned: bool = False) -> str:
    """A title reduced to what identifies it. Case, accents, LaTeX, punctuation, spacing and
    hyphenation ("Re-calibration", "Recalibration", "Re- calibration") do not matter, nor do a
    few spellings of the same word ("&"/"and", "w/o"/"without", "vs."/"versus", "α"/"alpha").
    Anything else does: a title differing by a word, a letter or a number ("GPT-4"/"GPT-4o",
    "Qwen2.5"/"Qwen25", "SAM 2"/"SAM") is another title. Two records with the same normalized
    title are the same paper when at least one of them has no id.

    The result is letters and digits only, with ``.`` between two numbers. A change here
    changes stored ``norm_title`` values: add a store migration that recomputes them.
    """
    text = title if cleaned else clean(title)
    if text.isascii():
        text = text.lower()
    else:
        text = unicodedata.normalize("NFKD", text).casefold()
        text = "".join(_GREEK.get(ch, ch) for ch in text if not unicodedata.combining(ch))
    if "&" in text or "+" in text or "/" in text or "vs" in text:
        for pattern, replacement in _ABBREVIATIONS:
            text = pattern.sub(replacement, text)
    if "\x00" in text:
        text = text.replace("\x00", "")
    text = _BETWEEN_DIGITS.sub("\\1\x00", text)
    return _NOT_ALNUM_OR_NUL.sub("", text).replace("\x00", ".")


def title_key(norm_title: str) -> str:
    """The key of a paper known only by its title."""
    return "title:" + hashlib.sha1(norm_title.encode("utf-8")).hexdigest()[:16]


def parse_arxiv_id(text: str) -> tuple[str, int | None] | None:
    """Split an arXiv identifier into (id without version, version or None).

    Accepts ``2503.11731``, ``2503.11731v2``, ``arXiv:2503.11731``, abs/pdf URLs, OAI
    identifiers and old-style ids such as ``astro-ph/0601001v1``. Anything else gives None.
    """
    s = _ID_PREFIX.sub("", text.strip())
    if s.endswith(".pdf"):
        s = s[:-4]
    m = _NEW_ID.fullmatch(s) or _OLD_ID.fullmatch(s)
    if not m:
        return None
    return m.group(1), int(m.group(2)) if m.group(2) else None
