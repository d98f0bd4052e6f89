"""Where the text model lives, and when it is fitted again.

The model (vectorizer, and the vectors of the corpus it was fitted on) is saved under
``<out_dir>/model/``. Refit policy, checked before each ranking:

- no saved model, or one of an older format: fit;
- the store holds `REFIT_GROWTH` (20%) more papers than the model was fitted on, or the model is
  older than `REFIT_DAYS` (30 days): fit again, so new vocabulary (a new method's name) counts;
- ``digest model refit``: fit now.

Between refits new papers are scored with the saved vocabulary; a term the model has never seen
simply does not count, which is why growth triggers a refit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from .model import ModelError, TextModel
from .recommend import Recommender, paper_text
from .store import Store

REFIT_GROWTH = 0.2
REFIT_DAYS = 30


@dataclass
class LoadedModel:
    model: TextModel
    corpus: sp.csr_matrix
    corpus_pids: npt.NDArray[np.int64]
    #: Why it was (re)fitted in this call, or None when it was loaded as saved.
    fitted_because: str | None = None


def model_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / "model"


def fit(store: Store, directory: Path, *, now: dt.datetime) -> LoadedModel:
    """Fit a model on every paper in the store and save it with the corpus vectors."""
    pids: list[int] = []
    texts: list[str] = []
    for paper in store.iter_papers():
        pids.append(paper.pid)
        texts.append(paper_text(paper))
    if not texts:
        raise ModelError(f"{store.url}: the store has no papers to fit a text model on; "
                         "ingest some first")
    model = TextModel().fit(texts, now=now)
    corpus = model.transform(texts)
    corpus_pids = np.array(pids, dtype=np.int64)
    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory)
    sp.save_npz(directory / "corpus.npz", corpus, compressed=False)
    np.save(directory / "corpus_pids.npy", corpus_pids)
    return LoadedModel(model, corpus, corpus_pids)


def _stale(model: TextModel, papers_now: int, now: dt.datetime) -> str | None:
    if papers_now >= model.n_docs * (1 + REFIT_GROWTH):
        return f"the store grew from {model.n_docs} to {papers_now} papers"
    if model.fitted_at and now - model.fitted_at > dt.timedelta(days=REFIT_DAYS):
        return f"the model is older than {REFIT_DAYS} days"
    return None


def ensure(store: Store, directory: Path, *, now: dt.datetime, force: bool = False,
           allow_refit: bool = True) -> LoadedModel:
    """The current model: loaded, or fitted when the refit policy (module docstring) says so."""
    reason: str | None = "asked to refit" if force else None
    loaded: LoadedModel | None = None
    if reason is None:
        try:
            model = TextModel.load(directory)
            corpus = sp.csr_matrix(sp.load_npz(directory / "corpus.npz"), dtype=np.float32)
            pids = np.load(directory / "corpus_pids.npy")
            loaded = LoadedModel(model, corpus, pids)
        except (ModelError, OSError, ValueError) as exc:
            reason = f"no usable model ({exc})"
        if loaded is not None and allow_refit:
            reason = _stale(loaded.model, store.info().papers, now)
    if reason is None and loaded is not None:
        return loaded
    fitted = fit(store, directory, now=now)
    fitted.fitted_because = reason
    return fitted


def recommender(store: Store, loaded: LoadedModel, *, first_digest_days: int) -> Recommender:
    return Recommender(store, loaded.model, first_digest_days=first_digest_days,
                       corpus=loaded.corpus, corpus_pids=loaded.corpus_pids)


class ModelCache:
    """Keeps the model loaded between runs of one process (the scheduler's batches): it is
    loaded again only when its files changed (another process refitted it) or the refit policy
    says so (then fitted, as `ensure` does)."""

    def __init__(self) -> None:
        self._mark: tuple[Any, ...] | None = None
        self._loaded: LoadedModel | None = None
        self._loads = 0

    def get(self, store: Store, directory: Path, *, now: dt.datetime) -> LoadedModel:
        loaded = self._loaded
        if (loaded is not None and self._mark == _files_mark(directory)
                and _stale(loaded.model, store.info().papers, now) is None):
            return LoadedModel(loaded.model, loaded.corpus, loaded.corpus_pids)
        loaded = ensure(store, directory, now=now)
        self._loaded, self._mark = loaded, _files_mark(directory)
        self._loads += 1
        return loaded

    @property
    def loads(self) -> int:
        """How often it loaded or fitted (for tests and benchmarks)."""
        return self._loads


def _files_mark(directory: Path) -> tuple[Any, ...]:
    """The model files' names, sizes and modification times: a refit changes them."""
    try:
        return (directory, tuple(sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns)
                                        for f in directory.iterdir() if f.is_file())))
    except OSError:
        return (directory,)
