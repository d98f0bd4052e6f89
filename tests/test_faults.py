"""Faults a run and an ingest must come through: an SMTP server in trouble, a database another
process holds, an output folder that cannot be written, a template with an error.

Each test works on a copy of test_deliver's site (the 483 sample papers, a fitted model, small
profiles) and, where a user would, through the command line. What must hold whatever went wrong:

- what is temporary (421, 451, a slow or absent server, a lock) is retried or left pending for
  the next run, what is permanent (550) is reported, and the other profiles are served;
- the ledger holds as sent exactly what the SMTP server accepted, byte for byte;
- the user reads what failed and where (server, database, file and line), never a traceback;
- nothing is half-written: no paper recorded as sent that did not leave, no partial file.

A held database lock makes SQLite wait 30 s before it gives up; the fast versions shorten that
wait to half a second in this process, ``DIGEST_LONG_TESTS=1`` waits the real 30 s.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import test_deliver
from click.testing import CliRunner, Result
from smtp_server import DEFER, NO_SUCH_USER, RecordingServer, free_port
from test_deliver import DAY, SENDER, Site, parse

from digest.cli import main
from digest.mailer import SmtpSettings, SmtpTransport

LONG = bool(os.environ.get("DIGEST_LONG_TESTS"))

# test_deliver's fixtures: a store with the sample and a model once per module, a copy per test,
# and an empty working folder.
sample_site = test_deliver.sample_site
site = test_deliver.site
in_scratch = test_deliver.in_scratch


def transport(server_port: int, sleeps: list[float], *, retries: int = 3,
              timeout: float = 5.0) -> SmtpTransport:
    """SMTP to 127.0.0.1:`server_port`, recording each backoff instead of sleeping it."""
    settings = SmtpSettings("127.0.0.1", server_port, security="none", timeout=timeout,
                            retries=retries, backoff=0.001)
    return SmtpTransport(settings, sleep=sleeps.append)


def cli(site: Site, *args: str, smtp_port: int | None = None, **settings: str) -> Result:
    """``digest --db --profiles --config ARGS`` as a user runs it, with a digest.toml that has
    `settings` as top-level keys (out_dir is the site's unless given) and, with `smtp_port`,
    an [smtp] section without retries (a temporary failure leaves the digest pending)."""
    config = site.root / "digest.toml"
    settings.setdefault("out_dir", str(site.out))
    lines = [f"{key} = {json.dumps(value)}" for key, value in settings.items()]  # JSON is TOML
    lines += ["[email]", f"from = {json.dumps(SENDER)}"]
    if smtp_port is not None:
        lines += ["[smtp]", 'host = "127.0.0.1"', f"port = {smtp_port}", 'security = "none"',
                  "retries = 0"]
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = CliRunner().invoke(
        main, ["--db", site.db_url, "--profiles", str(site.profiles_dir), "--config",
               str(config), *args],
        catch_exceptions=False,
    )
    assert "Traceback" not in result.output, result.output
    return result


def status_lines(result: Result) -> dict[str, str]:
    """``digest run`` output: each profile's line, by profile."""
    return dict(line.split(": ", 1) for line in result.stdout.splitlines()
                if not line.startswith(" "))


def no_partial_files(folder: Path) -> None:
    assert [p for p in folder.rglob("*") if p.name.endswith(".tmp")] == []


def ledger_matches_server(site: Site, server: RecordingServer,
                          names: Sequence[str]) -> dict[str, str | None]:
    """Assert that the ledger holds as sent exactly what the server accepted: each sent digest
    arrived once, byte for byte, at its profile's address, and its papers are recorded as sent;
    no other digest arrived and no other paper is recorded. Returns the status of each profile's
    digest of DAY (None: there is none)."""
    with server.lock:
        received = {str(parse(m.content)["Message-ID"]): m for m in server.messages}
        assert len(received) == len(server.messages), "a message arrived twice"
    statuses: dict[str, str | None] = {}
    with site.store() as store:
        for name in names:
            delivery = store.get_delivery(name, DAY.isoformat())
            statuses[name] = None if delivery is None else delivery.status
            if delivery is None or delivery.status != "sent":
                assert store.sent_pids(name) == set(), f"{name}: papers recorded as sent"
                continue
            message = received.pop(str(delivery.message_id))
            assert message.rcpt_tos == [f"{name}@example.org"]
            assert message.content == delivery.message
            assert store.sent_pids(name) == set(delivery.pids) != set()
    assert received == {}, "the server accepted digests the ledger does not hold as sent"
    return statuses


# -- the SMTP server in trouble -------------------------------------------------------------------


def test_temporary_smtp_failures_are_retried_permanent_ones_reported_the_rest_sent(
    site: Site, smtp_server: RecordingServer
) -> None:
    names = ["ann", "bob", "cid", "dan"]
    for name in names:
        site.profile(name)
    smtp_server.closing(stage="CONNECT")  # ann: "421" for a greeting,
    smtp_server.closing(stage="MAIL")  # then "421" to MAIL,
    smtp_server.slow(2.0, stage="MAIL")  # then no answer to MAIL within the timeout,
    smtp_server.slow(0.2, stage="DATA")  # then a slow but timely DATA: sent
    smtp_server.defer(stage="RCPT", rcpt="cid@example.org")  # 451 once
    smtp_server.reject("dan@example.org")  # 550, for good
    sleeps: list[float] = []

    results = site.app(transport(smtp_server.port, sleeps, timeout=1.0)).run(
        site.profiles(), day=DAY)

    assert [(r.profile, r.status) for r in results] == [
        ("ann", "sent"), ("bob", "sent"), ("cid", "sent"), ("dan", "failed")]
    assert len(sleeps) == 3 + 1  # three retries for ann, one for cid, none for dan's 550
    error = results[3].error or ""
    assert f"smtp:127.0.0.1:{smtp_server.port}" in error and "dan@example.org" in error
    assert NO_SUCH_USER in error
    assert ledger_matches_server(site, smtp_server, names) == {
        "ann": "sent", "bob": "sent", "cid": "sent", "dan": "failed"}


def test_with_nothing_listening_the_run_gives_up_quickly_and_the_next_run_sends_it_all(
    site: Site
) -> None:
    names = ["ann", "bob", "cid"]
    for name in names:
        site.profile(name)
    port = free_port()
    sleeps: list[float] = []

    first = site.app(transport(port, sleeps, retries=2)).run(site.profiles(), day=DAY)

    assert [r.status for r in first] == ["failed"] * 3
    for result in first:
        assert result.error is not None and f"smtp:127.0.0.1:{port}" in result.error
        assert "Connection refused" in result.error
    # Tried and retried for the first digest; the others are not tried against a dead server.
    assert len(sleeps) == 2
    assert all("not tried" in (r.error or "") for r in first[1:])
    with site.store() as store:
        pending = {n: store.get_delivery(n, DAY.isoformat()) for n in names}
    assert {n: d and d.status for n, d in pending.items()} == dict.fromkeys(names, "pending")

    with RecordingServer(port=port) as server:
        second = site.app(transport(port, sleeps)).run(site.profiles(), day=DAY)

        assert [r.status for r in second] == ["sent"] * 3
        assert ledger_matches_server(site, server, names) == dict.fromkeys(names, "sent")
        assert {m.content for m in server.messages} == {d.message for d in pending.values()
                                                         if d is not None}


@pytest.mark.usefixtures("in_scratch")
def test_the_command_line_reports_each_failure_and_a_later_run_settles_them(
    site: Site, smtp_server: RecordingServer
) -> None:
    names = ["ann", "bob", "cid"]
    for name in names:
        site.profile(name)
    smtp_server.defer(times=None, stage="RCPT", rcpt="bob@example.org")
    smtp_server.reject("cid@example.org")

    first = cli(site, "run", "--date", str(DAY), smtp_port=smtp_server.port)

    assert first.exit_code == 1
    lines = status_lines(first)
    assert lines["ann"].startswith("sent, ")
    assert lines["bob"].startswith("failed (") and DEFER in lines["bob"]
    assert lines["cid"].startswith("failed (") and NO_SUCH_USER in lines["cid"]
    assert ledger_matches_server(site, smtp_server, names) == {
        "ann": "sent", "bob": "pending", "cid": "failed"}
    # A markdown digest lands with its email only.
    assert [(site.out / n / f"{DAY}.md").exists() for n in names] == [True, False, False]
    no_partial_files(site.out)

    smtp_server.rules.clear()
    second = cli(site, "run", "--date", str(DAY), smtp_port=smtp_server.port)

    assert second.exit_code == 0, second.output
    assert [s.split(" ")[0] for s in status_lines(second).values()] == [
        "skipped", "sent,", "sent,"]
    assert ledger_matches_server(site, smtp_server, names) == dict.fromkeys(names, "sent")
    assert all((site.out / n / f"{DAY}.md").exists() for n in names)


# -- the database held by another process ---------------------------------------------------------


@contextlib.contextmanager
def held(site: Site, mode: str, seconds: float = 600) -> Iterator[None]:
    """Another process holds the store's SQLite file for `seconds` (at most until the block
    ends): as a writer (others may read), or in exclusive locking mode (nobody may even read)."""
    code = textwrap.dedent(f"""
        import sqlite3, time
        conn = sqlite3.connect({str(site.root / "digest.sqlite")!r}, isolation_level=None)
        if {mode!r} == "exclusive":
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        conn.execute("BEGIN EXCLUSIVE" if {mode!r} == "exclusive" else "BEGIN IMMEDIATE")
        print("locked", flush=True)
        time.sleep({seconds})
        conn.execute("COMMIT")
    """)
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                          text=True) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
            yield
        finally:
            holder.kill()


@pytest.fixture
def busy_timeout() -> Iterator[None]:
    """SQLite waits half a second for a lock in this process, not the store's 30 s (unless
    DIGEST_LONG_TESTS is set): each new connection gets the shorter wait before the store's own
    set-up on connect (which may wait for the lock itself), and again when it is checked out."""
    def shorten(dbapi_connection: Any, *_: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=500")

    if LONG:
        yield
        return
    for event in ("connect", "checkout"):
        sa.event.listen(sa.pool.Pool, event, shorten)
    try:
        yield
    finally:
        for event in ("connect", "checkout"):
            sa.event.remove(sa.pool.Pool, event, shorten)


def new_papers(folder: Path) -> Path:
    """A file of three papers the sample does not hold."""
    path = folder / "new.jsonl"
    path.write_text("".join(
        f'{{"id": "2607.0000{n}", "title": "A new paper {n}", "abstract": "On vision '
        f'language models, part {n}.", "authors": ["A. Author"], "categories": ["cs.CV"], '
        f'"date": "{DAY}"}}\n' for n in range(3)), encoding="utf-8")
    return path


def store_dump(site: Site) -> tuple[list[Any], ...]:
    """Everything the store holds but its timestamps: papers, sources, ledger, locks."""
    with contextlib.closing(sqlite3.connect(site.root / "digest.sqlite")) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        return tuple(conn.execute(query).fetchall() for query in (
            "SELECT key, title, version FROM papers ORDER BY key",
            "SELECT pid, source FROM paper_sources ORDER BY pid, source",
            "SELECT profile, digest_key, status, message_id FROM deliveries ORDER BY id",
            "SELECT profile, pid FROM sent ORDER BY profile, pid",
            "SELECT name FROM locks",
        ))


@pytest.mark.usefixtures("in_scratch", "busy_timeout")
@pytest.mark.parametrize("mode", ["writer", "exclusive"])
def test_a_database_held_by_another_process_fails_ingest_and_run_naming_it(
    site: Site, smtp_server: RecordingServer, tmp_path: Path, mode: str
) -> None:
    site.profile("ann")
    site.profile("bob")
    papers = new_papers(tmp_path)
    before = store_dump(site)

    with held(site, mode):
        ingest = cli(site, "ingest", str(papers), "sample")
        run = cli(site, "run", "--date", str(DAY), smtp_port=smtp_server.port)

    for result in (ingest, run):
        assert result.exit_code == 1
        assert f"{site.db_url}: the database is locked by another process" in result.stderr
    assert smtp_server.messages == []
    assert not (site.out / "ann").exists() and not (site.out / "bob").exists()
    assert store_dump(site) == before

    assert cli(site, "ingest", str(papers)).exit_code == 0
    assert cli(site, "run", "--date", str(DAY), smtp_port=smtp_server.port).exit_code == 0
    assert ledger_matches_server(site, smtp_server, ["ann", "bob"]) == {
        "ann": "sent", "bob": "sent"}


@pytest.mark.usefixtures("in_scratch")
def test_a_run_waits_for_a_database_another_process_writes_for_a_moment(
    site: Site, smtp_server: RecordingServer
) -> None:
    site.profile("ann")

    with held(site, "writer", seconds=1.5):
        started = time.monotonic()
        result = cli(site, "run", "--date", str(DAY), smtp_port=smtp_server.port)

    assert result.exit_code == 0, result.output
    assert time.monotonic() - started > 1.0  # it waited for the lock
    assert ledger_matches_server(site, smtp_server, ["ann"]) == {"ann": "sent"}


@pytest.mark.usefixtures("in_scratch")
def test_ingest_waits_for_a_database_another_process_writes_for_a_moment(
    site: Site, tmp_path: Path
) -> None:
    papers = new_papers(tmp_path)

    with held(site, "writer", seconds=1.5):
        result = cli(site, "ingest", str(papers))

    assert result.exit_code == 0, result.output


# -- an output folder that cannot be written ------------------------------------------------------


@pytest.mark.usefixtures("in_scratch")
def test_a_profile_folder_that_cannot_be_made_fails_that_digest_before_its_email_leaves(
    site: Site, smtp_server: RecordingServer
) -> None:
    # Works as root too, which ignores permissions: the folder's name is taken by a file.
    site.profile("ann")
    site.profile("bob")
    site.out.joinpath("ann").write_text("not a folder\n", encoding="utf-8")

    first = cli(site, "run", "--date", str(DAY), smtp_port=smtp_server.port)

    assert first.exit_code == 1
    lines = status_lines(first)
    assert lines["ann"].startswith(f"failed ({site.out / 'ann'}: cannot write: ")
    assert lines["bob"].startswith("sent, ")
    assert ledger_matches_server(site, smtp_server, ["ann", "bob"]) == {
        "ann": "pending", "bob": "sent"}
    no_partial_files(site.out)

    site.out.joinpath("ann").unlink()
    second = cli(site, "run", "--date", str(DAY), smtp_port=smtp_server.port)

    assert second.exit_code == 0, second.output
    assert ledger_matches_server(site, smtp_server, ["ann", "bob"]) == {
        "ann": "sent", "bob": "sent"}
    assert (site.out / "ann" / f"{DAY}.md").exists()


@pytest.mark.usefixtures("in_scratch")
def test_feeds_that_cannot_be_written_exit_1_and_the_next_run_writes_them(site: Site) -> None:
    site.profile("ann", formats=["rss"], email=None)
    site.out.joinpath("ann").write_text("not a folder\n", encoding="utf-8")

    first = cli(site, "run", "--date", str(DAY))

    assert first.exit_code == 1
    line = status_lines(first)["ann"]
    assert line.startswith("sent, ")
    assert f"(feeds not written: {site.out / 'ann'}: cannot write: " in line
    site.out.joinpath("ann").unlink()

    second = cli(site, "run", "--date", str(DAY))

    assert second.exit_code == 0, second.output
    assert status_lines(second)["ann"].startswith("skipped")
    with site.store() as store:
        sent = {paper.key for paper in store.papers_by_pid(store.sent_pids("ann")).values()}
    assert set(test_deliver.feed_links(site.out / "ann" / "feed.rss")) == {
        f"https://arxiv.org/abs/{key}" for key in sent} != set()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root writes into read-only folders")
@pytest.mark.usefixtures("in_scratch")
def test_a_read_only_output_folder_fails_the_digests_naming_it(site: Site) -> None:
    site.profile("ann", formats=["email", "markdown"])
    folder = site.out / "ann"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        result = cli(site, "run", "--date", str(DAY))
    finally:
        folder.chmod(0o755)

    assert result.exit_code == 1
    assert status_lines(result)["ann"].startswith(f"failed ({folder}: cannot write: ")
    assert "Permission denied" in result.stdout
    assert list(folder.iterdir()) == []
    with site.store() as store:
        assert store.sent_pids("ann") == set()


@pytest.mark.usefixtures("in_scratch")
def test_an_output_folder_inside_a_file_fails_the_run_naming_it(site: Site, tmp_path: Path) -> None:
    site.profile("ann")
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    before = store_dump(site)

    result = cli(site, "run", "--date", str(DAY), out_dir=str(blocker / "out"))

    assert result.exit_code == 1
    # The last line (a progress line of the model fit may come first).
    assert result.stderr.splitlines()[-1].startswith(f"digest: {blocker / 'out'}")
    assert "Not a directory" in result.stderr
    assert store_dump(site) == before


# -- a template with an error ---------------------------------------------------------------------


#: A template of the user's with an error, and the line it is on. The feed's matters as much:
#: feeds are rebuilt from the ledger after a digest is recorded as sent.
BROKEN = {
    "syntax": ("email.html", "<p>\n{% for item in items %}\n{{ item.title }\n{% endfor %}\n", 3),
    "runtime": ("digest.md", "# Digest\n\n{{ digest.no_such_field.title }}\n", 3),
    "feed": ("feed_entry.html", "<p>{{ item.title }}</p>\n<p>{{ item.no_such_field }}</p>\n", 2),
}


@pytest.mark.usefixtures("in_scratch")
@pytest.mark.parametrize("error", list(BROKEN))
def test_a_template_with_an_error_names_file_and_line_and_nothing_leaves(
    site: Site, smtp_server: RecordingServer, tmp_path: Path, error: str
) -> None:
    name, text, line = BROKEN[error]
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / name).write_text(text, encoding="utf-8")
    site.profile("ann")
    site.profile("bob")
    before = store_dump(site)

    result = cli(site, "run", "--date", str(DAY), smtp_port=smtp_server.port,
                 templates_dir=str(templates))

    assert result.exit_code == 1
    for status in status_lines(result).values():
        assert status.startswith(f"failed ({templates / name}:{line}: ")
    assert smtp_server.messages == []
    assert store_dump(site) == before
    assert not (site.out / "ann").exists()
