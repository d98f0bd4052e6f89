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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from .errors import StoreLockedError
from .model import ModelError, TextModel
from .recommend import Recommender, paper_text
from .store import Store

REFIT_GROWTH = 0.2
REFIT_DAYS = 30
#: How long a process waits for another one's fit before it gives up (a fit of the whole
#: corpus takes minutes).
FIT_WAIT_S = 30 * 60


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
        loaded, reason = _load(store, directory, now=now, allow_refit=allow_refit)
    if reason is None and loaded is not None:
        return loaded
    result, fitted = _fit_alone(store, directory, now=now, recheck=not force and allow_refit)
    result.fitted_because = reason if fitted else None
    return result


def _load(store: Store, directory: Path, *, now: dt.datetime,
          allow_refit: bool = True) -> tuple[LoadedModel | None, str | None]:
    """The saved model, and why it must be fitted again (None: it need not)."""
    try:
        model = TextModel.load(directory)
        corpus = sp.csr_matrix(sp.load_npz(directory / "corpus.npz"), dtype=np.float32)
        pids = np.load(directory / "corpus_pids.npy")
    except (ModelError, OSError, ValueError) as exc:
        return None, f"no usable model ({exc})"
    loaded = LoadedModel(model, corpus, pids)
    return loaded, _stale(model, store.info().papers, now) if allow_refit else None


def _fit_alone(store: Store, directory: Path, *, now: dt.datetime,
               recheck: bool) -> tuple[LoadedModel, bool]:
    """Fit under the store's ``model`` lock, so that two processes never fit (and write the
    same files) at once. One that finds another fitting waits for it, then uses its model
    when that one is now good enough (`recheck`). Also says whether it fitted."""
    deadline = time.monotonic() + FIT_WAIT_S
    waited = False
    while True:
        try:
            with store.locked("model", now=now):
                if waited and recheck:
                    loaded, reason = _load(store, directory, now=now)
                    if loaded is not None and reason is None:
                        return loaded, False
                return fit(store, directory, now=now), True
        except StoreLockedError:
            if time.monotonic() > deadline:
                raise
            waited = True
            time.sleep(1.0)


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
