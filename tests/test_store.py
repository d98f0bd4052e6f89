"""The store: schema migrations, SQLite settings, transactions, and errors that name the URL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from digest.errors import StoreError
from digest.http import Validators
from digest.store import MIGRATIONS, Store

NOW = dt.datetime(2026, 6, 8, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store.open(store_url) as store:
        yield store


def paper_row(key: str, title: str = "A Paper") -> dict[str, object]:
    return {
        "key": key, "arxiv_id": None, "version": None, "title": title, "abstract": "",
        "title_raw": title, "abstract_raw": "", "norm_title": title.lower(), "authors": "[]",
        "categories": "[]", "announced": "2026-06-08", "first_seen": NOW, "updated_at": NOW,
        "url": None, "content_hash": "0" * 40,
    }


def schema_versions(store: Store) -> list[int]:
    with store.engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT version FROM schema_version")).scalars())


# --- migrations -----------------------------------------------------------------------------


def test_a_new_database_gets_the_latest_schema(store: Store) -> None:
    assert store.info().schema_version == len(MIGRATIONS)
    assert schema_versions(store) == [len(MIGRATIONS)]
    tables = set(sa.inspect(store.engine).get_table_names())
    assert {"papers", "paper_sources", "http_cache", "schema_version"} <= tables


def test_reopening_a_database_changes_nothing(store_url: str) -> None:
    with Store.open(store_url) as store, store.transaction() as tx:
        tx.insert_papers([paper_row("2501.00001")])

    with Store.open(store_url) as again:
        assert schema_versions(again) == [len(MIGRATIONS)]
        assert again.info().papers == 1
        paper = again.get_paper("2501.00001")
        assert paper is not None
        assert paper.first_seen == NOW


def test_a_database_from_a_newer_digest_is_refused(store_url: str) -> None:
    url = store_url
    with Store.open(url) as store, store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE schema_version SET version = :v"),
                     {"v": len(MIGRATIONS) + 1})

    with pytest.raises(StoreError) as caught:
        Store.open(url)

    message = str(caught.value)
    assert message.startswith(f"{url}: schema version {len(MIGRATIONS) + 1} is newer")
    assert message.endswith("upgrade digest")


def columns(store: Store) -> dict[str, list[str]]:
    inspector = sa.inspect(store.engine)
    return {table: sorted(c["name"] for c in inspector.get_columns(table))
            for table in sorted(inspector.get_table_names())}


# --- SQLite settings ------------------------------------------------------------------------


def test_sqlite_runs_in_wal_mode_with_foreign_keys_on(store: Store) -> None:
    if store.engine.dialect.name != "sqlite":
        pytest.skip("SQLite settings")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_postgresql_statements_wait_for_locks_and_run_for_a_bounded_time(store: Store) -> None:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL settings")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "30s"
        assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "10min"


def test_foreign_keys_are_enforced(store: Store) -> None:
    fk = "FOREIGN KEY constraint failed|violates foreign key constraint"
    with pytest.raises(StoreError, match=fk), \
            store.transaction() as tx:
        tx.add_sources([(999, "file")])


# --- transactions ---------------------------------------------------------------------------


def test_a_transaction_that_raises_leaves_nothing_behind(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.insert_papers([paper_row("2501.00001")])
        tx.save_validators("https://example.org/feed", Validators('"e"'), NOW)
        raise RuntimeError("the source broke half way")

    assert store.info().papers == 0
    assert store.validators("https://example.org/feed") is None


def test_insert_papers_returns_pids_in_the_order_given(store: Store) -> None:
    with store.transaction() as tx:
        first = tx.insert_papers([paper_row("b"), paper_row("a")])
        second = tx.insert_papers([paper_row("c")])

    with store.engine.connect() as conn:
        pids = dict(conn.execute(sa.text("SELECT key, pid FROM papers")).all())
    assert first + second == [pids["b"], pids["a"], pids["c"]]
    assert len(set(first + second)) == 3


def test_validators_are_replaced_and_empty_ones_forget_the_url(store: Store) -> None:
    url = "https://rss.arxiv.org/rss/cs.CV"
    with store.transaction() as tx:
        tx.save_validators(url, Validators('"a"', "Mon, 08 Jun 2026 04:00:02 GMT"), NOW)
    assert store.validators(url) == Validators('"a"', "Mon, 08 Jun 2026 04:00:02 GMT")

    with store.transaction() as tx:
        tx.save_validators(url, Validators('"b"'), NOW)
    assert store.validators(url) == Validators('"b"', None)

    with store.transaction() as tx:
        tx.save_validators(url, Validators(), NOW)
    assert store.validators(url) is None


# --- errors name the URL --------------------------------------------------------------------


def test_a_database_whose_folder_cannot_be_made_is_an_error_naming_the_url(
    tmp_path: Path,
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    url = f"sqlite:///{tmp_path}/a-file/d.sqlite"

    with pytest.raises(StoreError, match="cannot create its folder") as caught:
        Store.open(url)

    assert str(caught.value).startswith(f"{url}: ")


def test_a_database_that_cannot_be_opened_is_an_error_naming_the_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}"  # a folder, not a file

    with pytest.raises(StoreError, match="unable to open database file") as caught:
        Store.open(url)

    assert str(caught.value).startswith(f"{url}: ")


def test_a_url_that_is_not_a_database_url_is_an_error() -> None:
    with pytest.raises(StoreError, match="not a database URL"):
        Store.open("out/digest.sqlite")
