"""The profiles folder as the server sees it: each file read once, again only when it changes.

A request names one profile, so it costs two ``stat`` calls (the folder, that file) whatever
the number of profiles. The folder's own mtime changes when a file is added, removed or
replaced (editors and `add_feedback` write a temporary file and rename it): only then is the
folder listed again. A file edited in place changes its mtime, size or inode: only then is it
parsed again.

Timestamps are coarse (a kernel tick): two changes in one tick can leave the same mtime. Like
git's "racy" check, a listing or a parse is trusted only once its mtime is `RACY_NS` old.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ProfileError
from ..profiles import Profile, load_profile

_SUFFIXES = (".yaml", ".yml")
#: How old an mtime must be before a cached read of it is trusted (nanoseconds).
RACY_NS = 2_000_000_000


@dataclass(frozen=True)
class Entry:
    path: Path
    #: None while the file has errors (see `error`).
    profile: Profile | None
    error: ProfileError | None


def _signature(st: os.stat_result) -> tuple[int, int, int] | None:
    """What identifies this version of a file, or None when it is too fresh to tell."""
    if time.time_ns() - st.st_mtime_ns < RACY_NS:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


class ProfileCache:
    """Profiles of one folder by name, as `load_profiles` would find them."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self._lock = threading.Lock()
        self._listed: tuple[int, int, int] | None = None
        self._paths: dict[str, Path] = {}
        self._entries: dict[Path, tuple[tuple[int, int, int], Entry]] = {}

    def get(self, name: str) -> Entry | None:
        """The profile `name` (or its file's error); None when there is no such file.

        A profile is named by its `id` when it has one (its links outlive a rename), else by
        its file: the file of that name is tried first, then, only on a miss, every file."""
        path = self._names().get(name)
        entry = self._entry(path) if path is not None else None
        if entry is not None and (entry.profile is None or entry.profile.name == name):
            return entry
        for other in self._names().values():
            found = self._entry(other)
            if found is not None and found.profile is not None and found.profile.name == name:
                return found
        return None

    def _entry(self, path: Path) -> Entry | None:
        try:
            signature = _signature(path.stat())
        except OSError:
            return None  # removed since the folder was listed
        with self._lock:
            cached = self._entries.get(path)
        if cached is not None and signature is not None and cached[0] == signature:
            return cached[1]
        try:
            entry = Entry(path, load_profile(path), None)
        except ProfileError as exc:
            entry = Entry(path, None, exc)
        if signature is not None:
            with self._lock:
                self._entries[path] = (signature, entry)
        return entry

    def _names(self) -> dict[str, Path]:
        try:
            st = self.folder.stat()
        except OSError:
            return {}
        listed = _signature(st)
        with self._lock:
            if listed is not None and listed == self._listed:
                return self._paths
        paths: dict[str, Path] = {}
        # Sorted, so that of ada.yaml and ada.yml the first is the profile, as in a run.
        for file in sorted(self.folder.iterdir()):
            if file.suffix in _SUFFIXES and not file.name.startswith(".") and file.is_file():
                paths.setdefault(file.stem, file)
        with self._lock:
            self._listed, self._paths = listed, paths
            # Forget files that are gone, so a folder that churns does not grow the cache.
            known = set(paths.values())
            self._entries = {p: e for p, e in self._entries.items() if p in known}
        return paths
