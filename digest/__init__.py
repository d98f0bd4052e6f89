"""digest: personalized research-paper digests.

Reads new papers from arXiv, Hugging Face and files into one store, ranks them against each
person's interest profile, and delivers a digest by email, markdown and RSS/Atom.

The library's surface: `DigestApp` (every job: ingest, rank, run), the data types, the errors.
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

# The surface is imported on first use, so that `digest --version` (and anything else that
# only needs a corner of the package) does not pay for scikit-learn and SQLAlchemy.
_WHERE = {
    "DigestApp": "app", "Config": "config", "load_config": "config",
    "Interest": "profiles", "Profile": "profiles", "load_profiles": "profiles",
    **dict.fromkeys(("ConfigError", "DeliveryError", "DigestError", "FetchError",
                     "FormatError", "ProfileError", "SourceError", "StoreError",
                     "StoreLockedError"), "errors"),
    **dict.fromkeys(("Digest", "Paper", "RawPaper", "Recommendation", "Rejected",
                     "SourceResult", "Why"), "types"),
}

if TYPE_CHECKING:
    from .app import DigestApp
    from .config import Config, load_config
    from .errors import (
        ConfigError,
        DeliveryError,
        DigestError,
        FetchError,
        FormatError,
        ProfileError,
        SourceError,
        StoreError,
        StoreLockedError,
    )
    from .profiles import Interest, Profile, load_profiles
    from .types import Digest, Paper, RawPaper, Recommendation, Rejected, SourceResult, Why


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'digest' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "Config", "ConfigError", "DeliveryError", "Digest", "DigestApp", "DigestError",
    "FetchError", "FormatError", "Interest", "Paper", "Profile", "ProfileError", "RawPaper",
    "Recommendation", "Rejected", "SourceError", "SourceResult", "StoreError",
    "StoreLockedError", "Why", "__version__", "load_config", "load_profiles",
]
