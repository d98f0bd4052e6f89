"""Profiles in the store: the YAML folder synced, so that workers on other machines rank the same.

People keep editing the YAML files; `sync_profiles` (``digest profiles sync``, and the queue's
tick before it defers work) copies each file's text, its hash and the validated profile into the
store. Only files whose bytes changed are parsed again, so a tick over 10,000 unchanged profiles
reads and hashes them and writes nothing. A file that no longer validates keeps its last good
version in the store (the digest goes on with it) and is reported; a deleted file is removed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from ..errors import ProfileError
from ..store import Store
from .loading import ProfileSet, load_profile, profile_paths
from .model import Profile


@dataclass
class SyncReport:
    """What a sync changed in the store."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    errors: list[ProfileError] = field(default_factory=list)


def sync_profiles(store: Store, folder: str | Path, *, now: dt.datetime) -> SyncReport:
    """Bring the store's copy of the profiles up to date with `folder`."""
    report = SyncReport()
    stored = store.profile_doc_hashes()
    by_path = {path: name for name, (path, _) in stored.items()}
    upserts: list[dict[str, str]] = []
    seen: set[str] = set()
    for path in profile_paths(Path(folder)):
        try:
            data = path.read_bytes()
        except OSError as exc:
            report.errors.append(ProfileError(str(path), [
                f"{path}:1:1: profile: cannot read the file ({exc.strerror or exc})"]))
            if str(path) in by_path:
                seen.add(by_path[str(path)])  # unreadable for now: keep its last version
            continue
        digest = hashlib.sha256(data).hexdigest()
        known = by_path.get(str(path))
        if known is not None and stored[known][1] == digest:
            seen.add(known)
            report.unchanged += 1
            continue
        try:
            profile = load_profile(path)
        except ProfileError as exc:
            report.errors.append(exc)
            if known is not None:
                seen.add(known)
            continue
        if profile.name in seen:
            report.errors.append(ProfileError(str(path), [
                f"{path}:1:1: profile: another file already defines {profile.name!r}"]))
            continue
        seen.add(profile.name)
        (report.changed if profile.name in stored else report.added).append(profile.name)
        upserts.append({"name": profile.name, "path": str(path), "sha256": digest,
                        "content": data.decode("utf-8-sig"),
                        "data": json.dumps(profile.model_dump(mode="json"), ensure_ascii=False)})
    report.removed = sorted(set(stored) - seen)
    if upserts or report.removed:
        store.save_profile_docs(upserts, report.removed, now=now)
    return report


def stored_profiles(store: Store, names: Sequence[str] | None = None) -> ProfileSet:
    """The synced profiles (`names` None: all), as `load_profiles` gives a folder's."""
    profiles: list[Profile] = []
    errors: list[ProfileError] = []
    paths: dict[str, Path] = {}
    for name, path, data in store.profile_docs(names):
        try:
            profile = Profile.model_validate(json.loads(data))
        except (ValidationError, ValueError) as exc:  # synced by another version of digest
            errors.append(ProfileError(path, [f"{path}:1:1: profile: the synced copy in the "
                                              f"store is not valid here ({exc}); sync again"]))
            continue
        profiles.append(profile)
        paths[name] = Path(path)
    return ProfileSet(tuple(profiles), tuple(errors), paths)
