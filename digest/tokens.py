"""Unguessable per-profile tokens for the links in emails, feeds and the personal page.

A token says who (the profile), what for (its purpose) and under which key it was signed::

    <name>.<purpose letter><key id>.<signature>      e.g.  ada.f3a9c1.Qm9...

- **Purpose.** ``feed`` tokens go into feed URLs, which people hand to feed-reader services:
  they read (feeds, past digests) and nothing else. ``act`` tokens go into the links a person
  follows from their own mail (the personal page, feedback, unsubscribe). ``vote`` tokens are
  bound to one paper and only record a like or dislike of it: they are what "more/less like
  this" links carry, in emails and in feed entries alike, so a feed's content gives away no
  more than its URL does. The purpose (and a vote's paper) is part of what is signed, so no
  token can be turned into another.
- **Rotation.** A `Keyring` signs with its current key and also accepts tokens signed by its
  previous keys, until the end of a grace period: links already mailed keep working while new
  mail carries links under the new key. The key id (a hash of the key, not the key) picks the
  key to check against, so checking costs one HMAC whatever the number of keys.
- **Legacy.** Tokens made before purposes existed (``<name>.<signature>``, v1) are accepted for
  the purposes `LEGACY_PURPOSES` only: they were mailed as feed, archive and unsubscribe links,
  and one-click unsubscribe must keep working for mail already sent. They never give feedback
  or open the personal page. Rotating the key retires them after the grace period.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

Purpose = Literal["feed", "act", "vote", "legacy"]
#: What a v1 token (no purpose) may still do.
LEGACY_PURPOSES: frozenset[Purpose] = frozenset({"feed", "legacy"})

_V1 = b"digest-profile-token-v1:"
_V2 = b"digest-token-v2:"
_LETTER: dict[str, Purpose] = {"f": "feed", "a": "act", "v": "vote"}


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).decode("ascii")


def key_id(secret: str) -> str:
    """A short public name of a key: 6 url-safe characters of a hash of it."""
    return _b64(hashlib.sha256(b"digest-key-id:" + secret.encode("utf-8")).digest()[:6])[:6]


def _signature(secret: str, message: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), message, hashlib.sha256)
    return _b64(mac.digest()[:18])


@dataclass(frozen=True)
class Keyring:
    """The key that signs new links, and the earlier keys that still verify old ones."""

    current: str
    #: Keys used before `current`, still accepted until `previous_until` (inclusive).
    previous: tuple[str, ...] = ()
    #: The last day (UTC) the previous keys are accepted; None: as long as they are listed.
    previous_until: dt.date | None = None

    def __post_init__(self) -> None:
        if not self.current:
            raise ValueError("a token needs a non-empty secret")

    def sign(self, profile: str, purpose: Literal["feed", "act"]) -> str:
        letter = "f" if purpose == "feed" else "a"
        return self._sign(profile, letter, _message(letter, profile, None))

    def sign_vote(self, profile: str, paper: str) -> str:
        """A token that only likes or dislikes `paper` (its key, as the link's query has it)."""
        return self._sign(profile, "v", _message("v", profile, paper))

    def _sign(self, profile: str, letter: str, message: bytes) -> str:
        return f"{profile}.{letter}{key_id(self.current)}.{_signature(self.current, message)}"

    def keys(self, today: dt.date) -> tuple[str, ...]:
        """The keys accepted on `today`: the current one, then the previous ones in grace."""
        if self.previous_until is not None and today > self.previous_until:
            return (self.current,)
        return (self.current, *(k for k in self.previous if k))

    def verify(self, token: str, purposes: Collection[Purpose], *, today: dt.date,
               paper: str | None = None) -> str | None:
        """The profile a token stands for when it is ours and made for one of `purposes` (a
        vote token: for `paper`); None when it is malformed, forged, for another purpose or
        paper, or under a retired key."""
        keys = self.keys(today)
        parts = token.rsplit(".", 2)
        if len(parts) == 3 and parts[0] and len(parts[1]) == 7:
            profile, tag, signature = parts
            purpose = _LETTER.get(tag[0])
            if purpose is not None and purpose in purposes and (
                purpose != "vote" or paper is not None
            ):
                message = _message(tag[0], profile, paper if purpose == "vote" else None)
                for key in keys:
                    if key_id(key) == tag[1:] and hmac.compare_digest(
                        _signature(key, message), signature
                    ):
                        return profile
        # A v1 token (or a v2 one that did not verify, read as v1: it fails the same way).
        if not purposes or not any(p in LEGACY_PURPOSES for p in purposes):
            return None
        profile, _, signature = token.rpartition(".")
        if not profile:
            return None
        message = _V1 + profile.encode("utf-8")
        if any(hmac.compare_digest(_signature(k, message), signature) for k in keys):
            return profile
        return None


def _message(letter: str, profile: str, paper: str | None) -> bytes:
    # The profile's length first: no name and paper can be cut apart another way.
    tail = "" if paper is None else f":{paper}"
    return _V2 + f"{letter}:{len(profile)}:{profile}{tail}".encode()


def make_token(secret: str, profile: str, purpose: Literal["feed", "act"] = "act") -> str:
    """A token for `profile` and `purpose` under a single key (see `Keyring.sign`)."""
    return Keyring(secret).sign(profile, purpose)


def make_legacy_token(secret: str, profile: str) -> str:
    """A v1 token, as digests mailed before purposes existed carry (for tests and tools)."""
    if not secret:
        raise ValueError("a token needs a non-empty secret")
    return f"{profile}.{_signature(secret, _V1 + profile.encode('utf-8'))}"
