"""The store: every paper, every source's cache validators, the ledger and the locks.

All SQL of digest lives in this package: `schema` (tables and migrations), `core` (opening,
transactions, papers), `ledger` (deliveries, what was sent, subscriptions, locks).
"""

from __future__ import annotations

from .core import PaperRef, Store, StoreInfo, Transaction, row_to_paper
from .ledger import Delivery
from .schema import DEFAULT_URL, MIGRATIONS

__all__ = [
    "DEFAULT_URL", "MIGRATIONS", "Delivery", "PaperRef", "Store", "StoreInfo", "Transaction",
    "row_to_paper",
]
