"""`explain`: why a paper is or is not in a profile's digest, on the real papers of
test_recommend's store (three weeks of June 2025)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from test_recommend import COPIES, GAUSSIAN, ORIGINAL, RANKING, UNTIL, World

from digest.explain import CAUSES, Explanation, PaperNotFoundError, explain_in
from digest.profiles import Profile
from digest.recommend import AUTHOR_BOOST

VIRTUAL_MEMORY = "2506.19415"  # Virtual Memory for 3D Gaussian Splatting, announced 06-25
TORNADOES = ORIGINAL


def explain(world: World, profile: Profile, key: str, **kwargs: object) -> Explanation:
    result = explain_in(world.app(), profile, key, until=UNTIL, **kwargs)  # type: ignore[arg-type]
    json.dumps(result.as_dict())  # always JSON-ready
    assert set(result.causes) <= set(CAUSES)
    assert result.chosen == (not result.causes)
    return result


def test_a_chosen_paper_names_its_interest_terms_and_place(world: World) -> None:
    profile = world.profile("ada", """\
version: 1
interests:
  - name: language models
    text: large language models, reasoning, instruction tuning
  - gaussian splatting
""")
    (ranking,) = world.rank([profile])
    third = ranking.items[2]

    result = explain(world, profile, third.paper.key)

    assert result.chosen and result.causes == ()
    assert result.position == 3 and result.considered == ranking.considered
    assert result.score == pytest.approx(third.score)
    assert result.why == third.why
    assert result.reasons[0].startswith(f"Chosen: it ranks 3 of {ranking.considered}")
    assert f"Best interest: {third.why.interest!r}" in result.reasons[1]
    assert all(term in result.reasons[1] for term in third.why.terms)
    assert [s.name for s in result.interests] == ["language models", "gaussian splatting"]
    best = max(result.interests, key=lambda s: s.weighted)
    assert best.name == third.why.interest
    assert best.similarity == pytest.approx(third.why.similarity, abs=1e-5)
    text = result.format_text()
    assert "chosen" in text and third.paper.title in text and "<- best" in text


def test_an_already_sent_paper_names_the_digest(world: World) -> None:
    profile = world.profile("ada", GAUSSIAN)
    world.send("ada", [VIRTUAL_MEMORY], day=dt.date(2025, 6, 26))

    result = explain(world, profile, VIRTUAL_MEMORY, since=dt.date(2025, 6, 20))

    assert not result.chosen
    assert result.causes == ("already_sent",)
    assert result.sent_in == "2025-06-26"
    assert "already sent" in result.reasons[0] and "2025-06-26" in result.reasons[0]
    # When, in UTC whatever the database's own time zone (tests/stores.py sets PostgreSQL's).
    assert "on 2025-06-28 07:00 UTC" in result.reasons[0], result.reasons[0]
    # It would be the best paper otherwise.
    assert result.position == 1
    assert "would rank 1 of" in result.reasons[1]


def test_a_paper_announced_before_the_window(world: World) -> None:
    profile = world.profile("ada", GAUSSIAN)
    world.send("ada", [], day=dt.date(2025, 6, 26))

    result = explain(world, profile, VIRTUAL_MEMORY)  # announced on 06-25

    assert result.causes == ("before_window",)
    assert result.window_start == dt.date(2025, 6, 26)
    assert "2025-06-25" in result.reasons[0]
    assert "last digest covered papers up to 2025-06-26" in result.reasons[0]


def test_a_paper_outside_the_categories(world: World) -> None:
    profile = world.profile("ada", GAUSSIAN + "categories: [cs.CL, cs.AI]\n")

    result = explain(world, profile, VIRTUAL_MEMORY)

    assert result.causes == ("category",)
    assert "outside the profile's (cs.CL, cs.AI)" in result.reasons[0]
    assert result.interests[0].similarity > 0.3  # a good match, kept out only by category


@RANKING
def test_a_paper_below_min_relevance(world: World) -> None:
    profile = world.profile("ada", GAUSSIAN + "min_relevance: 9\n")

    result = explain(world, profile, VIRTUAL_MEMORY)

    assert result.causes == ("below_min_relevance",)
    assert result.score is not None and result.score < 9
    assert f"Its relevance {result.score:.2f} is below the profile's min_relevance 9" \
        in result.reasons[0]
    # The raw cosine stays beside the calibrated figure.
    (interest,) = result.interests
    assert 0 < interest.similarity < 1 and interest.relevance == pytest.approx(result.score)
    assert result.as_dict()["interests"][0]["similarity"] == round(interest.similarity, 4)


@RANKING
def test_an_avoided_term_is_named_with_what_it_took_off(world: World) -> None:
    plain = world.profile("plain", GAUSSIAN)
    avoiding = world.profile("avoiding", GAUSSIAN + "avoid: [virtual memory, speech]\n")

    before = explain(world, plain, VIRTUAL_MEMORY)
    after = explain(world, avoiding, VIRTUAL_MEMORY)

    assert before.chosen and before.position == 1
    assert [p.what for p in after.penalties] == ["virtual memory"]
    assert after.penalty == pytest.approx(after.penalties[0].amount)
    assert before.score is not None and after.score is not None
    assert after.score == pytest.approx(before.score - after.penalty, abs=1e-4)
    assert after.position is not None and after.position > 1
    assert any("avoided term 'virtual memory'" in r for r in after.reasons)


@RANKING
def test_a_near_duplicate_names_the_better_paper(world: World) -> None:
    profile = world.profile("ada", GAUSSIAN + "max_papers: 50\nmin_relevance: 0\n")
    (ranking,) = world.rank([profile])
    (kept,) = {ORIGINAL, *COPIES} & {r.paper.key for r in ranking.items}
    thinned = sorted({ORIGINAL, *COPIES} - {kept})[0]

    result = explain(world, profile, thinned)

    assert result.causes == ("duplicate",)
    assert result.duplicate_of == kept
    assert result.duplicate_similarity is not None and result.duplicate_similarity > 0.8
    assert kept in result.reasons[0]


def test_the_profiles_own_paper_and_a_followed_author(world: World) -> None:
    profile = world.profile("ada", GAUSSIAN + f"""\
liked: ["{TORNADOES}"]
authors: ["Jonathan Haberl"]
""")

    own = explain(world, profile, TORNADOES)
    boosted = explain(world, profile, VIRTUAL_MEMORY)

    assert own.causes == ("own_paper",)
    assert f"liked as '{TORNADOES}'" in own.reasons[0]
    assert boosted.chosen and boosted.authors == ("Jonathan Haberl",)
    assert boosted.author_boost == pytest.approx(AUTHOR_BOOST)
    assert boosted.why.seed_key == TORNADOES
    assert any("Closest seed paper: " + TORNADOES in r for r in boosted.reasons)


@RANKING
def test_a_paper_past_max_papers(world: World) -> None:
    profile = world.profile("ada", GAUSSIAN + "max_papers: 2\n")
    (ranking,) = world.rank([profile], top=10)
    sixth = ranking.items[5]

    result = explain(world, profile, sixth.paper.key)

    assert result.causes == ("max_papers",)
    assert result.position is not None and result.position >= 6
    assert result.score == pytest.approx(sixth.score)
    assert "below the cut of max_papers 2" in result.reasons[0]


def test_an_unknown_paper_is_a_clear_error(world: World) -> None:
    profile = world.profile("ada", GAUSSIAN)

    with pytest.raises(PaperNotFoundError, match=r"no paper '2401\.99999' in the store"):
        explain(world, profile, "2401.99999")


def test_papers_are_found_by_any_form_of_id_or_by_title(world: World) -> None:
    profile = world.profile("ada", GAUSSIAN)

    by_url = explain(world, profile, f"https://arxiv.org/abs/{VIRTUAL_MEMORY}v2")
    by_title = explain(world, profile, "Virtual Memory for 3D Gaussian Splatting")

    assert by_url.paper.key == by_title.paper.key == VIRTUAL_MEMORY
