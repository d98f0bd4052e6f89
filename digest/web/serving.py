"""Serving the web app: waitress, bounded, with a deadline for each whole request.

Why waitress: pure Python with no C extension to build, on every platform, and its design
fits what a public endpoint of this size meets. One thread reads and writes every connection
(asyncore over poll); a request reaches the bounded pool of worker threads only once it has
fully arrived. A slow or idle client therefore costs a socket, not a thread, so a thousand of
them do not stop a normal request (wsgiref gave each connection a thread, unbounded, and its
timeout was per read, so a client sending a byte every 20 s held a thread for ever). gunicorn
would need a worker class of its own for slow clients (its sync workers are what nginx is put
in front of) and is POSIX-only.

What waitress leaves to us: its ``channel_timeout`` closes connections *idle* that long, so a
client trickling one byte at a time stays. `_Server` adds a deadline for each whole request
(``server.request_timeout``): past it the client gets 408, or 400 when the headers arrived and
the body is shorter than its Content-Length; a client that closes its side after a short body
gets that 400 at once.
"""

from __future__ import annotations

import contextlib
import logging
import math
import resource
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

from waitress.channel import HTTPChannel  # type: ignore[import-untyped]
from waitress.server import TcpWSGIServer  # type: ignore[import-untyped]

from ..errors import DigestError
from .app import WebApp, make_app

if TYPE_CHECKING:
    from ..app import DigestApp

log = logging.getLogger("digest.web")

#: Connections the kernel queues before the server accepts them (capped by somaxconn).
BACKLOG = 2048
#: A POST larger than this is cut off by waitress itself (413); the app refuses more than
#: 64 KiB with its own page.
MAX_REQUEST_BODY = 1024 * 1024


class _Channel(HTTPChannel):  # type: ignore[misc]
    """A connection that remembers when its current request began."""

    request_started: float | None = None

    def received(self, data: bytes) -> bool:
        if self.request is None and data:
            self.request_started = time.monotonic()
        result: bool = super().received(data)
        if self.request is None:
            self.request_started = None
        return result

    def handle_close(self) -> None:
        # The client closed its side in the middle of a body: it will send no more.
        if self.connected and not self.requests and self.short_body():
            self.refuse(400, "Bad Request",
                        "The request body is shorter than its Content-Length.")
        super().handle_close()

    def short_body(self) -> bool:
        request = self.request
        return bool(request is not None and request.headers_finished and not request.completed)

    def overdue(self, now: float, timeout: float) -> bool:
        started = self.request_started
        return (self.request is not None and not self.requests and started is not None
                and now - started > timeout)

    def refuse(self, status: int, phrase: str, text: str) -> None:
        """Answer a request that never fully arrived, and close: the worker pool never saw
        it, so this happens here, in the I/O thread, without blocking."""
        body = f"{text}\n".encode()
        head = (f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\nX-Content-Type-Options: nosniff\r\n"
                f"Connection: close\r\n\r\n").encode()
        with contextlib.suppress(OSError):  # the client may be gone already
            self.socket.send(head + body)
        self.request = self.request_started = None
        self.will_close = True
        log.info("%s: %d %s", self.addr[0] if self.addr else "-", status, text)


class _Server(TcpWSGIServer):  # type: ignore[misc]
    channel_class = _Channel

    def __init__(self, web: WebApp, request_timeout: float, **options: Any) -> None:
        self.request_timeout = request_timeout
        super().__init__(web, **options)

    def maintenance(self, now: float) -> None:
        super().maintenance(now)  # closes connections idle for channel_timeout
        mono = time.monotonic()
        for channel in list(self.active_channels.values()):
            if channel.overdue(mono, self.request_timeout):
                if channel.short_body():
                    channel.refuse(400, "Bad Request", "The request body is shorter than "
                                   "its Content-Length (or took too long to arrive).")
                else:
                    channel.refuse(408, "Request Timeout",
                                   "The request took too long to arrive.")


class DigestServer:
    """A bound server for a `WebApp` (see `make_server`): ``serve_forever()`` in one thread,
    ``shutdown()`` from another (finishes the requests in flight), then ``server_close()``
    (closes the store)."""

    def __init__(self, server: _Server, web: WebApp) -> None:
        self._server = server
        self.web = web
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._serving = False

    @property
    def server_address(self) -> tuple[str, int]:
        return str(self._server.effective_host), int(self._server.effective_port)

    @property
    def url(self) -> str:
        host, port = self.server_address
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/"

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        server = self._server
        self._serving = True
        try:
            while not self._stop.is_set():
                server.asyncore.loop(timeout=poll_interval, map=server._map, use_poll=True,
                                     count=1)
            self._drain(deadline=time.monotonic() + server.request_timeout)
        finally:
            self._stopped.set()

    def _drain(self, deadline: float) -> None:
        """Stop accepting, then keep the I/O loop turning until the requests in flight are
        answered (or the deadline passes), then close everything."""
        server = self._server
        server.del_channel()
        server.socket.close()
        while time.monotonic() < deadline and any(
            ch.requests or ch.total_outbufs_len for ch in server.active_channels.values()
        ):
            server.asyncore.loop(timeout=0.05, map=server._map, use_poll=True, count=1)
        for channel in list(server.active_channels.values()):
            channel.handle_close()
        server.trigger.close()
        server.task_dispatcher.shutdown(timeout=5)

    def shutdown(self) -> None:
        """Ask `serve_forever` to stop and wait until it has."""
        self._stop.set()
        if self._serving:
            # Wakes the loop from its poll; a loop already on its way out closed the trigger.
            with contextlib.suppress(OSError):
                self._server.pull_trigger()
            self._stopped.wait()

    def server_close(self) -> None:
        server = self._server
        if not self._serving:
            server.close()
            server.task_dispatcher.shutdown(timeout=5)
        self.web.close()


def make_server(app: DigestApp, host: str | None = None, port: int | None = None
                ) -> DigestServer:
    """A server bound to `host`:`port` (default from the configuration; port 0 picks a free
    one), not yet serving. Raises DigestError without a secret or when the port is taken."""
    settings = app.config.server
    host = settings.host if host is None else host
    port = settings.port if port is None else port
    web = make_app(app)
    _raise_fd_limit(settings.connection_limit + 64)
    try:
        server = _Server(
            web, settings.request_timeout,
            host=host, port=port, threads=settings.threads,
            connection_limit=settings.connection_limit, backlog=BACKLOG,
            channel_timeout=max(1, math.ceil(settings.request_timeout)), cleanup_interval=1,
            ident="", asyncore_use_poll=True, max_request_body_size=MAX_REQUEST_BODY,
            expose_tracebacks=False, log_socket_errors=False,
        )
    except OSError as exc:
        web.close()
        raise DigestError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    except ValueError as exc:  # waitress: a host it cannot resolve
        web.close()
        raise DigestError(f"cannot listen on {host}:{port}: {exc}") from None
    return DigestServer(server, web)


def _raise_fd_limit(wanted: int) -> None:
    """Each connection is a file descriptor: lift the soft limit towards `wanted` (up to the
    hard limit), so that the connection limit, not the descriptor limit, is what binds."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        log.warning("only %d file descriptors are allowed: fewer connections than "
                    "server.connection_limit can be held", target)


def serve(
    app: DigestApp,
    host: str | None = None,
    port: int | None = None,
    *,
    ready: Callable[[DigestServer], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM (or until `stop` is set), then finish the requests in
    flight and return. `ready` is called once the server listens."""
    server = make_server(app, host, port)
    stop = stop or threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, on_signal)
    if not app.config.server.public_url:
        log.warning("server.public_url is not set: emails and feeds carry no links to this "
                    "server")
    worker = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              name="digest-serve", daemon=True)
    worker.start()
    try:
        log.info("serving on %s (SIGINT or SIGTERM stops it)", server.url)
        if ready is not None:
            ready(server)
        while not stop.wait(0.5):
            pass
    finally:
        server.shutdown()
        worker.join()
        server.server_close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        log.info("stopped")


__all__ = ["DigestServer", "make_server", "serve"]
