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


# A real SMTP server on loopback (aiosmtpd), scriptable per test: see tests/smtp_server.py.
from smtp_server import smtp_server  # noqa: E402, F401

# Both store backends (SQLite, a PostgreSQL server on loopback): see tests/stores.py.
from stores import backend_kind, module_backend, store_backend, store_url  # noqa: E402, F401

# The store of three weeks of real papers and its model, built once (`world_template`), copied
# per test (`world`): tests/test_recommend.py, used by the explain and calibration tests too.
from test_recommend import world, world_backend, world_template  # noqa: E402, F401
