"""A saved model belongs to its store: another store's model, one of another scikit-learn or a
store that lost papers is fitted again, with one line saying why; a fit reports progress."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import warnings
from pathlib import Path

import pytest
import sqlalchemy as sa
from stores import Backend, make_backend

from digest.cli import sample_path
from digest.ingest import IngestContext, ingest
from digest.modelstore import FitProgress, ensure
from digest.sources.resolve import FileSource
from digest.store import MIGRATIONS, Store

NOW = dt.datetime(2026, 7, 2, tzinfo=dt.UTC)
#: For the tests about the saved model's files (versions, pickles, sizes): the store only counts
#: and reads papers there, which the tests binding a model to its store do on both backends.
FILES = make_backend("sqlite")


def filled_store(tmp_path: Path, backend: Backend, name: str, *, keep: slice) -> Store:
    """A store of part of the bundled sample (different parts make different stores)."""
    with gzip.open(sample_path(), "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()[keep]
    path = tmp_path / f"{name}.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    store = Store.open(backend.new_url(tmp_path, name))
    (result,) = ingest(store, [FileSource(str(path), "jsonl")],
                       IngestContext(now=NOW, today=NOW.date()))
    assert result.ok and result.new == len(lines)
    return store


def test_each_store_has_its_own_id_kept_across_opens(
    tmp_path: Path, store_backend: Backend
) -> None:
    url_a, url_b = store_backend.new_url(tmp_path, "a"), store_backend.new_url(tmp_path, "b")
    with Store.open(url_a) as a, Store.open(url_b) as b:
        first_a, first_b = a.store_id, b.store_id
    assert first_a != first_b and len(first_a) == 32
    with Store.open(url_a) as a:
        assert a.store_id == first_a


def test_a_store_made_before_ids_gets_one_when_opened(store_url: str) -> None:
    url = store_url  # empty: a SQLite file not made yet, a PostgreSQL database with no tables
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # as schema version 2 left it (migration 3 made `meta`)
        for migration in MIGRATIONS[:2]:
            migration(conn)
        conn.execute(sa.text("CREATE TABLE schema_version (version INTEGER NOT NULL)"))
        conn.execute(sa.text("INSERT INTO schema_version VALUES (2)"))
    engine.dispose()
    with Store.open(url) as store:
        assert len(store.store_id) == 32
        assert store.info().schema_version == len(MIGRATIONS)


def test_two_stores_one_out_dir_each_ranks_with_its_own_model(
    tmp_path: Path, store_backend: Backend
) -> None:
    model_dir = tmp_path / "out" / "model"
    lines: list[str] = []
    with filled_store(tmp_path, store_backend, "a", keep=slice(0, 250)) as a, \
            filled_store(tmp_path, store_backend, "b", keep=slice(250, None)) as b:
        fitted_a = ensure(a, model_dir, now=NOW, notify=lines.append)
        assert fitted_a.fitted_because == "no saved model yet"
        again = ensure(a, model_dir, now=NOW, notify=lines.append)
        assert again.fitted_because is None
        assert lines[0] == "fitting the text model on 250 papers (no saved model yet)"
        assert len(lines) == 2 and lines[1].startswith("fitted the text model on 250 papers")

        lines.clear()
        # B has more papers than A, yet not 20% more: only the binding notices.
        fitted_b = ensure(b, model_dir, now=NOW, notify=lines.append, allow_refit=False)
        assert fitted_b.fitted_because == (
            f"the saved model was fitted on another store (id {a.store_id}, this one is "
            f"{b.store_id})")
        assert lines[0] == f"fitting the text model on {b.info().papers} papers " \
                           f"({fitted_b.fitted_because})"
        assert set(fitted_b.corpus_pids) == {p.pid for p in b.iter_papers()}

        # And back: A's model was overwritten by B's, so A is fitted again, not misranked.
        back = ensure(a, model_dir, now=NOW, notify=lines.append)
        assert back.fitted_because is not None and "another store" in back.fitted_because
        assert back.model.store_id == a.store_id


def test_a_model_of_another_scikit_learn_is_refitted_without_a_warning(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    with filled_store(tmp_path, FILES, "a", keep=slice(0, 120)) as store:
        ensure(store, model_dir, now=NOW, notify=lambda line: None)
        meta = json.loads((model_dir / "meta.json").read_text())
        meta["sklearn_version"] = "1.0.2"
        (model_dir / "meta.json").write_text(json.dumps(meta))
        lines: list[str] = []
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # any warning fails the test
            loaded = ensure(store, model_dir, now=NOW, notify=lines.append)
    assert loaded.fitted_because is not None
    assert "pickled by scikit-learn 1.0.2, this is" in loaded.fitted_because
    assert lines[0].startswith("fitting the text model on 120 papers (the saved model is "
                               "unusable: ")


def test_a_pickle_that_warns_is_still_loaded_silently(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """scikit-learn warns when unpickling an estimator pickled by another version; meta.json
    says which version wrote it, but a hand-copied pickle could disagree: no warning shows."""
    import sklearn.base

    model_dir = tmp_path / "model"
    with filled_store(tmp_path, FILES, "a", keep=slice(0, 120)) as store:
        monkeypatch.setattr(sklearn.base, "__version__", "1.0.2")  # what the pickle records
        ensure(store, model_dir, now=NOW, notify=lambda line: None)
        monkeypatch.undo()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            loaded = ensure(store, model_dir, now=NOW, notify=lambda line: None)
    assert loaded.fitted_because is None


def test_a_store_with_fewer_papers_than_the_model_is_refitted(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    with filled_store(tmp_path, FILES, "a", keep=slice(0, 120)) as store:
        ensure(store, model_dir, now=NOW, notify=lambda line: None)
        meta = json.loads((model_dir / "meta.json").read_text())
        meta["n_docs"] = 500  # as if fitted on more papers than the store holds
        (model_dir / "meta.json").write_text(json.dumps(meta))
        loaded = ensure(store, model_dir, now=NOW, notify=lambda line: None)
    assert loaded.fitted_because in (
        "the saved model was fitted on 500 papers, the store holds 120",
        "the saved model's files do not belong together")


def test_progress_lines_are_rate_limited() -> None:
    lines: list[str] = []
    now = [0.0]
    progress = FitProgress(lines.append, interval=2.0, clock=lambda: now[0])
    progress.line("fitting the text model on 10 papers")
    for step in range(10):
        now[0] = step * 0.5
        progress("reading and tokenizing", step, 10)
    assert lines == ["fitting the text model on 10 papers",
                     "fitting the text model: reading and tokenizing, 4 of 10 papers",
                     "fitting the text model: reading and tokenizing, 8 of 10 papers"]
