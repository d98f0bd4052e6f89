"""What one worker process keeps between jobs: its store, model, renderer and SMTP connection."""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from ..app import DigestApp
from ..config import QueueConfig
from ..deliver import Deliverer
from ..mailer import Transport
from ..modelstore import ModelCache
from ..render import Renderer
from ..store import Store

#: The shared rate (`Store.reserve_rate`) every worker's sends draw from.
SEND_RATE = "smtp-send"


class SharedTransport:
    """One SMTP connection (or .eml folder) for every send job of a worker process, whatever
    its concurrency: sends take turns. Entering it (each send job does) forgets that the server
    was unreachable in an earlier job; the connection stays open between jobs and is closed
    with the worker (`close`)."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self._lock = threading.Lock()

    def __enter__(self) -> Self:
        with self._lock:
            self.inner.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        return None  # kept open for the next job

    def send(self, *, profile: str, sender: str, to: str, message: bytes, message_id: str) -> str:
        with self._lock:
            return self.inner.send(profile=profile, sender=sender, to=to, message=message,
                                   message_id=message_id)

    def close(self) -> None:
        with self._lock:
            self.inner.__exit__(None, None, None)


@dataclass
class QueueContext:
    """A worker process's long-lived parts, built once and shared by its jobs (threads)."""

    app: DigestApp
    #: Who claims and leases in this process: host and pid (a job adds its id).
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    sleep: Callable[[float], None] = time.sleep
    wall: Callable[[], float] = time.time
    _store: Store | None = None
    _transport: SharedTransport | None = None
    _renderer: Renderer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.app.models is None:
            # One job fits the model (the fit task); workers only reload what it saved.
            self.app.models = ModelCache(refit=False)

    @property
    def settings(self) -> QueueConfig:
        return self.app.config.queue

    def now(self) -> dt.datetime:
        return self.app.clock()

    def store(self) -> Store:
        with self._lock:
            if self._store is None:
                self._store = self.app.open_store()
            return self._store

    def transport(self) -> SharedTransport:
        with self._lock:
            if self._transport is None:
                self._transport = SharedTransport(self.app.make_transport())
            return self._transport

    def deliverer(self) -> Deliverer:
        with self._lock:
            if self._renderer is None:
                self._renderer = self.app.renderer()
            renderer = self._renderer
        return self.app.deliverer(self.store(), self.transport(), renderer)

    def pace(self) -> None:
        """Wait for this message's turn under the global send rate (`queue.send_rate`)."""
        rate = self.settings.send_rate
        if rate <= 0:
            return
        now = self.wall()
        start = self.store().reserve_rate(SEND_RATE, 1, per_second=rate, now=now)
        if start > now:
            self.sleep(start - now)

    def close(self) -> None:
        with self._lock:
            transport, self._transport = self._transport, None
            store, self._store = self._store, None
        if transport is not None:
            transport.close()
        if store is not None:
            store.close()
