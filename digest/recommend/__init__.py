"""The recommender: each profile's best new papers, with the reasons.

- `plan`: each profile resolved against the store (seeds, window, exclusions);
- `ranker`: the `Recommender`, scoring all profiles in chunks, choosing and explaining;
- `batch`: what the chunks of one ranking share (candidates, masks, the product);
- `calibrate`: relevance, one scale for every interest of every profile.
"""

from .batch import (
    DUPLICATE,
    DUPLICATE_SHORT,
    SHORT_WORDS,
    Candidates,
    duplicate_thresholds,
    is_short,
)
from .calibrate import Calibration
from .plan import SEED_INTEREST, Ranking, normalize_author, paper_text, rank_json
from .ranker import AUTHOR_BOOST, AVOID_MIN, AVOID_WEIGHT, DISLIKE_WEIGHT, Recommender

__all__ = [
    "AUTHOR_BOOST",
    "AVOID_MIN",
    "AVOID_WEIGHT",
    "DISLIKE_WEIGHT",
    "DUPLICATE",
    "DUPLICATE_SHORT",
    "SEED_INTEREST",
    "SHORT_WORDS",
    "Calibration",
    "Candidates",
    "Ranking",
    "Recommender",
    "duplicate_thresholds",
    "is_short",
    "normalize_author",
    "paper_text",
    "rank_json",
]
