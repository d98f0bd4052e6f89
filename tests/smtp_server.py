"""A real SMTP server on loopback (aiosmtpd), scriptable, that records what it accepts.

    from smtp_server import RecordingServer

    with RecordingServer() as server:
        server.defer(times=1)                 # the next DATA gets "451 4.3.0 try later"
        server.reject("nobody@example.org")   # RCPT of that address gets "550 5.1.1 ..."
        server.drop_in_data(times=1)          # the next DATA: connection closed, no reply
        server.closing(stage="CONNECT")       # the next client is greeted "421", then cut off
        server.slow(1.5, stage="MAIL")        # the next MAIL is answered 1.5 s late
        ... send to server.host, server.port ...
        server.messages[0].content            # the exact bytes received

The `smtp_server` fixture below is meant to be registered once, in ``conftest.py``
(``from smtp_server import smtp_server  # noqa: F401``): imported into a test module and named as
an argument, ruff reports it (F401, F811). The tests folder is on ``sys.path`` under pytest (the
rootdir conftest puts it there); a script adds it itself (see ``bench/smtp.py``).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

DEFER = "451 4.3.0 try later"
NO_SUCH_USER = "550 5.1.1 no such user"
#: Service not available: the server closes the connection after this reply (RFC 5321 3.8).
CLOSING = "421 4.3.2 service shutting down"
#: Not an SMTP reply: the server closes the connection instead of answering.
DROP = "drop"

#: When a rule applies: the greeting (CONNECT), or the reply to MAIL, RCPT or DATA.
Stage = Literal["CONNECT", "MAIL", "RCPT", "DATA"]


@dataclass(frozen=True)
class Received:
    """One accepted message: its envelope, its exact bytes, and which connection carried it."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    connection: int


@dataclass
class Rule:
    """Answer `reply` at `stage` (for `rcpt` only, when set), `times` times (None: always),
    `delay` seconds late; a `reply` of None answers as usual, late."""

    stage: Stage
    reply: str | None
    times: int | None = 1
    rcpt: str | None = None
    used: int = 0
    delay: float = 0.0

    def matches(self, stage: Stage, rcpt: str | None) -> bool:
        if stage != self.stage or (self.times is not None and self.used >= self.times):
            return False
        return self.rcpt is None or self.rcpt == rcpt


@dataclass
class _Handler:
    owner: RecordingServer

    async def _answer(self, server: SMTP, stage: Stage, rcpt: str | None) -> str | None:
        owner = self.owner
        if owner.delay:
            await asyncio.sleep(owner.delay)
        with owner.lock:
            rule = next((r for r in owner.rules if r.matches(stage, rcpt)), None)
            if rule is None:
                return None
            rule.used += 1
        if rule.delay:
            await asyncio.sleep(rule.delay)
        transport = server.transport
        assert isinstance(transport, asyncio.Transport)
        if rule.reply == DROP:
            transport.abort()  # close without flushing, so the client never sees a reply
            return "421 4.3.0 dropped"  # written to a closed transport: goes nowhere
        closes = rule.reply is not None and (rule.reply.startswith("421") or stage == "CONNECT")
        if closes and not transport.is_closing():  # (the client may have given up waiting)
            await server.push(rule.reply)
            transport.close()  # after the reply: close() flushes it
        return rule.reply

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = await self._answer(server, "MAIL", None)
        if reply is not None:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = await self._answer(server, "RCPT", address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        rcpt = envelope.rcpt_tos[0] if envelope.rcpt_tos else None
        reply = await self._answer(server, "DATA", rcpt)
        if reply is not None:
            return reply
        assert envelope.original_content is not None and envelope.mail_from is not None
        received = Received(
            envelope.mail_from,
            list(envelope.rcpt_tos),
            envelope.original_content,
            getattr(server, "connection_number", 0),  # the SMTP instance of this connection
        )
        with self.owner.lock:
            self.owner.messages.append(received)
        return "250 2.0.0 OK: queued"


class _NumberedSMTP(SMTP):
    #: 1 for the first client connection, 2 for the next, ...; 0 for aiosmtpd's own check.
    connection_number = 0

    async def _handle_client(self) -> None:
        # aiosmtpd has no hook for the greeting: a CONNECT rule answers in its place.
        handler = self.event_handler
        if (self.connection_number and isinstance(handler, _Handler)
                and await handler._answer(self, "CONNECT", None) is not None):
            return
        await super()._handle_client()


class _CountingController(Controller):
    def __init__(self, owner: RecordingServer, **kwargs: Any) -> None:
        super().__init__(_Handler(owner), **kwargs)
        self.owner = owner

    def factory(self) -> SMTP:
        smtp = _NumberedSMTP(self.handler, **self.SMTP_kwargs)
        # aiosmtpd makes one SMTP instance per connection; the one it opens on itself at start()
        # happens before `counting` is set.
        if self.owner.counting:
            with self.owner.lock:
                self.owner.connections += 1
                smtp.connection_number = self.owner.connections
        return smtp


def free_port(host: str = "127.0.0.1") -> int:
    """A port free right now. aiosmtpd cannot take port=0 (aiosmtpd #276)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RecordingServer:
    """An aiosmtpd server on 127.0.0.1 in a thread; a context manager.

    `tls_context` offers STARTTLS; `ssl_context` makes it implicit TLS (port 465 style).
    `logins` maps user to password and turns AUTH on (over TLS only, unless `auth_require_tls`
    is false). `delay` slows every MAIL, RCPT and DATA reply by that many seconds (`slow` only
    some of them).
    """

    tls_context: ssl.SSLContext | None = None
    ssl_context: ssl.SSLContext | None = None
    logins: dict[str, str] | None = None
    auth_require_tls: bool = True
    delay: float = 0.0
    host: str = "127.0.0.1"
    port: int = 0
    messages: list[Received] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    #: Connections opened by clients (aiosmtpd's own check at start is not counted).
    connections: int = 0
    #: Users that logged in, in order.
    logged_in: list[str] = field(default_factory=list)
    counting: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    _controller: _CountingController | None = None

    # -- scripting ------------------------------------------------------------------------------

    def defer(
        self,
        times: int | None = 1,
        *,
        stage: Stage = "DATA",
        rcpt: str | None = None,
        reply: str = DEFER,
    ) -> None:
        """Answer a temporary failure (451) the next `times` times at `stage` (None: always)."""
        self.rules.append(Rule(stage, reply, times, rcpt))

    def reject(self, rcpt: str, reply: str = NO_SUCH_USER) -> None:
        """Refuse this recipient at RCPT, always."""
        self.rules.append(Rule("RCPT", reply, None, rcpt))

    def drop_in_data(self, times: int = 1, *, rcpt: str | None = None) -> None:
        """Close the connection after the message data, instead of answering it."""
        self.rules.append(Rule("DATA", DROP, times, rcpt))

    def closing(self, times: int | None = 1, *, stage: Stage = "MAIL",
                reply: str = CLOSING) -> None:
        """Answer "421 service not available" at `stage` and close the connection, as a server
        that is shutting down or overloaded does; at CONNECT, that is the greeting."""
        self.rules.append(Rule(stage, reply, times))

    def slow(self, seconds: float, times: int | None = 1, *, stage: Stage = "DATA") -> None:
        """Answer `seconds` late at `stage` (the greeting, for CONNECT), as usual otherwise."""
        self.rules.append(Rule(stage, None, times, delay=seconds))

    def contents(self) -> list[bytes]:
        with self.lock:
            return [m.content for m in self.messages]

    # -- life cycle -----------------------------------------------------------------------------

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword) or self.logins is None:
            return AuthResult(success=False, handled=False)
        user = data.login.decode()
        if self.logins.get(user) != data.password.decode():
            return AuthResult(success=False, handled=False)
        with self.lock:
            self.logged_in.append(user)
        return AuthResult(success=True)

    def start(self) -> RecordingServer:
        self.port = self.port or free_port(self.host)
        kwargs: dict[str, Any] = {"hostname": self.host, "port": self.port}
        if self.ssl_context is not None:
            kwargs["ssl_context"] = self.ssl_context
        if self.tls_context is not None:
            kwargs["tls_context"] = self.tls_context
        if self.logins is not None:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_require_tls"] = self.auth_require_tls
        self._controller = _CountingController(self, **kwargs)
        self._controller.start()
        self.counting = True
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> RecordingServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def smtp_server() -> Iterator[RecordingServer]:
    """A fresh plain (no TLS) loopback SMTP server for one test."""
    with RecordingServer() as server:
        yield server
