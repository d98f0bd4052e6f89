"""Where the text model lives, and when it is fitted again.

The model (vectorizer, and the vectors of the corpus it was fitted on) is saved under
``<out_dir>/model/``. Refit policy, checked before each ranking:

- no saved model, one of another format or pickled by another scikit-learn, one fitted on
  another store (each store has an id, `Store.store_id`, which the model records), or one fitted
  on more papers than the store holds: fit, whatever `allow_refit` says: such a model is never
  used;
- the store holds `REFIT_GROWTH` (20%) more papers than the model was fitted on, or the model is
  older than `REFIT_DAYS` (30 days): fit again, so new vocabulary (a new method's name) counts;
- ``digest model refit``: fit now.

Every fit says why on one line, then reports its progress (rate-limited) through `notify` (the
command line prints it on stderr; without one it is logged on ``digest.model``).

Between refits new papers are scored with the saved vocabulary; a term the model has never seen
simply does not count, which is why growth triggers a refit.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from .errors import StoreLockedError
from .model import ModelError, TextModel
from .recommend import Recommender
from .store import Store
from .tfidf import WorkerError

#: Where a fit's lines go: one line of text each.
Notify = Callable[[str], None]

#: Seconds between two progress lines of a fit.
PROGRESS_INTERVAL = 2.0

log = logging.getLogger("digest.model")

#: The store's fact (`Store.meta`) naming the current fit: `TextModel.fit_id`.
MODEL_VERSION = "model_version"

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


class FitProgress:
    """Progress lines of one fit: the first line at once, then at most one per `interval`
    seconds, and the last one (what was fitted, how long it took)."""

    def __init__(self, notify: Notify | None, *, interval: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.notify: Notify = notify or log.info
        self.interval = PROGRESS_INTERVAL if interval is None else interval
        self.clock = clock
        self.started = self.last = clock()

    def line(self, text: str) -> None:
        self.notify(text)
        self.last = self.clock()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.clock() - self.last >= self.interval:
            self.line(f"fitting the text model: {stage}, {done:,} of {total:,} papers")

    def finished(self, model: TextModel) -> None:
        self.line(f"fitted the text model on {model.n_docs:,} papers, {model.n_features:,} "
                  f"terms, in {self.clock() - self.started:.1f} s")


def fit(store: Store, directory: Path, *, now: dt.datetime, notify: Notify | None = None,
        reason: str | None = None) -> LoadedModel:
    """Fit a model on every paper in the store and save it with the corpus vectors; one line
    (saying `reason`, when given), then progress lines, go to `notify`."""
    total = store.info().papers
    progress = FitProgress(notify)
    because = f" ({reason})" if reason else ""
    progress.line(f"fitting the text model on {total:,} papers{because}")
    pids: list[int] = []
    titles: list[str] = []  # for the title block of short texts (digest.shorttext)

    def texts() -> Iterator[str]:
        for pid, title, abstract in store.iter_texts():
            pids.append(pid)
            titles.append(title)
            yield f"{title} {abstract}"  # as recommend.paper_text

    model = TextModel()
    try:
        corpus = model.fit_transform(texts(), now=now, progress=progress, total=total,
                                     titles=titles)
    except WorkerError as exc:
        progress.line(f"{exc}; fitting again in this process alone")
        pids.clear()
        titles.clear()
        corpus = model.fit_transform(texts(), now=now, progress=progress, total=total,
                                     workers=1, titles=titles)
    except ModelError:
        if not pids:
            raise ModelError(f"{store.url}: the store has no papers to fit a text model on; "
                             "ingest some first") from None
        raise
    model.store_id = store.store_id
    model.fit_id = uuid.uuid4().hex
    corpus_pids = np.array(pids, dtype=np.int64)
    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory)
    sp.save_npz(directory / "corpus.npz", corpus, compressed=False)
    np.save(directory / "corpus_pids.npy", corpus_pids)
    # Last, once every file is in place: workers that see this version reload.
    store.set_meta(MODEL_VERSION, model.fit_id)
    progress.finished(model)
    return LoadedModel(model, corpus, corpus_pids)


def _foreign(model: TextModel, store: Store, papers_now: int) -> str | None:
    """Why a saved model cannot be used on `store` at all, or None."""
    if model.store_id != store.store_id:
        return (f"the saved model was fitted on another store (id {model.store_id}, "
                f"this one is {store.store_id})")
    if papers_now < model.n_docs:
        return (f"the saved model was fitted on {model.n_docs:,} papers, the store holds "
                f"{papers_now:,}")
    return None


def _stale(model: TextModel, papers_now: int, now: dt.datetime) -> str | None:
    if papers_now >= model.n_docs * (1 + REFIT_GROWTH):
        return f"the store grew from {model.n_docs:,} to {papers_now:,} papers"
    if model.fitted_at and now - model.fitted_at > dt.timedelta(days=REFIT_DAYS):
        return f"the model is older than {REFIT_DAYS} days"
    return None


def _load(directory: Path) -> tuple[LoadedModel | None, str | None]:
    """The saved model, or why there is none to use."""
    if not (directory / "meta.json").exists():
        return None, "no saved model yet"
    try:
        model = TextModel.load(directory)
        corpus = sp.csr_matrix(sp.load_npz(directory / "corpus.npz"), dtype=np.float32)
        pids = np.load(directory / "corpus_pids.npy")
    except (ModelError, OSError, ValueError) as exc:
        return None, f"the saved model is unusable: {exc}"
    if corpus.shape != (model.n_docs, model.n_features) or len(pids) != model.n_docs:
        # A fit interrupted between writing its files: the parts are of different fits.
        return None, "the saved model's files do not belong together"
    return LoadedModel(model, corpus, pids), None


def ensure(store: Store, directory: Path, *, now: dt.datetime, force: bool = False,
           allow_refit: bool = True, notify: Notify | None = None) -> LoadedModel:
    """The current model: loaded, or fitted when the refit policy (module docstring) says so.
    `allow_refit` False keeps a usable model however stale; a foreign one is still refitted."""
    reason: str | None = "asked to refit" if force else None
    loaded: LoadedModel | None = None
    if reason is None:
        loaded, reason = _check(store, directory, now=now, allow_refit=allow_refit)
    if reason is None and loaded is not None:
        return loaded
    result, fitted = _fit_alone(store, directory, now=now, notify=notify, reason=reason,
                                recheck=not force, allow_refit=allow_refit)
    result.fitted_because = reason if fitted else None
    return result


def fit_reason(store: Store, directory: Path, *, now: dt.datetime) -> str | None:
    """Why the saved model must be fitted before the next ranking (None: it need not), read
    from its recorded facts alone (the queue's tick asks this every minute)."""
    if not (directory / "meta.json").exists():
        return "no saved model yet"
    try:
        model = TextModel.peek(directory)
    except (ModelError, OSError, KeyError, ValueError) as exc:
        return f"the saved model is unusable: {exc}"
    papers_now = store.info().papers
    return _foreign(model, store, papers_now) or _stale(model, papers_now, now)


def _check(store: Store, directory: Path, *, now: dt.datetime,
           allow_refit: bool) -> tuple[LoadedModel | None, str | None]:
    """The saved model, and why it must be fitted again (None: it need not)."""
    loaded, reason = _load(directory)
    if loaded is not None:
        papers_now = store.info().papers
        reason = _foreign(loaded.model, store, papers_now)
        if reason is None and allow_refit:
            reason = _stale(loaded.model, papers_now, now)
    return loaded, reason


def _fit_alone(store: Store, directory: Path, *, now: dt.datetime, notify: Notify | None,
               reason: str | None, recheck: bool,
               allow_refit: bool) -> tuple[LoadedModel, bool]:
    """Fit under the store's ``model`` lock, so that two processes never fit (and write the
    same files) at once. One that finds another fitting waits for it, then uses its model
    when that one is now good enough (`recheck`). Also says whether it fitted."""
    deadline = time.monotonic() + FIT_WAIT_S
    waited = False
    while True:
        try:
            with store.locked("model", now=now):
                if waited and recheck:
                    loaded, still = _check(store, directory, now=now, allow_refit=allow_refit)
                    if loaded is not None and still is None:
                        return loaded, False
                return fit(store, directory, now=now, notify=notify, reason=reason), True
        except StoreLockedError:
            if time.monotonic() > deadline:
                raise
            waited = True
            time.sleep(1.0)


def recommender(store: Store, loaded: LoadedModel, *, first_digest_days: int) -> Recommender:
    return Recommender(store, loaded.model, first_digest_days=first_digest_days,
                       corpus=loaded.corpus, corpus_pids=loaded.corpus_pids)


class ModelCache:
    """Keeps the model loaded between runs of one process (the scheduler's batches, a queue
    worker): it is loaded again only when another process fitted a new one (its files changed,
    or the store names another fit: `MODEL_VERSION`) or the refit policy says so.

    With `refit` False (queue workers: one job fits, `digest.queue`), a stale model is kept
    until that job has fitted a new one; only a missing or foreign model is fitted here."""

    def __init__(self, *, refit: bool = True) -> None:
        self.refit = refit
        # A worker's jobs run in threads: one loads while the others wait for it.
        self._lock = threading.Lock()
        self._mark: tuple[Any, ...] | None = None
        self._loaded: LoadedModel | None = None
        self._loads = 0

    def get(self, store: Store, directory: Path, *, now: dt.datetime,
            notify: Notify | None = None) -> LoadedModel:
        with self._lock:
            return self._get(store, directory, now=now, notify=notify)

    def _get(self, store: Store, directory: Path, *, now: dt.datetime,
             notify: Notify | None) -> LoadedModel:
        loaded = self._loaded
        if loaded is not None and self._mark == _files_mark(directory):
            papers_now = store.info().papers
            version = store.meta(MODEL_VERSION)
            if ((version is None or version == loaded.model.fit_id)
                    and _foreign(loaded.model, store, papers_now) is None
                    and (not self.refit or _stale(loaded.model, papers_now, now) is None)):
                return LoadedModel(loaded.model, loaded.corpus, loaded.corpus_pids)
        loaded = ensure(store, directory, now=now, notify=notify, allow_refit=self.refit)
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
