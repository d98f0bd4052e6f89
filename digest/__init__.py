"""digest: personalized research-paper digests.

Reads new papers from arXiv, Hugging Face and files into one store, ranks them against each
person's interest profile, and delivers a digest by email, markdown and RSS/Atom.

The library's surface: `DigestApp` (every job: ingest, rank, run), the data types, the errors.
"""

from __future__ import annotations

__version__ = "0.1.0"

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

__all__ = [
    "Config", "ConfigError", "DeliveryError", "Digest", "DigestApp", "DigestError",
    "FetchError", "FormatError", "Interest", "Paper", "Profile", "ProfileError", "RawPaper",
    "Recommendation", "Rejected", "SourceError", "SourceResult", "StoreError",
    "StoreLockedError", "Why", "__version__", "load_config", "load_profiles",
]
