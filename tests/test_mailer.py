"""Building digest emails and delivering them: a real aiosmtpd server on loopback, `.eml` files.

Every SMTP test talks to `RecordingServer`, which answers as scripted (451, 550, a dropped
connection) and keeps the exact bytes it accepted. Retries sleep through a fake.
"""

from __future__ import annotations

import datetime as dt
import email
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from smtp_server import RecordingServer

from digest.errors import DeliveryError
from digest.mailer import (
    EmlTransport,
    SmtpSettings,
    SmtpTransport,
    build_message,
    make_message_id,
)

DATE = dt.datetime(2026, 5, 4, 7, 30, tzinfo=dt.UTC)
SENDER = "Paper Digest <digest@example.org>"
UNSUBSCRIBE = "https://digest.example.org/u/" + "t0k3n" * 54  # 300 characters


def message(
    to: str = "alice@example.org",
    message_id: str = "<20260504.alice@example.org>",
    **overrides: str | None,
) -> bytes:
    fields: dict[str, str | None] = {
        "sender": SENDER,
        "subject": "3 new papers for cs.CV",
        "text": "1. Diffusion for depth\nhttps://arxiv.org/abs/2605.00001\n",
        "html": "<ol><li><a href='https://arxiv.org/abs/2605.00001'>Diffusion</a></li></ol>",
        "list_id": "alice.digest.example.org",
        "unsubscribe_url": UNSUBSCRIBE,
        "unsubscribe_mailto": "unsubscribe@example.org",
    }
    fields.update(overrides)
    return build_message(to=to, message_id=message_id, date=DATE, **fields)  # type: ignore[arg-type]


def parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


class Sleeps(list[float]):
    """A fake `sleep` that records each delay."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    with RecordingServer() as running:
        yield running


def transport(
    server: RecordingServer, sleeps: Sleeps | None = None, **settings: object
) -> SmtpTransport:
    values: dict[str, object] = {"security": "none", "timeout": 5.0, "retries": 3, "backoff": 1.0}
    values.update(settings)
    return SmtpTransport(
        SmtpSettings(server.host, server.port, **values),  # type: ignore[arg-type]
        sleep=sleeps if sleeps is not None else Sleeps(),
        jitter=lambda: 0.5,  # the middle of the jitter range: factor 0.75
    )


def send(t: SmtpTransport, raw: bytes, to: str = "alice@example.org", profile: str = "p") -> str:
    message_id = parse(raw)["Message-ID"]
    return t.send(profile=profile, sender=SENDER, to=to, message=raw, message_id=message_id)


# -- the message ----------------------------------------------------------------------------------


def test_message_is_multipart_alternative_text_then_html_without_defects() -> None:
    parsed = parse(message())

    assert parsed.defects == []
    assert all(part.defects == [] for part in parsed.walk())
    assert parsed.get_content_type() == "multipart/alternative"
    text, html = parsed.iter_parts()
    assert (text.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    assert text.get_content_charset() == html.get_content_charset() == "utf-8"
    assert "Diffusion for depth" in text.get_content()
    assert "<ol>" in html.get_content()
    assert parsed["From"] == SENDER
    assert parsed["To"] == "alice@example.org"
    assert parsed["Subject"] == "3 new papers for cs.CV"
    assert parsed["Date"].datetime == DATE
    assert parsed["Message-ID"] == "<20260504.alice@example.org>"
    assert parsed["List-Id"] == "<alice.digest.example.org>"
    assert parsed["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>, <mailto:unsubscribe@example.org>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed.get_all("MIME-Version") == ["1.0"]


def test_long_unsubscribe_url_stays_on_one_line_unencoded() -> None:
    raw = message()

    (line,) = [ln for ln in raw.split(b"\r\n") if ln.startswith(b"List-Unsubscribe:")]
    assert line == f"List-Unsubscribe: <{UNSUBSCRIBE}>, <mailto:unsubscribe@example.org>".encode()
    assert b"=?utf-8?" not in line
    assert all(len(ln) <= 998 for ln in raw.split(b"\r\n"))
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only


def test_non_ascii_names_and_subject_are_encoded_and_decode_back() -> None:
    raw = message(
        sender="Zoë’s Digest <digest@example.org>",
        to="José Müller <jose@example.org>",
        subject="Nouveautés — 3 articles sur la « vision »",
        text="Déjà vu: ünïcode text\n",
    )

    assert raw.isascii()
    parsed = parse(raw)
    assert parsed.defects == []
    assert parsed["From"] == "Zoë’s Digest <digest@example.org>"
    assert parsed["From"].addresses[0].addr_spec == "digest@example.org"
    assert parsed["To"].addresses[0].display_name == "José Müller"
    assert parsed["Subject"] == "Nouveautés — 3 articles sur la « vision »"
    body = parsed.get_body(("plain",))
    assert body is not None
    assert body.get_content().replace("\r\n", "\n") == "Déjà vu: ünïcode text\n"


def test_unsubscribe_headers_follow_what_exists() -> None:
    mailto_only = parse(message(unsubscribe_url=None))
    assert mailto_only["List-Unsubscribe"] == "<mailto:unsubscribe@example.org>"
    assert mailto_only["List-Unsubscribe-Post"] is None  # RFC 8058 needs an https URL

    url_only = parse(message(unsubscribe_mailto=None))
    assert url_only["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert url_only["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    neither = parse(message(unsubscribe_url=None, unsubscribe_mailto=None))
    assert neither["List-Unsubscribe"] is None and neither["List-Unsubscribe-Post"] is None


def test_same_inputs_give_the_same_bytes() -> None:
    assert message() == message()
    assert message() != message(text="other")


def test_naive_date_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        build_message(
            sender=SENDER, to="a@example.org", subject="s", text="t", html="h",
            message_id="<1@example.org>", date=dt.datetime(2026, 5, 4), list_id="l.example.org",
            unsubscribe_url=None, unsubscribe_mailto=None,
        )


def test_make_message_id_uses_the_domain_and_is_unique() -> None:
    first, second = make_message_id("example.org"), make_message_id("example.org")
    assert first.startswith("<") and first.endswith("@example.org>")
    assert first != second


# -- SMTP -----------------------------------------------------------------------------------------


def test_accepted_message_arrives_byte_for_byte(server: RecordingServer) -> None:
    raw = message()

    with transport(server) as t:
        where = send(t, raw)

    assert where == f"smtp:{server.host}:{server.port}"
    (received,) = server.messages
    assert received.content == raw
    assert received.mail_from == "digest@example.org"  # the envelope takes the bare address
    assert received.rcpt_tos == ["alice@example.org"]
    parsed = parse(received.content)
    assert parsed.defects == [] and parsed.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]


def test_a_batch_reuses_one_connection(server: RecordingServer) -> None:
    raws = [message(to=f"u{i}@example.org", message_id=f"<{i}@example.org>") for i in range(25)]

    with transport(server) as t:
        for i, raw in enumerate(raws):
            send(t, raw, to=f"u{i}@example.org", profile=f"u{i}")

    assert server.contents() == raws
    assert server.connections == t.connections == 1


def test_451_is_retried_with_the_same_bytes_and_message_id(server: RecordingServer) -> None:
    server.defer(times=2)  # at DATA: the message was sent in full twice before this
    sleeps = Sleeps()
    raw = message()

    with transport(server, sleeps, backoff=0.01) as t:
        send(t, raw)

    (received,) = server.messages
    assert received.content == raw
    assert parse(received.content)["Message-ID"] == "<20260504.alice@example.org>"
    assert sleeps == pytest.approx([0.0075, 0.015])  # backoff * 2**n * 0.75 (fixed jitter)
    assert server.connections == 1  # a 4xx leaves the connection usable


def test_451_at_rcpt_is_retried_too(server: RecordingServer) -> None:
    server.defer(times=1, stage="RCPT")

    with transport(server) as t:
        send(t, message())

    assert len(server.messages) == 1


def test_temporary_failures_past_the_retries_are_not_permanent(server: RecordingServer) -> None:
    server.defer(times=None)
    sleeps = Sleeps()

    with transport(server, sleeps, retries=2) as t, pytest.raises(DeliveryError) as caught:
        send(t, message())

    assert caught.value.permanent is False
    assert "451 4.3.0 try later" in str(caught.value)
    assert "3 attempts" in str(caught.value)
    assert len(sleeps) == 2
    assert server.messages == []


def test_550_is_permanent_and_the_batch_goes_on(server: RecordingServer) -> None:
    server.reject("gone@example.org")
    sleeps = Sleeps()
    gone, bob = message(to="gone@example.org"), message(to="bob@example.org")

    with transport(server, sleeps) as t:
        with pytest.raises(DeliveryError) as caught:
            send(t, gone, to="gone@example.org", profile="gone")
        send(t, bob, to="bob@example.org", profile="bob")

    assert caught.value.permanent is True
    assert "550 5.1.1 no such user" in str(caught.value)
    assert "'gone'" in str(caught.value) and "gone@example.org" in str(caught.value)
    assert sleeps == []  # a 5xx is never retried
    assert server.contents() == [bob]
    assert server.connections == 1


def test_disconnect_in_the_middle_of_data_reconnects_and_resends(server: RecordingServer) -> None:
    server.drop_in_data(times=1)
    sleeps = Sleeps()
    raw = message()

    with transport(server, sleeps) as t:
        send(t, raw)
        send(t, message(to="bob@example.org"), to="bob@example.org")

    assert len(server.messages) == 2
    assert server.messages[0].content == raw
    assert server.connections == 2 and [m.connection for m in server.messages] == [2, 2]
    assert len(sleeps) == 1


def test_nothing_listening_is_a_temporary_failure() -> None:
    with RecordingServer() as gone:
        host, port = gone.host, gone.port
    sleeps = Sleeps()
    t = SmtpTransport(
        SmtpSettings(host, port, security="none", retries=2, timeout=2), sleep=sleeps
    )

    with t, pytest.raises(DeliveryError) as caught:
        t.send(profile="p", sender=SENDER, to="a@example.org", message=b"x", message_id="<1@x>")

    assert caught.value.permanent is False
    assert "ConnectionRefusedError" in str(caught.value)
    assert len(sleeps) == 2


def test_a_slow_server_times_out_and_is_retried() -> None:
    with RecordingServer(delay=0.5) as slow:
        with transport(slow, retries=1, timeout=0.1) as t, pytest.raises(DeliveryError) as caught:
            send(t, message())
        assert caught.value.permanent is False
        assert "timed out" in str(caught.value)
        assert slow.connections == 2


def test_missing_password_variable_fails_clearly_before_connecting(
    server: RecordingServer,
) -> None:
    settings = SmtpSettings(
        server.host, server.port, security="none", user="digest", password_env="DIGEST_TEST_PW"
    )

    with (
        pytest.raises(DeliveryError, match="DIGEST_TEST_PW") as caught,
        SmtpTransport(settings, environ={}),
    ):
        pass

    assert caught.value.permanent is True
    assert server.connections == 0


def test_login_over_plain_loopback_uses_the_password_from_the_environment() -> None:
    with RecordingServer(logins={"digest": "s3cret"}, auth_require_tls=False) as server:
        settings = SmtpSettings(
            server.host, server.port, security="none", user="digest", password_env="PW"
        )
        with SmtpTransport(settings, environ={"PW": "s3cret"}) as t:
            send(t, message())
        assert server.logged_in == ["digest"]

        with (
            SmtpTransport(settings, environ={"PW": "wrong"}) as t,
            pytest.raises(DeliveryError) as caught,
        ):
            send(t, message())
        assert caught.value.permanent is True and "535" in str(caught.value)


# -- TLS: a self-signed certificate for 127.0.0.1, made with the openssl command -----------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


def client_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


def test_starttls_then_login(certificate: tuple[Path, Path]) -> None:
    with RecordingServer(tls_context=server_context(certificate), logins={"u": "pw"}) as server:
        settings = SmtpSettings(server.host, server.port, security="starttls", user="u")
        environ = {"DIGEST_SMTP_PASSWORD": "pw"}
        t = SmtpTransport(settings, environ=environ, ssl_context=client_context(certificate))
        with t:
            send(t, message())
            send(t, message(to="bob@example.org"), to="bob@example.org")

        assert server.logged_in == ["u"]  # AUTH is offered only after STARTTLS
        assert len(server.messages) == 2 and server.connections == 1


def test_implicit_tls(certificate: tuple[Path, Path]) -> None:
    with RecordingServer(ssl_context=server_context(certificate)) as server:
        settings = SmtpSettings(server.host, server.port, security="ssl")
        with SmtpTransport(settings, ssl_context=client_context(certificate)) as t:
            send(t, message())

        assert server.contents() == [message()]


def test_an_untrusted_certificate_is_permanent(certificate: tuple[Path, Path]) -> None:
    sleeps = Sleeps()
    with RecordingServer(tls_context=server_context(certificate)) as server:
        settings = SmtpSettings(server.host, server.port, security="starttls")
        with SmtpTransport(settings, sleep=sleeps) as t, pytest.raises(DeliveryError) as caught:
            send(t, message())  # the system trust store does not know our certificate

    assert caught.value.permanent is True
    assert "certificate" in str(caught.value)
    assert sleeps == []


def test_starttls_refused_by_a_server_without_it_is_permanent(server: RecordingServer) -> None:
    with transport(server, security="starttls") as t, pytest.raises(DeliveryError) as caught:
        send(t, message())

    assert caught.value.permanent is True
    assert "STARTTLS" in str(caught.value)


# -- .eml files -----------------------------------------------------------------------------------


def test_eml_transport_writes_a_file_a_mail_client_can_open(tmp_path: Path) -> None:
    raw = message()

    with EmlTransport(tmp_path / "out") as t:
        where = t.send(
            profile="alice", sender=SENDER, to="alice@example.org", message=raw,
            message_id="<20260504.alice@example.org>",
        )
        again = t.send(
            profile="alice", sender=SENDER, to="alice@example.org", message=raw,
            message_id="<20260504.alice@example.org>",
        )

    path = Path(where)
    assert again == where  # a retry overwrites, it does not duplicate
    assert path == tmp_path / "out" / "alice" / "20260504.alice@example.org.eml"
    assert path.read_bytes() == raw
    parsed = parse(path.read_bytes())
    assert parsed.defects == [] and parsed.get_content_type() == "multipart/alternative"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary files left


def test_eml_names_cannot_escape_the_output_folder(tmp_path: Path) -> None:
    with EmlTransport(tmp_path) as t:
        where = t.send(
            profile="../../etc", sender=SENDER, to="a@example.org", message=b"x",
            message_id="<../../passwd>",
        )

    assert Path(where).resolve().is_relative_to(tmp_path.resolve())


def test_a_non_ascii_address_is_permanent_not_a_crash(server: RecordingServer) -> None:
    with transport(server) as t, pytest.raises(DeliveryError) as caught:
        send(t, message(), to="josé@example.org")

    assert caught.value.permanent is True
    assert "not ASCII" in str(caught.value)
    assert server.messages == []
