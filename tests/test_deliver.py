"""A run, end to end: the bundled sample papers, profiles in YAML, a real SMTP server on loopback.

Each test gets its own copy of a store that holds the 483 sample papers and a fitted model (made
once per module), writes a few small profiles, and runs `DigestApp.run` at a fixed clock with an
`SmtpTransport` pointed at `RecordingServer`. What the server received is parsed back with the
`email` package and compared with the ledger: what a profile was sent is what left, once.
"""

from __future__ import annotations

import datetime as dt
import email
import json
import re
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from click.testing import CliRunner, Result
from smtp_server import NO_SUCH_USER, RecordingServer

from digest.app import DigestApp
from digest.cli import main, sample_path
from digest.config import Config
from digest.errors import DeliveryError, StoreLockedError
from digest.mailer import SmtpSettings, SmtpTransport, Transport
from digest.profiles import Profile, load_profiles
from digest.sources.resolve import FileSource
from digest.store import Store
from digest.text import normalize_title
from digest.tokens import make_token

#: The sample's last day: 166 papers announced on 2026-06-29, 300 on 2026-07-01.
DAY = dt.date(2026, 7, 1)
NOW = dt.datetime(2026, 7, 1, 7, 0, tzinfo=dt.UTC)
SENDER = "Paper Digest <digest@example.org>"
LIST_ID = "papers.example.org"
PUBLIC_URL = "https://digest.example.org"
SECRET = "test-secret-0123456789"
#: Broad enough that each profile gets papers from the sample on DAY and on the day before.
INTERESTS = {
    "ann": ["vision language models", "diffusion models for image generation"],
    "bob": ["large language model reasoning", "benchmark for evaluation"],
    "cid": ["3D reconstruction and Gaussian splatting", "robot manipulation"],
}

ABS_URL = re.compile(r"https://arxiv\.org/abs/([^\s)>\"'<]+)")
MARKDOWN_HEADING = re.compile(r"^## \d+\. .*\]\(https://arxiv\.org/abs/([^)\s]+)\)", re.M)


def fixed(now: dt.datetime) -> Callable[[], dt.datetime]:
    return lambda: now


# -- a store with the sample, once per module; a copy per test ------------------------------------


@pytest.fixture(scope="module")
def sample_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ``digest.sqlite`` (the sample ingested) and ``out/model`` (fitted)."""
    root = tmp_path_factory.mktemp("sample")
    app = DigestApp(Config(out_dir=str(root / "out")), f"sqlite:///{root}/digest.sqlite",
                    str(root / "profiles"), clock=fixed(NOW))
    (result,) = app.ingest([FileSource(sample_path(), "jsonl")], today=DAY)
    assert (result.new, result.error, result.rejected) == (483, None, [])
    # Fitted at the real clock, so that neither the fixed clock of the tests (earlier) nor the
    # command line's clock finds it older than the refit age.
    with app.open_store() as store:
        DigestApp(app.config, app.db_url, app.profiles_dir).model(store)
    return root


@dataclass
class Site:
    """One test's store, profiles folder and output folder."""

    root: Path

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.root}/digest.sqlite"

    @property
    def profiles_dir(self) -> Path:
        return self.root / "profiles"

    @property
    def out(self) -> Path:
        return self.root / "out"

    def profile(self, name: str, **fields: object) -> None:
        """Write ``profiles/<name>.yaml``; a field given as None is left out."""
        data: dict[str, object] = {
            "version": 1, "email": f"{name}@example.org", "max_papers": 8, "min_relevance": 1.0,
            "interests": INTERESTS.get(name, ["vision language models"]),
        }
        data.update(fields)
        self.profiles_dir.mkdir(exist_ok=True)
        lines = [f"{key}: {json.dumps(value)}\n" for key, value in data.items()
                 if value is not None]  # JSON is YAML
        (self.profiles_dir / f"{name}.yaml").write_text("".join(lines), encoding="utf-8")

    def profiles(self, *names: str) -> list[Profile]:
        found = load_profiles(self.profiles_dir)
        assert found.ok, found.errors
        return [p for p in found.profiles if not names or p.name in names]

    def config(self, **overrides: Any) -> Config:
        data: dict[str, Any] = {"out_dir": str(self.out),
                                "email": {"from": SENDER, "list_id": LIST_ID}}
        data.update(overrides)
        return Config.model_validate(data)

    def app(self, transport: Transport | None = None, *, config: Config | None = None,
            now: dt.datetime = NOW) -> DigestApp:
        return DigestApp(config or self.config(), self.db_url, str(self.profiles_dir),
                         clock=fixed(now), transport=transport)

    def store(self) -> Store:
        return Store.open(self.db_url)


@pytest.fixture
def site(sample_site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Site:
    monkeypatch.delenv("DIGEST_SECRET", raising=False)
    root = tmp_path / "site"
    shutil.copytree(sample_site, root)
    return Site(root)


def smtp(server: RecordingServer, *, retries: int = 2) -> SmtpTransport:
    settings = SmtpSettings(server.host, server.port, security="none", timeout=5.0,
                            retries=retries, backoff=0.001)
    return SmtpTransport(settings, sleep=lambda _: None)


# -- reading back what was sent -------------------------------------------------------------------


def parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def text_of(raw: bytes) -> str:
    body = parse(raw).get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def keys_in_message(raw: bytes) -> set[str]:
    """The arXiv ids a message links to (its text part)."""
    return set(ABS_URL.findall(text_of(raw)))


def keys_in_markdown(path: Path) -> list[str]:
    return MARKDOWN_HEADING.findall(path.read_text(encoding="utf-8"))


def received_by(server: RecordingServer, address: str) -> list[bytes]:
    with server.lock:
        return [m.content for m in server.messages if m.rcpt_tos == [address]]


def feed_links(path: Path) -> list[str]:
    root = ET.parse(path).getroot()
    if root.tag == "rss":
        return [str(item.findtext("link")) for item in root.iter("item")]
    atom = "{http://www.w3.org/2005/Atom}"
    return [str(link.get("href")) for entry in root.iter(f"{atom}entry")
            for link in entry.iter(f"{atom}link") if link.get("rel", "alternate") == "alternate"]


class AlwaysDeferred:
    """A transport whose server never accepts: every send is a temporary failure."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def __enter__(self) -> AlwaysDeferred:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        return None

    def send(self, *, profile: str, sender: str, to: str, message: bytes,
             message_id: str) -> str:
        self.sent.append(message_id)
        raise DeliveryError(f"{profile}: 451 4.3.0 try later (gave up)", permanent=False)


# -- the messages ---------------------------------------------------------------------------------


def test_each_message_parses_back_with_its_headers_and_both_parts(
    site: Site, smtp_server: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    site.profile("ann")
    site.profile("bob")
    config = site.config(server={"public_url": PUBLIC_URL},
                         email={"from": SENDER, "list_id": LIST_ID,
                                "unsubscribe_mailto": "unsubscribe@example.org"})

    results = site.app(smtp(smtp_server), config=config).run(site.profiles(), day=DAY)

    assert [(r.profile, r.status, r.error) for r in results] == [
        ("ann", "sent", None), ("bob", "sent", None)]
    assert len(smtp_server.messages) == 2
    for result, received in zip(results, smtp_server.messages, strict=True):
        parsed = parse(received.content)
        assert parsed.defects == [] and all(p.defects == [] for p in parsed.walk())
        assert received.mail_from == "digest@example.org"
        assert received.rcpt_tos == [f"{result.profile}@example.org"]
        assert parsed["From"] == SENDER
        assert parsed["To"] == f"{result.profile}@example.org"
        assert parsed["Subject"].startswith(
            f"Your digest for Wed 1 Jul: {len(result.papers)} new papers on ")
        assert parsed["Date"].datetime == NOW
        assert parsed["Message-ID"] == result.message_id
        assert parsed["List-Id"] == f"<{LIST_ID}>"
        unsubscribe = f"{PUBLIC_URL}/unsubscribe/{make_token(SECRET, result.profile)}"
        assert parsed["List-Unsubscribe"] == (
            f"<{unsubscribe}>, <mailto:unsubscribe@example.org>")
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert parsed["Auto-Submitted"] == "auto-generated"
        assert parsed.get_content_type() == "multipart/alternative"
        text, html = parsed.iter_parts()
        assert (text.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
        assert keys_in_message(received.content) == set(result.papers)
        assert all(f"arxiv.org/abs/{key}" in html.get_content() for key in result.papers)


def test_without_a_public_url_there_is_no_unsubscribe_header(
    site: Site, smtp_server: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)  # a secret alone makes no links
    site.profile("ann")

    site.app(smtp(smtp_server)).run(site.profiles(), day=DAY)

    (received,) = smtp_server.messages
    parsed = parse(received.content)
    assert parsed.defects == []
    assert parsed["List-Id"] == f"<{LIST_ID}>"
    assert parsed["List-Unsubscribe"] is None and parsed["List-Unsubscribe-Post"] is None
    assert parsed["Auto-Submitted"] == "auto-generated"


# -- what the server answers ----------------------------------------------------------------------


def test_a_550_fails_that_profile_only_and_a_later_run_delivers_it(
    site: Site, smtp_server: RecordingServer
) -> None:
    for name in ("ann", "bob", "cid"):
        site.profile(name)
    smtp_server.reject("bob@example.org")

    first = site.app(smtp(smtp_server)).run(site.profiles(), day=DAY)

    by_name = {r.profile: r for r in first}
    assert [r.status for r in first] == ["sent", "failed", "sent"]
    assert by_name["bob"].error is not None and NO_SUCH_USER in by_name["bob"].error
    assert "bob@example.org" in by_name["bob"].error
    assert [m.rcpt_tos for m in smtp_server.messages] == [["ann@example.org"],
                                                           ["cid@example.org"]]
    with site.store() as store:
        assert store.sent_pids("bob") == set()
        failed = store.get_delivery("bob", DAY.isoformat())
        assert failed is not None and failed.status == "failed"
        assert failed.last_error is not None and NO_SUCH_USER in failed.last_error
        for name in ("ann", "cid"):
            delivery = store.get_delivery(name, DAY.isoformat())
            assert delivery is not None and delivery.status == "sent"
            assert store.sent_pids(name) == set(delivery.pids) != set()

    smtp_server.rules.clear()  # the mailbox exists again
    second = site.app(smtp(smtp_server)).run(site.profiles(), day=DAY)

    assert [r.status for r in second] == ["skipped", "sent", "skipped"]
    (bobs,) = received_by(smtp_server, "bob@example.org")
    assert parse(bobs)["Message-ID"] == second[1].message_id
    assert keys_in_message(bobs) == set(second[1].papers) != set()
    with site.store() as store:
        delivery = store.get_delivery("bob", DAY.isoformat())
        assert delivery is not None and delivery.status == "sent" and delivery.message == bobs
        assert store.sent_pids("bob") == set(delivery.pids)
    assert len(smtp_server.messages) == 3


def test_451_then_accept_sends_the_recorded_bytes_once(
    site: Site, smtp_server: RecordingServer
) -> None:
    site.profile("ann")
    smtp_server.defer(times=1)

    (result,) = site.app(smtp(smtp_server)).run(site.profiles(), day=DAY)

    assert result.status == "sent" and result.error is None
    (received,) = smtp_server.messages
    with site.store() as store:
        delivery = store.get_delivery("ann", DAY.isoformat())
        assert delivery is not None and delivery.status == "sent"
        assert received.content == delivery.message
        assert delivery.message_id == result.message_id == parse(received.content)["Message-ID"]
        assert store.sent_pids("ann") == set(delivery.pids)
        assert len(delivery.pids) == len(result.papers) > 0


def test_a_disconnect_in_the_middle_of_data_is_resent_on_a_new_connection(
    site: Site, smtp_server: RecordingServer
) -> None:
    site.profile("ann")
    site.profile("bob")
    smtp_server.drop_in_data(times=1)

    results = site.app(smtp(smtp_server)).run(site.profiles(), day=DAY)

    assert [r.status for r in results] == ["sent", "sent"]
    assert smtp_server.connections == 2
    with site.store() as store:
        recorded = [store.get_delivery(name, DAY.isoformat()) for name in ("ann", "bob")]
    assert smtp_server.contents() == [d.message for d in recorded if d is not None]


# -- what counts as already sent ------------------------------------------------------------------


def test_a_paper_is_sent_once_per_profile_across_days_and_formats(
    site: Site, smtp_server: RecordingServer
) -> None:
    site.profile("ann", formats=["email", "markdown", "rss"])
    # Bob follows the same topics without email: what Ann was sent does not count for him.
    site.profile("bob", formats=["markdown", "rss"], email=None, interests=INTERESTS["ann"])
    yesterday = DAY - dt.timedelta(days=1)

    site.app(smtp(smtp_server), now=NOW - dt.timedelta(days=1)).run(site.profiles(), day=yesterday)
    site.app(smtp(smtp_server)).run(site.profiles(), day=DAY)

    monday, tuesday = (keys_in_message(raw) for raw in received_by(smtp_server, "ann@example.org"))
    assert monday and tuesday
    assert set(keys_in_markdown(site.out / "ann" / f"{yesterday}.md")) == monday
    assert set(keys_in_markdown(site.out / "ann" / f"{DAY}.md")) == tuesday
    assert not monday & tuesday
    bob_monday, bob_tuesday = (keys_in_markdown(site.out / "bob" / f"{day}.md")
                               for day in (yesterday, DAY))
    assert bob_monday and bob_tuesday and not set(bob_monday) & set(bob_tuesday)
    assert set(bob_monday) & monday  # the same papers, each profile once
    for name, sent in (("ann", monday | tuesday), ("bob", {*bob_monday, *bob_tuesday})):
        union = sorted(f"https://arxiv.org/abs/{key}" for key in sent)
        for feed in ("feed.rss", "feed.atom"):
            assert sorted(feed_links(site.out / name / feed)) == union, (name, feed)


def test_running_the_same_day_twice_sends_nothing_the_second_time(
    site: Site, smtp_server: RecordingServer
) -> None:
    site.profile("ann")

    (first,) = site.app(smtp(smtp_server)).run(site.profiles(), day=DAY)
    (second,) = site.app(smtp(smtp_server)).run(site.profiles(), day=DAY)

    assert first.status == "sent"
    assert second.status == "skipped"
    assert second.error == f"already sent for {DAY}"
    assert second.message_id == first.message_id
    assert len(smtp_server.messages) == 1


def test_a_pending_delivery_is_resent_with_the_same_message_id_and_bytes(
    site: Site, smtp_server: RecordingServer
) -> None:
    site.profile("ann")
    down = AlwaysDeferred()

    (failed,) = site.app(down).run(site.profiles(), day=DAY)

    assert failed.status == "failed" and "451" in (failed.error or "")
    with site.store() as store:
        pending = store.get_delivery("ann", DAY.isoformat())
        assert pending is not None and pending.status == "pending" and pending.attempts == 1
        assert store.sent_pids("ann") == set()
    assert down.sent == [pending.message_id]

    # An hour later, with the server back: the recorded bytes leave, not a fresh rendering.
    later = NOW + dt.timedelta(hours=1)
    (result,) = site.app(smtp(smtp_server), now=later).run(site.profiles(), day=DAY)

    assert result.status == "sent" and result.message_id == pending.message_id
    (received,) = smtp_server.messages
    assert received.content == pending.message
    assert parse(received.content)["Date"].datetime == NOW
    with site.store() as store:
        sent = store.get_delivery("ann", DAY.isoformat())
        assert sent is not None and sent.status == "sent" and sent.attempts == 2
        assert store.sent_pids("ann") == set(pending.pids)


class Crash(BaseException):
    """Stands for the process dying: no `except DigestError` catches it."""


class CrashAfterAcceptance(SmtpTransport):
    """Hands the message to the server, which accepts it, then dies before the ledger knows."""

    def send(self, *, profile: str, sender: str, to: str, message: bytes,
             message_id: str) -> str:
        super().send(profile=profile, sender=sender, to=to, message=message,
                     message_id=message_id)
        raise Crash(message_id)


def test_a_crash_after_acceptance_then_the_same_day_resends_the_same_message(
    site: Site, smtp_server: RecordingServer
) -> None:
    site.profile("ann")
    crashing = CrashAfterAcceptance(smtp(smtp_server).settings, sleep=lambda _: None)

    with pytest.raises(Crash):
        site.app(crashing).run(site.profiles(), day=DAY)
    (result,) = site.app(smtp(smtp_server)).run(site.profiles(), day=DAY)

    first, again = smtp_server.contents()
    assert first == again  # the one allowed duplicate: same bytes, same Message-ID
    assert result.status == "sent" and parse(again)["Message-ID"] == result.message_id


def test_a_crash_after_acceptance_then_the_next_day_sends_no_paper_twice(
    site: Site, smtp_server: RecordingServer
) -> None:
    site.profile("ann")
    yesterday = DAY - dt.timedelta(days=1)
    crashing = CrashAfterAcceptance(smtp(smtp_server).settings, sleep=lambda _: None)

    with pytest.raises(Crash):
        site.app(crashing, now=NOW - dt.timedelta(days=1)).run(site.profiles(), day=yesterday)
    site.app(smtp(smtp_server)).run(site.profiles(), day=DAY)

    messages_with: Counter[str] = Counter()
    for raw in dict.fromkeys(smtp_server.contents()):  # the same message twice is allowed
        messages_with.update(keys_in_message(raw))
    assert [key for key, n in messages_with.items() if n > 1] == []
    with site.store() as store:
        left = store.get_delivery("ann", yesterday.isoformat())
    assert left is not None and left.status == "sent"  # settled, not pending for ever


# -- nothing to send, or nobody to send it to -----------------------------------------------------


def test_an_empty_digest_is_recorded_and_nothing_is_sent(
    site: Site, smtp_server: RecordingServer
) -> None:
    site.profile("ann", min_relevance=10.0)

    (result,) = site.app(smtp(smtp_server)).run(site.profiles(), day=DAY)

    assert (result.status, result.papers, result.message_id) == ("empty", [], None)
    assert smtp_server.messages == []
    with site.store() as store:
        delivery = store.get_delivery("ann", DAY.isoformat())
        assert delivery is not None and delivery.status == "empty" and delivery.pids == ()


def test_send_empty_sends_a_short_nothing_new_note(
    site: Site, smtp_server: RecordingServer
) -> None:
    site.profile("ann", min_relevance=10.0, send_empty=True)

    (result,) = site.app(smtp(smtp_server)).run(site.profiles(), day=DAY)

    assert result.status == "sent" and result.papers == []
    (received,) = smtp_server.messages
    parsed = parse(received.content)
    assert parsed.defects == []
    assert parsed["Subject"] == "Your digest for Wed 1 Jul: nothing new"
    assert "Nothing new this time" in text_of(received.content)
    assert keys_in_message(received.content) == set()


def test_an_unsubscribed_profile_is_skipped(site: Site, smtp_server: RecordingServer) -> None:
    site.profile("ann")
    site.profile("bob")
    with site.store() as store:
        store.set_subscribed("ann", False, now=NOW - dt.timedelta(days=3))

    results = site.app(smtp(smtp_server)).run(site.profiles(), day=DAY)

    assert [(r.profile, r.status, r.error) for r in results] == [
        ("ann", "skipped", "unsubscribed"), ("bob", "sent", None)]
    assert [m.rcpt_tos for m in smtp_server.messages] == [["bob@example.org"]]
    with site.store() as store:
        assert store.get_delivery("ann", DAY.isoformat()) is None


# -- two runs at once -----------------------------------------------------------------------------


LockHolder = Callable[..., "subprocess.Popen[str]"]


@pytest.fixture
def lock_holder(site: Site) -> Iterator[LockHolder]:
    """Start another process that takes the store's "run" lock (at NOW) and keeps it."""
    procs: list[subprocess.Popen[str]] = []

    def start(at: dt.datetime = NOW) -> subprocess.Popen[str]:
        code = textwrap.dedent(f"""
            import datetime as dt, sys, time
            from digest.store import Store
            store = Store.open({site.db_url!r})
            store.acquire_lock("run", now=dt.datetime.fromisoformat({at.isoformat()!r}))
            print("locked", flush=True)
            time.sleep(120)
        """)
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_second_run_is_refused_while_another_holds_the_lock(
    site: Site, smtp_server: RecordingServer, lock_holder: LockHolder
) -> None:
    site.profile("ann")
    other = lock_holder()

    with pytest.raises(StoreLockedError, match=rf"'run' lock \(pid {other.pid} on "):
        site.app(smtp(smtp_server)).run(site.profiles(), day=DAY)
    assert smtp_server.messages == []

    other.kill()
    other.wait()
    (result,) = site.app(smtp(smtp_server)).run(site.profiles(), day=DAY)  # stale: taken over

    assert result.status == "sent" and len(smtp_server.messages) == 1


def test_a_live_run_on_this_host_keeps_its_lock_however_long_it_takes(
    site: Site, smtp_server: RecordingServer, lock_holder: LockHolder
) -> None:
    site.profile("ann")
    other = lock_holder(NOW)

    with pytest.raises(StoreLockedError, match=f"pid {other.pid}"):
        site.app(smtp(smtp_server), now=NOW + dt.timedelta(hours=2)).run(site.profiles(), day=DAY)
    assert smtp_server.messages == []


# -- the command line -----------------------------------------------------------------------------


def invoke(site: Site, *args: str, smtp_port: int | None = None) -> Result:
    config = site.root / "digest.toml"
    lines = [f"out_dir = {json.dumps(str(site.out))}", "[email]", f"from = {json.dumps(SENDER)}"]
    if smtp_port is not None:
        lines += ["[smtp]", 'host = "127.0.0.1"', f"port = {smtp_port}", 'security = "none"',
                  "retries = 0"]
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return CliRunner().invoke(
        main, ["--db", site.db_url, "--profiles", str(site.profiles_dir), "--config", str(config),
               *args],
        catch_exceptions=False,
    )


@pytest.fixture
def in_scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the CLI in an empty folder, with no DIGEST_* variables from the environment."""
    monkeypatch.chdir(tmp_path)
    for name in ("DIGEST_DB", "DIGEST_CONFIG", "DIGEST_PROFILES"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("in_scratch")
def test_dry_run_writes_under_dry_run_and_records_nothing(site: Site) -> None:
    site.profile("ann")
    site.profile("bob", formats=["markdown", "rss"], email=None)

    result = invoke(site, "run", "--date", str(DAY), "--dry-run", "--json")

    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["profile"], r["status"]) for r in lines] == [
        ("ann", "would send"), ("bob", "would send")]
    ann = site.out / "ann" / "dry-run"
    assert sorted(p.name for p in ann.iterdir()) == [
        ".feeds.stamp", f"{DAY}.eml", f"{DAY}.md", "feed.atom", "feed.rss"]
    assert sorted(p.name for p in (site.out / "bob" / "dry-run").iterdir()) == [
        ".feeds.stamp", f"{DAY}.md", "feed.atom", "feed.rss"]
    assert [p.name for p in (site.out / "ann").iterdir()] == ["dry-run"]
    message = (ann / f"{DAY}.eml").read_bytes()
    assert parse(message).defects == []
    assert keys_in_message(message) == set(lines[0]["papers"])
    assert feed_links(ann / "feed.rss") == []  # feeds come from the ledger: nothing was sent
    with site.store() as store:
        for name in ("ann", "bob"):
            assert store.get_delivery(name, DAY.isoformat()) is None
            assert store.sent_pids(name) == set()


@pytest.mark.usefixtures("in_scratch")
def test_without_smtp_run_writes_eml_files_that_parse_back(site: Site) -> None:
    site.profile("ann")
    site.profile("bob")

    result = invoke(site, "run", "--date", str(DAY), "--json")

    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["status"] for r in lines] == ["sent", "sent"]
    with site.store() as store:
        for line in lines:
            (eml,) = (site.out / line["profile"]).glob("*.eml")
            assert str(eml) in line["files"]
            raw = eml.read_bytes()
            parsed = parse(raw)
            assert parsed.defects == [] and all(p.defects == [] for p in parsed.walk())
            assert parsed["Message-ID"] == line["message_id"]
            assert [p.get_content_type() for p in parsed.iter_parts()] == [
                "text/plain", "text/html"]
            delivery = store.get_delivery(line["profile"], DAY.isoformat())
            assert delivery is not None and delivery.status == "sent"
            assert delivery.message == raw
            assert keys_in_message(raw) == set(line["papers"])


@pytest.mark.usefixtures("in_scratch")
def test_run_over_smtp_from_the_config_file_exits_1_when_a_profile_fails(
    site: Site, smtp_server: RecordingServer
) -> None:
    site.profile("ann")
    site.profile("bob")
    smtp_server.reject("ann@example.org")

    result = invoke(site, "run", "--date", str(DAY), smtp_port=smtp_server.port)

    assert result.exit_code == 1
    assert result.stdout.splitlines()[0].startswith("ann: failed")
    assert NO_SUCH_USER in result.stdout
    assert [m.rcpt_tos for m in smtp_server.messages] == [["bob@example.org"]]


# -- replaying real Hugging Face pages as three days ----------------------------------------------


def hf_pages(shared_dir: Path) -> list[tuple[dt.date, Path]]:
    """The saved pages with the day each shows (no year: read as 2026), oldest first."""
    pages = []
    for path in sorted((shared_dir / "data" / "hf_pages").glob("*.txt")):
        header = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()][4]
        pages.append((dt.datetime.strptime(f"{header} 2026", "%b %d %Y").date(), path))
    return sorted(pages)


def page_titles(path: Path) -> set[str]:
    """Normalized titles of a saved page: after the five header lines, title then abstract."""
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()][5:]
    return {normalize_title(title) for title in lines[0::2]}


def test_replaying_hf_pages_as_three_days_sends_no_paper_twice(
    tmp_path: Path, shared_dir: Path, smtp_server: RecordingServer
) -> None:
    site = Site(tmp_path)
    site.profile("ann", max_papers=30, min_relevance=0.0, interests=[
        "vision language models", "diffusion", "reasoning", "benchmark"])
    pages = hf_pages(shared_dir)
    assert len(pages) == 3

    for day, page in pages:
        now = dt.datetime.combine(day, dt.time(7), dt.UTC)
        app = site.app(smtp(smtp_server), now=now)
        (ingested,) = app.ingest([FileSource(str(page), "hf-page")], today=day)
        assert ingested.ok, ingested
        (result,) = app.run(site.profiles(), day=day)
        assert result.status == "sent", result

    with site.store() as store:
        deliveries = store.deliveries_of("ann")
        delivered = store.papers_by_pid(pid for d in deliveries for pid in d.pids)
    assert [d.status for d in deliveries] == ["sent"] * 3
    assert all(len(d.pids) >= 5 for d in deliveries), [len(d.pids) for d in deliveries]
    keys = Counter(str(item["key"]) for d in deliveries for item in d.items)
    assert keys and max(keys.values()) == 1
    titles = Counter(normalize_title(paper.title) for paper in delivered.values())
    assert max(titles.values()) == 1  # one title merged into one paper, delivered once
    on_pages = Counter(title for _, page in pages for title in page_titles(page))
    repeated = {title for title, n in on_pages.items() if n > 1}
    assert len(repeated & set(titles)) > 3  # the pages overlap, and some overlap was chosen
    # What left, read back from the messages: each delivered title in exactly one of them.
    received = smtp_server.contents()
    assert sorted(received) == sorted(d.message for d in deliveries if d.message)
    texts = [" ".join(text_of(raw).split()) for raw in received]
    for paper in delivered.values():
        title = " ".join(paper.title.split())
        assert sum(title in text for text in texts) == 1, title
