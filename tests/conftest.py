"""Shared test fixtures: where the team's real data lives, a fixed clock, a fresh store."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: ../shared beside the checkout: real papers and recorded API responses.
SHARED = ROOT.parent / "shared"
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is not beside the checkout")
    return SHARED


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty folder with no DIGEST_* settings from the environment, so no
    ./digest.toml, ./out or database of the checkout or the shell is used. Command-line tests
    take it for the whole module (``pytestmark = pytest.mark.usefixtures("scratch")``)."""
    monkeypatch.chdir(tmp_path)
    for name in ("DIGEST_DB", "DIGEST_CONFIG", "DIGEST_PROFILES", "DIGEST_SECRET"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


# A real SMTP server on loopback (aiosmtpd), scriptable per test: see tests/smtp_server.py.
from smtp_server import smtp_server  # noqa: E402, F401

# Both store backends (SQLite, a PostgreSQL server on loopback): see tests/stores.py.
from stores import backend_kind, module_backend, store_backend, store_url  # noqa: E402, F401

# The store of three weeks of real papers and its model, built once (`world_template`), copied
# per test (`world`): tests/test_recommend.py, used by the explain and calibration tests too.
from test_recommend import world, world_backend, world_template  # noqa: E402, F401
