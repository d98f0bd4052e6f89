"""The request and response of the web app, and the few HTTP rules it applies by hand."""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from wsgiref.types import WSGIEnvironment

from ..profiles import Profile

HTML = "text/html; charset=utf-8"
#: A POST body larger than this is refused (one-click and vote bodies are a few dozen bytes).
MAX_BODY = 64 * 1024
# What the log shows instead of a token: a token in a log is a key to that profile.
_TOKEN_IN_PATH = re.compile(r"(/(?:feeds|unsubscribe|feedback|digests|p)/)[^/?#\s]+")


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = HTML
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Request:
    method: str
    segments: tuple[str, ...]
    query: Mapping[str, list[str]]
    environ: WSGIEnvironment


@dataclass(frozen=True)
class Who:
    """The profile a request's token stands for, once checked."""

    token: str
    name: str
    #: Its file. The profile itself is None while the file has errors: unsubscribing, votes
    #: and past digests still work then; only the feeds and the page need a valid profile.
    path: Path
    profile: Profile | None


def read_body(environ: WSGIEnvironment) -> bytes | None:
    """The request body, or None when it is larger than MAX_BODY. (The server has read the
    whole body before the app runs: a body shorter than its Content-Length never gets here.)"""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > MAX_BODY:
        return None
    return environ["wsgi.input"].read(length) if length > 0 else b""


def not_modified(environ: WSGIEnvironment, etag: str, newest: dt.datetime | None) -> bool:
    """Whether a conditional GET can be answered 304 (RFC 9110 13.2.2: If-None-Match wins)."""
    if_none_match = environ.get("HTTP_IF_NONE_MATCH")
    if if_none_match is not None:
        tags = {t.strip().removeprefix("W/") for t in str(if_none_match).split(",")}
        return "*" in tags or etag in tags
    since = environ.get("HTTP_IF_MODIFIED_SINCE")
    if since is None or newest is None:
        return False
    try:
        when = email.utils.parsedate_to_datetime(str(since))
    except (TypeError, ValueError):
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return newest.replace(microsecond=0) <= when


def redact(path: str) -> str:
    return _TOKEN_IN_PATH.sub(r"\1<token>", path)
