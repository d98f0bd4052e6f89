"""The profile model: what a person wants in their digest, as validated from their YAML file."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from digest.cron import check_timezone, parse_cron
from digest.text import parse_arxiv_id

from .taxonomy import check_category

_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s.]+$"
_CATEGORY = r"^[A-Za-z][A-Za-z-]*(\.[A-Za-z][A-Za-z-]*)?$"
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
#: What a pattern that did not match means, in words a person can act on.
_PATTERN_MEANS = {
    _EMAIL: "must be an email address like ada@example.org",
    _CATEGORY: "must be an arXiv category like cs.CV",
    _NAME: "the file name must be letters, digits, '_', '.' or '-' (it names the profile)",
}
#: Keys holding lists of paper ids: unquoted numbers in them are read as written (see `_plain`).
ID_KEYS = frozenset({"seed_papers", "liked", "disliked"})

#: A non-empty string; YAML numbers and booleans are not silently turned into text.
_Text = Annotated[str, Strict(), StringConstraints(strip_whitespace=True, min_length=1)]
#: A paper as a person names it: an arXiv id, another id the store knows, or an exact title.
PaperRef = _Text
Format = Literal["email", "markdown", "rss"]



class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Interest(_Frozen):
    """One topic a person follows. In YAML a bare string is an interest named and described
    by that string."""

    name: _Text = Field(description="Short label, shown in the digest next to the papers it found.")
    text: Annotated[str, Strict()] = Field(
        "",
        description="The topic in plain words; papers are ranked by similarity to it.",
    )
    seed_papers: tuple[PaperRef, ...] = Field(
        (), max_length=1000,
        description="Papers that typify the topic: arXiv ids, other ids or exact titles.",
    )
    weight: Annotated[float, Strict()] = Field(
        1.0,
        gt=0,
        le=5,
        description="How much this topic counts against the others (above 0, at most 5): "
        "its papers count as that many times rarer (relevance + log10(weight)).",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_bare_string(cls, data: Any) -> Any:
        return {"name": data, "text": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _has_substance(self) -> Interest:
        if not self.text.strip() and not self.seed_papers:
            raise ValueError("an interest needs text or seed_papers to say what it is about")
        return self


#: The default threshold: the top 2% of the corpus for an interest (docs/evaluation.md chose it:
#: seed-only profiles get a digest on most days, keyword profiles are not flooded).
DEFAULT_MIN_RELEVANCE = 1.7
#: What a profile that still sets the old raw-cosine key is told (rank, run, explain, check).
MIN_SCORE_DEPRECATED = (
    "min_score is no longer used: a raw cosine means different things for different interests "
    "(0.1 left seed-only profiles with empty digests). Use min_relevance (on one scale for "
    "every interest: 2 = the top 1% of papers, 3 = the top 0.1%); this profile uses "
    "min_relevance {relevance:g}"
)


class Profile(_Frozen):
    """What one person wants in their digest, and when and how they want it."""

    version: Literal[1] = Field(description="Format version of the profile file; always 1.")
    # At most 200 characters, as `id`: the store keeps names in 200 (PostgreSQL enforces it).
    name: Annotated[str, StringConstraints(pattern=_NAME, max_length=200)] = Field(
        description="The profile's name: its `id`, else its file name without extension "
        "(not a YAML key).",
    )
    id: Annotated[str, Strict(), StringConstraints(pattern=_NAME, max_length=200)] | None = Field(
        None,
        description="Stable identity of the profile: what was sent, unsubscribes and feed links "
        "follow it, so the file can be renamed. Written by `digest init` and `profiles import`; "
        "without it the file name is the identity.",
    )
    email: Annotated[str, Strict(), StringConstraints(pattern=_EMAIL)] | None = Field(
        None,
        description="Address the email digest goes to; without it no email is sent.",
    )
    timezone: Annotated[str, Strict()] = Field(
        "UTC",
        description="IANA time zone (e.g. Europe/Berlin) in which the schedule is read.",
    )
    schedule: Annotated[str, Strict()] = Field(
        "0 7 * * *",
        description="When to send, as standard 5-field cron (minute hour day month weekday); "
        "0 and 7 are Sunday, names like mon-fri work.",
    )
    formats: tuple[Format, ...] = Field(
        ("email", "markdown", "rss"),
        description="Digests to produce: email, markdown, rss.",
    )
    max_papers: Annotated[int, Strict()] = Field(
        12, ge=1, le=200, description="At most this many papers per digest."
    )
    min_relevance: Annotated[float, Strict()] = Field(
        DEFAULT_MIN_RELEVANCE, ge=0, le=10,
        description="Papers less relevant than this are left out. Relevance is on the same "
        "scale for every interest: 2 means as relevant as the top 1% of all papers for that "
        "interest, 3 the top 0.1% (relevance = -log10 of that share).",
    )
    min_score: Annotated[float, Strict()] | None = Field(
        None, ge=0, le=1,
        description="Deprecated and ignored (a raw cosine meant different things for "
        "different interests): use min_relevance. A profile that sets it gets a warning.",
    )
    interests: tuple[Interest, ...] = Field(
        (), max_length=100,
        description="Topics followed: a string, or a mapping with name, text, "
        "seed_papers and weight.",
    )
    seed_papers: tuple[PaperRef, ...] = Field(
        (), max_length=1000,
        description="Papers typical of the person's interests as a whole: arXiv ids, other ids "
        "or exact titles.",
    )
    liked: tuple[PaperRef, ...] = Field(
        (), max_length=20000,
        description="Papers marked as good in past digests (digest appends to this)."
    )
    disliked: tuple[PaperRef, ...] = Field(
        (), max_length=20000,
        description="Papers marked as not wanted (digest appends to this)."
    )
    avoid: tuple[_Text, ...] = Field(
        (), max_length=1000, description="Words or phrases that push a paper down the ranking."
    )
    authors: tuple[_Text, ...] = Field(
        (), max_length=1000,
        description="Authors whose new papers are always wanted (ranked first, past "
        "min_relevance), as named on arXiv."
    )
    categories: tuple[Annotated[str, Strict(), StringConstraints(pattern=_CATEGORY),
                                AfterValidator(check_category)], ...] = Field(
        (), max_length=200,
        description="arXiv categories to draw from (e.g. cs.CV); empty means all."
    )
    send_empty: Annotated[bool, Strict()] = Field(
        False,
        description='Send a short "nothing new" note when no paper qualifies, instead of nothing.',
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return check_timezone(value)

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        parse_cron(value)  # its ValueError says what is wrong
        return value

    @field_validator("formats")
    @classmethod
    def _email_needs_address(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        # Only runs when formats is written out: the default quietly skips email without one.
        if "email" in value and "email" in info.data and info.data["email"] is None:
            raise ValueError("'email' needs an email address: set `email` or drop 'email' here")
        return value

    @field_validator("interests")
    @classmethod
    def _distinct_names(cls, value: tuple[Interest, ...]) -> tuple[Interest, ...]:
        seen: set[str] = set()
        for interest in value:
            if interest.name.casefold() in seen:
                raise ValueError(f"two interests are named {interest.name!r}")
            seen.add(interest.name.casefold())
        return value

    @field_validator("disliked")
    @classmethod
    def _not_also_liked(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        liked = {_paper_key(p) for p in info.data.get("liked", ())}
        both = [p for p in value if _paper_key(p) in liked]
        if both:
            raise ValueError(f"{both[0]!r} is in both liked and disliked")
        return value

    @model_validator(mode="after")
    def _has_something_to_rank_by(self) -> Profile:
        if not (self.interests or self.seed_papers or self.liked):
            raise ValueError(
                "nothing to rank papers by: add at least one of interests, seed_papers, liked"
            )
        return self



def _paper_key(ref: Any) -> str:
    """What makes two references the same paper here: arXiv ids match without version or
    prefix; anything else (other ids, titles) must match exactly."""
    text = str(ref).strip()
    parsed = parse_arxiv_id(text)
    return parsed[0] if parsed else text

