"""Building a digest email, and the transports that deliver it: SMTP, or `.eml` files.

A message is rendered once into bytes with its Message-ID; a transport sends those bytes and a
retry resends exactly them, so a receiver that already has the message sees the same Message-ID.
A transport is a batch: enter it, send every profile's message, leave it. `SmtpTransport` keeps
one connection for the batch; `EmlTransport` is the embedded default when no SMTP is configured.
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import random
import re
import smtplib
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email import policy, quoprimime
from email.header import Header
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Literal, Protocol, Self

from .errors import DeliveryError
from .fsutil import write_atomically

#: Headers are parsed with this policy, and the parts encoded at its line length (78).
_BUILD_POLICY = policy.SMTP
#: Headers are folded only past 998 characters: with the default 78, a long List-Unsubscribe URL
#: becomes `=?utf-8?q?...?=` encoded words, which Gmail ignores.
_WIRE_POLICY = policy.SMTP.clone(max_line_length=998)
#: The line length EmailMessage.set_content gave quoted-printable: the build policy's.
_QP_LINE_LENGTH: int = _BUILD_POLICY.max_line_length or 78
# How the generator splits a payload into lines.
_NEWLINE = re.compile(r"\r\n|\r|\n")


def make_message_id(domain: str) -> str:
    """A new globally unique Message-ID, ``<...@domain>``."""
    return email.utils.make_msgid(domain=domain)


def build_message(
    *,
    sender: str,
    to: str,
    subject: str,
    text: str,
    html: str,
    message_id: str,
    date: datetime,
    list_id: str,
    unsubscribe_url: str | None,
    unsubscribe_mailto: str | None,
) -> bytes:
    """The exact bytes (CRLF line ends) of a digest: ``multipart/alternative``, text then HTML.

    `sender` and `to` may carry display names (``"Ré Digest <d@example.org>"``); non-ASCII is
    encoded. `list_id` is wrapped in ``<>`` unless it already has them. The same inputs give the
    same bytes (the MIME boundary is derived from them), so a re-render is comparable.
    """
    if date.tzinfo is None:
        raise ValueError("build_message: date must be timezone-aware")
    headers = [
        ("From", sender),
        ("To", to),
        ("Subject", subject),
        ("Date", email.utils.format_datetime(date)),
        ("Message-ID", message_id),
        ("List-Id", list_id if "<" in list_id else f"<{list_id}>"),
    ]
    targets = []
    if unsubscribe_url:
        targets.append(f"<{unsubscribe_url}>")
    if unsubscribe_mailto:
        mailto = unsubscribe_mailto
        targets.append(f"<{mailto if mailto.startswith('mailto:') else 'mailto:' + mailto}>")
    if targets:
        headers.append(("List-Unsubscribe", ", ".join(targets)))
    if unsubscribe_url and unsubscribe_url.lower().startswith("https://"):
        # RFC 8058 one-click: the receiver POSTs this body to the https URL.
        headers.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    headers.append(("Auto-Submitted", "auto-generated"))
    # "=_" cannot occur in quoted-printable text, so the boundary never collides with a body.
    seed = "\0".join((message_id, to, subject, text, html)).encode("utf-8", "surrogatepass")
    boundary = "=_digest_" + hashlib.sha256(seed).hexdigest()[:32]
    headers += [
        ("MIME-Version", "1.0"),
        ("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
    ]
    # The bytes are what EmailMessage made with `set_content(text)`, `add_alternative(html)`
    # and `as_bytes`, built directly: its content manager and generator spent ~5 ms on the
    # parts. Quoted-printable keeps the body 7-bit (no 8BITMIME needed) and readable.
    out = [_header(name, value) for name, value in headers]
    delimiter = f"\r\n--{boundary}\r\n".encode("ascii")
    out += [
        delimiter,  # its CRLF ends the header block
        _text_part("plain", text),
        delimiter,
        _text_part("html", html),
        f"\r\n--{boundary}--\r\n".encode("ascii"),
    ]
    return b"".join(out)


@lru_cache(maxsize=256)
def _header(name: str, value: str) -> bytes:
    """One header line as EmailMessage stores (parses) and its generator writes (folds) it;
    cached, since most headers are the same for every profile of a run."""
    if name == "Subject" and "=?" in value:
        # The email package decodes "=?utf-8?q?x?=" written in the text as an encoded word, and
        # so would the reader: encode the whole subject, so that it arrives as it was written.
        words = Header(value, "utf-8", header_name=name).encode(linesep="\r\n")
        return f"{name}: {words}\r\n".encode("ascii")
    return _WIRE_POLICY.fold_binary(name, _BUILD_POLICY.header_store_parse(name, value)[1])


def _text_part(subtype: str, body: str) -> bytes:
    """A ``text/<subtype>`` part, UTF-8 as quoted-printable, as `EmailMessage.set_content`
    encodes it and the generator writes it (CRLF line ends)."""
    lines = body.encode("utf-8").splitlines()
    payload = quoprimime.body_encode(
        (b"\n".join(lines) + b"\n").decode("latin-1"), _QP_LINE_LENGTH
    )
    head = (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    )
    # Quoted-printable writes a CR as =0D: the line ends are LFs, unless body_encode changes.
    crlf = payload.replace("\n", "\r\n") if "\r" not in payload else "\r\n".join(
        _NEWLINE.split(payload)
    )
    return (head + crlf).encode("ascii")


class Transport(Protocol):
    """A batch of deliveries: enter, `send` each message, exit."""

    def __enter__(self) -> Transport: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def send(self, *, profile: str, sender: str, to: str, message: bytes, message_id: str) -> str:
        """Deliver `message` (bytes from `build_message`); return where it went.

        Raises `DeliveryError` with ``permanent=True`` when retrying cannot help (a 5xx, a
        refused recipient, a configuration problem), ``permanent=False`` when temporary failures
        outlasted the retries.
        """
        ...


Security = Literal["starttls", "ssl", "none"]


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to submit mail. The password is never here, only its variable's name."""

    host: str
    #: 587 for STARTTLS (submission), 465 for implicit TLS ("ssl"), 25 for plain relay.
    port: int = 587
    #: "none" sends everything, login included, in clear text: only for a loopback relay.
    security: Security = "starttls"
    #: Log in as this user when set, with the password read from the environment.
    user: str | None = None
    #: The environment variable holding the password.
    password_env: str = "DIGEST_SMTP_PASSWORD"
    #: Seconds allowed for the connection and for each command's reply.
    timeout: float = 30.0
    #: How many times a temporary failure (connection error, 4xx) is retried.
    retries: int = 3
    #: Seconds before the first retry; doubled for each next one, with jitter.
    backoff: float = 2.0


@dataclass(frozen=True, slots=True)
class _Failure:
    code: int | None  # the SMTP reply code; None for a connection error
    detail: str
    permanent: bool
    connection_lost: bool


def _reply_text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def _classify(error: Exception, recipient: str) -> _Failure:
    """What an smtplib exception means for a retry. Only connection errors and 4xx are retried."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        code, reply = error.recipients.get(recipient, (550, b"recipient refused"))
        return _Failure(code, _reply_text(reply), not 400 <= code < 500, code == 421)
    if isinstance(error, smtplib.SMTPResponseException):  # MAIL, DATA, greeting, HELO, AUTH
        code = error.smtp_code
        # smtplib uses -1 for a garbled reply; treat it as a broken connection.
        lost = code == 421 or code < 0
        permanent = code >= 500 or (0 <= code < 400)
        return _Failure(code, _reply_text(error.smtp_error), permanent, lost)
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return _Failure(None, str(error) or "server disconnected", False, True)
    if isinstance(error, smtplib.SMTPException):  # no STARTTLS, no usable AUTH mechanism, ...
        return _Failure(None, str(error), True, True)
    if isinstance(error, ssl.SSLCertVerificationError):
        return _Failure(None, f"TLS certificate rejected: {error.verify_message}", True, True)
    return _Failure(None, f"{type(error).__name__}: {error}", False, True)


class SmtpTransport:
    """Submits messages over one SMTP connection per batch, opened on the first `send`.

    Connection errors and 4xx replies are retried with the same bytes after an exponential
    backoff with jitter, reconnecting when the connection is gone; a 5xx is never retried. A
    drop after the whole message was sent but before the server's 250 may still deliver it
    twice; the Message-ID is the same, so a mail client shows it once. When the server could
    not be reached at all (refused, timed out, "421" in the greeting) for one message through
    every retry, the rest of the batch fails at once instead of waiting out the same retries
    for each profile: those digests stay pending for the next run.

    `environ`, `sleep` and `jitter` (a number in [0, 1)) are seams for tests; `ssl_context`
    replaces the system's default trust (say, to trust a self-signed test certificate).
    """

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        environ: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.settings = settings
        self._environ = os.environ if environ is None else environ
        self._sleep = sleep
        self._jitter = jitter
        self._ssl_context = ssl_context
        self._conn: smtplib.SMTP | None = None
        #: Why the server could not be reached in this batch, once it could not.
        self._unreachable: str | None = None
        #: Connections opened so far (a figure for logs and tests).
        self.connections = 0

    @property
    def _where(self) -> str:
        return f"smtp:{self.settings.host}:{self.settings.port}"

    def _password(self) -> str | None:
        if self.settings.user is None:
            return None
        name = self.settings.password_env
        password = self._environ.get(name)
        if not password:
            raise DeliveryError(
                f"{self._where}: SMTP user {self.settings.user!r} is configured but the "
                f"environment variable {name} (its password) is not set",
                permanent=True,
            )
        return password

    def __enter__(self) -> Self:
        # A missing password fails the whole batch now rather than every profile in turn.
        self._password()
        self._unreachable = None
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Say QUIT and close the connection, if one is open."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            conn.close()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        password = self._password()
        # Loading the system's trust store costs ~50 ms: only when TLS is used.
        context = self._ssl_context
        if context is None and s.security != "none":
            context = ssl.create_default_context()
        conn: smtplib.SMTP
        if s.security == "ssl":
            conn = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=context)
        else:
            conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        try:
            conn.ehlo()
            if s.security == "starttls":
                conn.starttls(context=context)
                conn.ehlo()
            if s.user is not None and password is not None:
                conn.login(s.user, password)
        except BaseException:
            conn.close()
            raise
        self.connections += 1
        return conn

    def send(self, *, profile: str, sender: str, to: str, message: bytes, message_id: str) -> str:
        envelope_from = email.utils.parseaddr(sender)[1] or sender
        recipient = email.utils.parseaddr(to)[1] or to
        what = f"{self._where}: profile {profile!r}, {message_id} to {recipient}"
        if self._unreachable is not None:
            raise DeliveryError(f"{what}: not tried, the server could not be reached earlier "
                                f"in this run ({self._unreachable})")
        attempts = max(0, self.settings.retries) + 1
        for attempt in range(attempts):
            connected = self._conn is not None
            try:
                if self._conn is None:
                    self._conn = self._connect()
                connected = True
                refused = self._conn.sendmail(envelope_from, [recipient], message)
            except (smtplib.SMTPException, OSError) as error:
                failure = _classify(error, recipient)
            except UnicodeEncodeError:  # a non-ASCII address, maybe after MAIL was accepted
                failure = _Failure(None, "address is not ASCII (SMTPUTF8 is not used)", True, True)
            else:
                if not refused:
                    return self._where
                # Unreachable with one recipient (smtplib raises instead), kept for safety.
                code, text = next(iter(refused.values()))
                failure = _Failure(code, _reply_text(text), True, False)
            if failure.connection_lost or (self._conn is not None and self._conn.sock is None):
                self._drop()
            reply = failure.detail if failure.code is None else f"{failure.code} {failure.detail}"
            if failure.permanent:
                raise DeliveryError(f"{what}: {reply}", permanent=True)
            if attempt + 1 == attempts:
                if not connected:
                    self._unreachable = reply
                raise DeliveryError(f"{what}: {reply} (gave up after {attempts} attempts)")
            delay = self.settings.backoff * 2**attempt
            self._sleep(delay * (0.5 + self._jitter() / 2))
        raise AssertionError("unreachable")


_UNSAFE = re.compile(r"[^A-Za-z0-9._@+=-]+")


def _safe_name(value: str) -> str:
    return _UNSAFE.sub("_", value).strip("._")


class EmlTransport:
    """Writes each message as ``out_dir/<profile>/<message id>.eml``, which any mail client opens.

    Writes are atomic (a temporary file, fsync, rename), and the same Message-ID lands on the same
    file, so a retry overwrites rather than duplicates.
    """

    def __init__(self, out_dir: str | os.PathLike[str], *, clock: Callable[[], float] = time.time):
        self.out_dir = Path(out_dir)
        self._clock = clock

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def send(self, *, profile: str, sender: str, to: str, message: bytes, message_id: str) -> str:
        folder = self.out_dir / (_safe_name(profile) or "profile")
        stem = _safe_name(message_id.strip("<>")) or f"{self._clock():.6f}".replace(".", "-")
        path = folder / f"{stem}.eml"
        try:
            write_atomically(path, message)
        except OSError as error:
            raise DeliveryError(f"{path}: cannot write the message: {error}") from error
        return str(path)
