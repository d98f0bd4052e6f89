"""A queue site for tests and bench/queue_workers.py: a PostgreSQL store with the bundled sample
and its model, N generated email profiles, and the workers' digest.toml."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

from test_crash import TOPICS  # the crash test's profiles follow the same topics

from digest.app import DigestApp
from digest.cli import sample_path
from digest.config import Config
from digest.sources.resolve import FileSource

DAY = "2026-07-01"  # the sample's last day


def make_site(root: Path, url: str) -> None:
    """The bundled sample in the store at `url` (as `digest ingest sample` on 2026-07-01) and
    its fitted model under `root`/out."""
    app = DigestApp(Config(out_dir=str(root / "out")), url, str(root / "profiles"))
    (result,) = app.ingest([FileSource(sample_path(), "jsonl")],
                           today=dt.date.fromisoformat(DAY))
    assert result.ok, result
    with app.open_store() as store:
        app.model(store)


def write_profiles(folder: Path, count: int) -> list[str]:
    """`count` email profiles following two topics each; their names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        name = f"p{i:05d}"
        interests = [TOPICS[i % len(TOPICS)], TOPICS[(i * 7 + 3) % len(TOPICS)]]
        (folder / f"{name}.yaml").write_text(
            f"version: 1\nemail: {name}@example.org\nformats: [email]\nmax_papers: 5\n"
            f"min_relevance: 0.0\ninterests: {json.dumps(list(dict.fromkeys(interests)))}\n",
            encoding="utf-8")
        names.append(name)
    return names


def write_config(root: Path, port: int, **queue: float) -> Path:
    """The workers' digest.toml: SMTP on loopback `port` (no retries in the transport: a
    temporary failure leaves the digest pending and its send job runs again), and `queue`."""
    path = root / "digest.toml"
    lines = [f"out_dir = {json.dumps(str(root / 'out'))}",
             "[email]", 'from = "Paper Digest <digest@example.org>"',
             "[smtp]", 'host = "127.0.0.1"', f"port = {port}", 'security = "none"',
             "retries = 0", "timeout = 10", "[queue]"]
    lines += [f"{key} = {value}" for key, value in queue.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def digest_cli(root: Path, url: str, *args: str) -> list[str]:
    """The argv of the real `digest` command on this site."""
    return [sys.executable, "-m", "digest.cli", "--db", url,
            "--config", str(root / "digest.toml"), "--profiles", str(root / "profiles"), *args]
