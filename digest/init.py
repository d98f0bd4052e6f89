"""`digest init`: a new site in a folder, ready for `digest ingest sample` and `digest run`.

Writes a commented ``digest.toml``, ``profiles/`` with a starter profile (or the shipped
examples) and the profile schema beside them, and a generated link-signing secret in a file of
its own (mode 0600) that the config names, so the secret never sits in the config. Nothing is
overwritten: if any of those files exists, nothing at all is written.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .errors import DigestError
from .fsutil import write_atomically
from .profiles import load_profile, profile_json_schema
from .profiles.model import _NAME

CONFIG_NAME = "digest.toml"
SECRET_NAME = ".digest-secret"
SCHEMA_NAME = "profile.schema.json"

_CONFIG = """\
# digest's configuration. Every key is optional; relative paths are taken from the folder of
# this file, so `digest --config PATH/TO/digest.toml ...` works from anywhere.

database = "sqlite:///out/digest.sqlite"   # or postgresql+psycopg://user@host/db
profiles_dir = "profiles"                  # one YAML file per person
out_dir = "out"                            # digests, feeds, .eml files, the text model
# templates_dir = "my-templates"           # your templates override the shipped ones
first_digest_days = 7                      # a first digest looks this many days back

[http]
contact = "digest@localhost"   # your address: arXiv asks API users to send one

[email]
from = "digest <digest@localhost>"

# Without [smtp], emails are written as .eml files under out/<profile>/.
# [smtp]
# host = "smtp.example.org"
# port = 587
# security = "starttls"
# user = "digest"
# password_env = "DIGEST_SMTP_PASSWORD"   # the password only ever comes from the environment

[server]
# public_url = "https://digest.example.org"   # links in emails and feeds point here
# The secret that signs per-profile links: from $DIGEST_SECRET if set, else this file
# (written by `digest init`, readable only by you; keep it out of version control).
secret_file = "{secret}"
"""

_STARTER = """\
# yaml-language-server: $schema=./profile.schema.json
#
# {name}'s digest profile. See the examples (`digest init --examples` in another folder) for
# every key; `digest profiles check` says what is wrong, with the line.

version: 1

# Stable identity: what was sent and an unsubscribe follow it, so the file can be renamed.
id: {name}

# Where the email digest goes; without it only Markdown and RSS are written.
# email: you@example.org

# IANA time zone and standard cron schedule (minute hour day month weekday).
timezone: UTC
schedule: "0 7 * * mon-fri"

# What you want to read about: say it in plain words; add seed papers (arXiv ids) that typify
# it, or bring them from your reference manager with `digest profiles import`.
interests:
  - name: Vision-language models
    text: >-
      Large vision-language models and multimodal LLMs: benchmarks, hallucination,
      grounding and efficient inference.
    seed_papers: []

# arXiv categories to draw from (empty: every category in the store).
categories: [cs.CV, cs.CL]
"""


@dataclass(frozen=True)
class Written:
    """What `init_site` wrote, in order."""

    paths: tuple[Path, ...]
    config: Path


def init_site(folder: str | os.PathLike[str], *, examples: bool = False,
              name: str = "me") -> Written:
    """Create a site in `folder` (created if need be). Raises DigestError, writing nothing, if
    any file it would write is already there or `name` cannot name a profile."""
    import re

    if not examples and not re.match(_NAME, name):
        raise DigestError(f"{name!r} cannot name a profile: use letters, digits, '_', '.', '-'")
    root = Path(folder)
    profiles = root / "profiles"
    files: dict[Path, bytes] = {}
    if examples:
        shipped = resources.files("digest") / "examples"
        for item in sorted(shipped.iterdir(), key=lambda i: i.name):
            if item.name.endswith((".yaml", ".yml")):
                files[profiles / item.name] = item.read_bytes()
    else:
        files[profiles / f"{name}.yaml"] = _STARTER.format(name=name).encode("utf-8")
    import json

    schema = json.dumps(profile_json_schema(), indent=2, ensure_ascii=False) + "\n"
    files[profiles / SCHEMA_NAME] = schema.encode("utf-8")
    files[root / CONFIG_NAME] = _CONFIG.format(secret=SECRET_NAME).encode("utf-8")
    secret_path = root / SECRET_NAME
    there = [str(p) for p in [*files, secret_path] if p.exists() or p.is_symlink()]
    if there:
        raise DigestError(f"{', '.join(there)} already exist{'s' if len(there) == 1 else ''}; "
                          "init writes nothing over existing files (choose another folder)")
    try:
        profiles.mkdir(parents=True, exist_ok=True)
        # The secret first, created exclusively with mode 0600 (never readable by others, not
        # even for a moment, whatever the umask).
        fd = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
        for path, data in files.items():
            write_atomically(path, data)
    except OSError as exc:
        where = exc.filename or folder
        raise DigestError(f"{where}: cannot write: {exc.strerror or exc}") from None
    for path in files:
        if path.suffix == ".yaml":
            load_profile(path)  # what init writes must load: a failure here is a bug
    return Written((secret_path, *files), root / CONFIG_NAME)
