"""Loading profiles: one file, or a folder where one bad file never stops the others."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError
from ruamel.yaml.comments import CommentedMap

from digest.errors import ProfileError

from .model import Profile
from .problems import key_path, line_col, position, start, what
from .yamlio import plain, read_yaml


@dataclass(frozen=True, slots=True)
class ProfileSet:
    """The profiles of a directory: the good ones, and an error for each bad file."""

    profiles: tuple[Profile, ...] = ()
    errors: tuple[ProfileError, ...] = ()
    #: The file each good profile came from, by profile name (for `add_feedback`).
    paths: Mapping[str, Path] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def get(self, name: str) -> Profile | None:
        return next((p for p in self.profiles if p.name == name), None)


def load_profile(path: str | os.PathLike[str]) -> Profile:
    """Read and validate one profile; its name is its `id` key, else the file name without
    extension (so a profile with an `id` keeps its ledger and subscription when renamed).

    Raises ProfileError listing every problem in the file as ``file:line:col: key: what``.
    """
    path = Path(path)
    root, text = read_yaml(path)
    where = str(path)
    if root is None:
        raise ProfileError(
            where, [f"{where}:1:1: profile: the file has no keys; start with 'version: 1'"]
        )
    if not isinstance(root, CommentedMap):
        line, col = start(root)
        raise ProfileError(
            where, [f"{where}:{line + 1}:{col + 1}: profile: must be a mapping of keys"]
        )
    data = plain(root, text.splitlines())
    problems: list[str] = []
    if "name" in data:
        line, col = root.lc.key("name")
        problems.append(
            f"{where}:{line + 1}:{col + 1}: name: not a key here; "
            f"the profile is named after its file ({path.stem!r})"
        )
        del data["name"]
    try:
        profile = Profile.model_validate({**data, "name": path.stem})
        if profile.id is not None:  # the stable identity wins over the file name
            profile = profile.model_copy(update={"name": profile.id})
    except ValidationError as exc:
        for error in exc.errors():
            line, col = position(root, error["loc"])
            problems.append(
                f"{where}:{line + 1}:{col + 1}: {key_path(error['loc'])}: {what(error)}"
            )
    if problems:
        problems.sort(key=line_col)
        raise ProfileError(where, problems)
    return profile


def load_profiles(
    source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
) -> ProfileSet:
    """Load every ``*.yaml``/``*.yml`` of a directory (sorted), or the files given.

    One bad file never stops the others: its ProfileError is in `errors`, the rest are loaded.
    Two files naming the same profile (``ada.yaml`` and ``ada.yml``) are an error for the second.
    """
    if isinstance(source, str | os.PathLike):
        source = Path(source)
        paths = profile_paths(source) if source.is_dir() else [source]
    else:
        paths = [Path(p) for p in source]
    profiles: list[Profile] = []
    errors: list[ProfileError] = []
    found: dict[str, Path] = {}
    for path in paths:
        try:
            profile = load_profile(path)
        except ProfileError as exc:
            errors.append(exc)
            continue
        if profile.name in found:
            problem = f"{path}:1:1: profile: {found[profile.name]} already defines {profile.name!r}"
            errors.append(ProfileError(str(path), [problem]))
            continue
        found[profile.name] = path
        profiles.append(profile)
    return ProfileSet(tuple(profiles), tuple(errors), found)


def profile_paths(folder: Path) -> list[Path]:
    """The profile files of a folder (``*.yaml``, ``*.yml``; not hidden ones), sorted."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix in (".yaml", ".yml") and not p.name.startswith(".") and p.is_file()
    )
