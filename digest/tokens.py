"""Unguessable per-profile tokens for links in emails and feed URLs.

A token is the profile name and an HMAC-SHA256 of it under the configured secret:
``<name>.<signature>``. Only the server that knows the secret can make or check one, so a feed
URL cannot be guessed from a name, and a tampered token is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

_PURPOSE = b"digest-profile-token-v1:"


def _signature(secret: str, profile: str) -> str:
    mac = hmac.new(secret.encode("utf-8"), _PURPOSE + profile.encode("utf-8"), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()[:18]).decode("ascii")


def make_token(secret: str, profile: str) -> str:
    if not secret:
        raise ValueError("a token needs a non-empty secret")
    return f"{profile}.{_signature(secret, profile)}"


def verify_token(secret: str, token: str) -> str | None:
    """The profile a token stands for, or None when it is malformed or not ours."""
    if not secret or "." not in token:
        return None
    profile, _, signature = token.rpartition(".")
    if not profile:
        return None
    expected = _signature(secret, profile)
    return profile if hmac.compare_digest(expected, signature) else None
