"""A stored digest's markdown as safe HTML for the browser, its math kept for MathJax/KaTeX."""

from __future__ import annotations

import html
import importlib.util
import re
import secrets

import markdown
import nh3

__all__ = ["HAVE_ARITHMATEX", "render_markdown"]

#: Whether pymdown-extensions (for its arithmatex extension) is installed.
HAVE_ARITHMATEX = importlib.util.find_spec("pymdownx") is not None

_ALLOWED_TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "code", "del", "div", "em", "h1", "h2", "h3", "h4",
    "h5", "h6", "hr", "i", "img", "li", "ol", "p", "pre", "span", "strong", "sub", "sup",
    "table", "tbody", "td", "th", "thead", "tr", "ul",
})
_ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "td": {"align"},
    "th": {"align"},
}
_ALLOWED_CLASSES = {"span": {"arithmatex"}, "div": {"arithmatex"}}
# `$...$` or `$$...$$` not after a backslash; inline math neither starts nor ends with a space.
_MATH = re.compile(
    r"(?<!\\)\$\$(?P<display>.+?)(?<!\\)\$\$"
    r"|(?<![\\$])\$(?P<inline>[^\s$](?:[^$]*?[^\s$\\])?)\$(?!\$)",
    re.DOTALL,
)


def render_markdown(text: str, *, arithmatex: bool = HAVE_ARITHMATEX) -> str:
    """Markdown (a stored digest) as sanitized HTML, math kept intact.

    ``$x^2$`` becomes ``<span class="arithmatex">\\(x^2\\)</span>`` (what MathJax or KaTeX
    auto-render read) instead of emphasis: with pymdown-extensions' arithmatex when it is
    installed, else by setting the math aside before markdown sees it. The markdown package
    does not sanitize (raw ``<script>`` passes through), so its output goes through nh3.
    """
    md = markdown.Markdown(
        extensions=["pymdownx.arithmatex"] if arithmatex else [],
        extension_configs={"pymdownx.arithmatex": {"generic": True}} if arithmatex else {},
    )
    rendered = _convert_keeping_math(md, text, inline=not arithmatex)
    return nh3.clean(
        rendered,
        tags=set(_ALLOWED_TAGS),
        attributes={tag: set(names) for tag, names in _ALLOWED_ATTRIBUTES.items()},
        allowed_classes={tag: set(names) for tag, names in _ALLOWED_CLASSES.items()},
        url_schemes={"http", "https", "mailto"},
    )


def _convert_keeping_math(md: markdown.Markdown, text: str, *, inline: bool) -> str:
    """Convert, setting ``$$...$$`` math (and with `inline`, ``$...$`` too) aside first:
    arithmatex reads ``$$`` only as a block of its own, but a digest has it inside sentences."""
    # Letters and digits only: markdown leaves such a word alone wherever it stands.
    nonce = secrets.token_hex(8)
    kept: list[str] = []

    def set_aside(match: re.Match[str]) -> str:
        if match["display"] is not None:
            kept.append(f"\\[{match['display']}\\]")
        elif inline:
            kept.append(f"\\({match['inline']}\\)")
        else:
            return match[0]
        return f"mathx{nonce}x{len(kept) - 1}x"

    if inline:
        md.ESCAPED_CHARS.append("$")  # `\$` is a dollar sign, as with arithmatex
    rendered = md.convert(_MATH.sub(set_aside, text))
    return re.sub(
        rf"mathx{nonce}x(\d+)x",
        lambda m: f'<span class="arithmatex">{html.escape(kept[int(m[1])], quote=False)}</span>',
        rendered,
    )
