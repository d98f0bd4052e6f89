"""Reader profiles: what a person wants in their digest, kept in a YAML file they edit.

A profile is a YAML file named after its owner (``profiles/ada.yaml`` is the profile "ada").
People write these by hand, so every problem in a file is reported at once, each with the
``file:line:col``, the key and what was expected. The file is read with ruamel.yaml in
round-trip mode (YAML 1.2: ``no`` stays a string; duplicate keys are an error) because the same
positions it keeps for error messages let `add_feedback` write a liked paper back without
disturbing the comments, order and quoting the person chose.
"""

from .feedback import add_feedback, add_seed_papers, seed_conflict
from .loading import ProfileSet, load_profile, load_profiles
from .model import DEFAULT_MIN_RELEVANCE, MIN_SCORE_DEPRECATED, Interest, Profile
from .schema import profile_json_schema, write_schema

__all__ = [
    "DEFAULT_MIN_RELEVANCE",
    "MIN_SCORE_DEPRECATED",
    "Interest",
    "Profile",
    "ProfileSet",
    "add_feedback",
    "add_seed_papers",
    "load_profile",
    "load_profiles",
    "profile_json_schema",
    "seed_conflict",
    "write_schema",
]
