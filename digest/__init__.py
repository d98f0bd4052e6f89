"""digest: personalized research-paper digests.

Reads new papers from arXiv, Hugging Face and files into one store, ranks them against each
person's interest profile, and delivers a digest by email, markdown and RSS/Atom.
"""

from __future__ import annotations

__version__ = "0.1.0"
