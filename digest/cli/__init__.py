"""The command line: a thin layer that parses arguments, calls the library, prints.

Results go to stdout (``--json`` for programs), progress and logs to stderr. Exit status: 0 all
went well, 1 something failed or was rejected, 2 the command line itself was wrong (an unknown
profile name included). Every command takes -v/-q.
"""

from __future__ import annotations

from ..sources.resolve import SAMPLE, sample_path
from . import digests, imports, ingest, profiles, queue, service  # noqa: F401  (commands)
from .group import main

__all__ = ["SAMPLE", "main", "sample_path"]
