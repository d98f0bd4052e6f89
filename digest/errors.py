"""The exceptions digest raises: one root, and a subclass for each thing that can go wrong.

Every message names what failed and where (file, line, key, URL) so a person can act on it.
"""

from __future__ import annotations


class DigestError(Exception):
    """Root of every error digest raises on purpose."""


class SourceError(DigestError):
    """A whole source could not be read; nothing of it was stored.

    `source` names the source (a path, a URL or a named source such as ``arxiv:cs.CV``).
    """

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.message = message


class FormatError(SourceError, ValueError):
    """The input is not of the format it was read as (not JSON Lines, not an Atom feed, ...)."""


class FetchError(SourceError):
    """A network request failed for good: connection error, timeout, or an HTTP error status."""

    def __init__(self, source: str, message: str, *, status: int | None = None) -> None:
        super().__init__(source, message)
        self.status = status


class ArxivApiError(FetchError):
    """The arXiv API answered with its error feed (HTTP 400 and an entry titled ``Error``)."""


class StoreError(DigestError):
    """The database could not be opened, migrated, read or written."""


class StoreLockedError(StoreError):
    """Another process holds the database (or a named lock in it) and we may not wait."""


class StoreConflictError(StoreError):
    """Another process wrote the same thing at the same time (a unique key, a serialization
    failure, a deadlock): nothing of this transaction was written."""


class ConfigError(DigestError, ValueError):
    """The configuration file has an unknown key or a bad value (message names file:line: key)."""


class ProfileError(DigestError, ValueError):
    """A profile file is invalid. `problems` lists each one as ``file:line:col: key.path: what``."""

    def __init__(self, path: str, problems: list[str]) -> None:
        super().__init__("\n".join(problems) if problems else path)
        self.path = path
        self.problems = problems


class DeliveryError(DigestError):
    """A digest could not be delivered. `permanent` is true when retrying cannot help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
