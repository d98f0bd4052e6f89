"""A probe of hostile inputs over every command and source kind: none may end in a traceback.

Each case runs the real CLI in-process (click's CliRunner) in a scratch folder with a real
SQLite store, the example profile and whatever hostile files the case writes. It passes when
the command exits 0, 1 or 2 through the CLI's own error handling, says nothing that looks
like a Python traceback, and, where a case names one, prints the clear error expected.

The network is out of reach: every proxy variable points at a closed loopback port, so a
case that would reach out fails fast instead.
"""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner
from stores import Backend, postgresql_only

from digest.cli import main
from digest.store import Store

ROOT = Path(__file__).resolve().parents[1]
GOOD = json.dumps({"id": "2503.00001", "title": "A good paper", "abstract": "About vision."})
NO_NETWORK = {name: "http://127.0.0.1:9" for name in
              ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
               "all_proxy")}

Content = bytes | str | Callable[[Path], None]


@dataclass
class Case:
    id: str
    args: list[str]
    files: dict[str, Content] = field(default_factory=dict)
    #: A substring the output (stdout or stderr) must hold: the clear error.
    says: str | None = None
    #: The exit status wanted, when it matters.
    status: int | None = None
    #: Who fixes a traceback this case still gives on this branch (the case may pass once
    #: their branch is merged).
    owner: str | None = None


def _sparse(size: int) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        with path.open("wb") as handle:
            handle.truncate(size)

    return write


def _gzipped(data: bytes) -> Callable[[Path], None]:
    """Compressed when the case runs, not each time the module is collected."""
    return lambda path: path.write_bytes(gzip.compress(data))


def _toml(text: str) -> dict[str, Content]:
    return {"digest.toml": text}


def _ingest(name: str, content: Content, *extra: str, says: str | None = None) -> Case:
    return Case(f"ingest-{name}", ["ingest", name, "next.jsonl", *extra],
                {name: content, "next.jsonl": GOOD + "\n"}, says)


_DEEP = "[" * 100_000
_HF_PAGE = "new\n\nbanner\n\nSubscribe\n\nbyAK\n\nMar 11\n\n"
_BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">'
              for i in range(1, 10))
    + ']><rss><channel><title>&lol9;</title></channel></rss>'
)

CASES: list[Case] = [
    # --- JSON Lines -------------------------------------------------------------------------
    _ingest("deep.jsonl", f"{GOOD}\n{_DEEP}\n", says="nested too deeply"),
    _ingest("deep-first.jsonl", f"{_DEEP}\n{GOOD}\n", says="nested too deeply"),
    _ingest("deep-object.jsonl", '{"a":' * 100_000 + "\n", says="nested too deeply"),
    _ingest("deep-authors.jsonl",
            json.dumps({"title": "t", "authors": "x"})[:-1] + ', "b": ' + "[" * 900 + "]" * 900
            + "}\n"),
    _ingest("nested-authors.jsonl",
            '{"title": "t", "authors": ' + "[" * 500 + "]" * 500 + "}\n", says="authors"),
    _ingest("nul.jsonl", b"\0" * 5000),
    _ingest("latin1.jsonl", '{"title": "caf\xe9"}\n'.encode("latin-1"), says="not UTF-8"),
    _ingest("utf16.jsonl", (GOOD + "\n").encode("utf-16")),
    _ingest("empty.jsonl", b""),
    _ingest("bom-only.jsonl", b"\xef\xbb\xbf"),
    _ingest("blank-lines.jsonl", "\n\n \n\t\n"),
    _ingest("bigint-id.jsonl", '{"id": ' + "9" * 5000 + ', "title": "t"}\n'),
    _ingest("inf-id.jsonl", '{"id": 1e400, "title": "t"}\n'),
    _ingest("nan-title.jsonl", '{"title": NaN}\n'),
    _ingest("bad-dates.jsonl", "\n".join(json.dumps({"title": f"t{i}", "date": d}) for i, d in
                                         enumerate(["9999-99-99", "-0001-01-01", 20250101,
                                                    "0000-01-01", "2025-02-30T99:00"])) + "\n"),
    _ingest("surrogate.jsonl", '{"title": "\\ud800"}\n'),
    _ingest("huge-title.jsonl", json.dumps({"title": "x" * 2_000_000}) + "\n",
            says="characters long; expected at most"),
    _ingest("array.jsonl", "[1, 2, 3]\n"),
    _ingest("scalars.jsonl", f"{GOOD}\n1\nnull\n\"s\"\ntrue\n"),
    _ingest("sparse.jsonl", _sparse(200 << 20), says="longer than 64 MiB"),
    _ingest("cr-only.jsonl", (GOOD + "\r") * 3),
    _ingest("u2028.jsonl", json.dumps({"title": "a\u2028b"}, ensure_ascii=False) + "\n"),
    _ingest("control.jsonl", json.dumps({"title": "a\x00b\x1bc", "abstract": "\x07"}) + "\n"),
    _ingest("huge-authors.jsonl", json.dumps({"title": "t", "authors": ["a"] * 100_000}) + "\n"),
    _ingest("id-types.jsonl", "\n".join(json.dumps({"title": f"t{i}", "id": v}) for i, v in
                                        enumerate([True, [], {}, -1, "   ", "arXiv:"])) + "\n"),
    # --- CSV --------------------------------------------------------------------------------
    _ingest("nul.csv", b"title\nab\0c\n"),
    _ingest("field-limit.csv", "title,abstract\nt," + "x" * 200_000 + "\n"),
    _ingest("open-quote.csv", 'title,abstract\nt,"never closed\n' + "more\n" * 1000),
    _ingest("no-title.csv", "id,abstract\n1,2\n", says="no 'title' column"),
    _ingest("header-only.csv", "title\n"),
    _ingest("deep-authors.csv", f"title,authors\nt,{_DEEP}\n", says="not valid JSON"),
    _ingest("latin1.csv", "title\ncaf\xe9\n".encode("latin-1"), says="not UTF-8"),
    _ingest("ragged.csv", "title,id\nt\nt,1,2\n", says="fields"),
    _ingest("long-line.csv", "title\n" + "y" * 1_100_000 + "\n",
            says="characters long; expected at most"),
    _ingest("sparse.csv", _sparse(100 << 20), says="longer than 64 MiB"),
    # --- gzip -------------------------------------------------------------------------------
    _ingest("bomb.jsonl.gz", _gzipped(b"\0" * (4 << 20)), says="compression bomb"),
    _ingest("bomb.csv.gz", _gzipped(b"title\n" + b"\0" * (4 << 20)), says="compression bomb"),
    _ingest("bomb.json.gz", _gzipped(b"[" + b" " * (20 << 20)), says="larger than 16 MiB"),
    _ingest("truncated.jsonl.gz", gzip.compress((GOOD + "\n").encode() * 50)[:-20],
            says="truncated or corrupt"),
    _ingest("corrupt.jsonl.gz", b"\x1f\x8b\x08\x00" + b"\xff" * 100),
    _ingest("magic-only.jsonl.gz", b"\x1f\x8b"),
    _ingest("double.jsonl.gz", gzip.compress(gzip.compress(GOOD.encode()))),
    _ingest("plain.jsonl.gz", GOOD + "\n"),
    # --- Hugging Face ----------------------------------------------------------------------
    _ingest("deep.json", _DEEP, "--format", "hf-json", says="nested too deeply"),
    _ingest("object.json", "{}", "--format", "hf-json", says="expected an array"),
    _ingest("entries.json", json.dumps([1, None, {"paper": 5}, {"paper": {"title": 3}},
                                        {"paper": {"title": "t", "authors": "x"}},
                                        {"paper": {"title": "t", "id": 7}},
                                        {"paper": {"title": "t"}, "publishedAt": "never"}]),
            "--format", "hf-json"),
    _ingest("latin1.json", b'[{"paper": {"title": "caf\xe9"}}]', "--format", "hf-json"),
    _ingest("sparse.json", _sparse(100 << 20), "--format", "hf-json",
            says="larger than 16 MiB"),
    _ingest("page.txt", _HF_PAGE + ("t\n\n" + "a" * 2000 + "\n\n") * 3),
    _ingest("bad-day.txt", "new\n\nb\n\nSubscribe\n\nbyAK\n\nFeb 30\n\nt\n\na\n",
            says="a day such as"),
    _ingest("binary.txt", bytes(range(256)) * 10, "--format", "hf-page"),
    _ingest("long-title.txt", _HF_PAGE + "t" * 10_000 + "\n\nabstract\n"),
    _ingest("crlf.txt", (_HF_PAGE + "Title\n\nAbstract\n").replace("\n", "\r\n")),
    # --- arXiv feeds and API responses --------------------------------------------------------
    _ingest("deep.xml", "<rss>" + "<a>" * 100_000, says="nested more than 100 elements deep"),
    _ingest("laughs.xml", _BILLION_LAUGHS),
    _ingest("not.xml", "<<<>>>"),
    _ingest("empty.xml", ""),
    _ingest("sparse.xml", _sparse(20 << 20), says="larger than 16 MiB"),
    _ingest("latin1.xml", '<?xml version="1.0"?><rss><title>caf\xe9</title></rss>'.encode(
        "latin-1")),
    _ingest("api.xml", '<feed xmlns="http://www.w3.org/2005/Atom" '
                       'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">'
                       "<opensearch:totalResults>-5</opensearch:totalResults>"
                       "<entry><id>nonsense</id><title>0</title></entry></feed>",
            "--format", "arxiv-api"),
    _ingest("external-entity.xml", '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM '
                                   '"file:///etc/passwd">]><rss><channel><item><title>&x;'
                                   "</title></item></channel></rss>"),
    # --- what a SOURCE names -----------------------------------------------------------------
    Case("source-missing", ["ingest", "nowhere.jsonl"], says="cannot read"),
    Case("source-dir", ["ingest", "adir"], {"adir/x": "x"}, says="is a folder"),
    Case("source-devnull", ["ingest", "/dev/null"]),
    Case("source-no-format", ["ingest", "blob"], {"blob": b"\x00\x01\x02"},
         says="cannot tell the format"),
    Case("source-arxiv-empty", ["ingest", "arxiv:"], status=2),
    Case("source-arxiv-bad", ["ingest", "arxiv:cs.ZZ!"], status=2),
    Case("source-arxiv-api-empty", ["ingest", "arxiv-api:"], status=2),
    Case("source-arxiv-api-range", ["ingest", "arxiv-api:cs.CV:2026-11-20..2026-11-01"],
         status=2),
    Case("source-arxiv-api-bad-day", ["ingest", "arxiv-api:cs.CV:2026-13-01..2026-13-02"],
         status=2),
    Case("source-arxiv-api-ids", ["ingest", "arxiv-api:id:"], status=2),
    Case("source-arxiv-api-bad-id", ["ingest", "arxiv-api:id:not-an-id"], status=2),
    Case("source-hf-bad-day", ["ingest", "hf:2026-02-30"], status=2),
    Case("source-hf-word", ["ingest", "hf:tomorrow"], status=2),
    Case("source-hf-year", ["ingest", "hf:99999-01-01"], status=2),
    Case("source-url-refused", ["ingest", "http://127.0.0.1:9/x.jsonl"],
         _toml("[http]\nretries = 0\ntimeout = 2\n")),
    Case("source-url-bad-ipv6", ["ingest", "https://[::1/x"], says="not a valid URL", status=2),
    Case("source-url-no-host", ["ingest", "http://"], says="names no host", status=2),
    Case("source-ftp", ["ingest", "ftp://example.org/x.jsonl"]),
    Case("source-file-url", ["ingest", "file:///etc/hostname"]),
    Case("ingest-bad-format", ["ingest", "next.jsonl", "--format", "yaml"],
         {"next.jsonl": GOOD}, status=2),
    Case("ingest-bad-date", ["ingest", "next.jsonl", "--date", "2026-02-30"],
         {"next.jsonl": GOOD}, status=2),
    Case("ingest-date-min", ["ingest", "page.txt", "--date", "0001-01-01"],
         {"page.txt": _HF_PAGE + "t\n\na\n"}),
    Case("ingest-date-max", ["ingest", "page.txt", "--date", "9999-12-31"],
         {"page.txt": _HF_PAGE + "t\n\na\n"}),
    Case("ingest-no-source", ["ingest"], status=2),
    # --- other commands ----------------------------------------------------------------------
    Case("rank-unknown", ["rank", "nobody"]),
    Case("rank-traversal", ["rank", "../../etc/passwd"]),
    Case("rank-top-0", ["rank", "--top", "0"], status=2),
    Case("rank-top-huge", ["rank", "--top", "9" * 30], status=2),
    Case("rank-since-min", ["rank", "--since", "0001-01-01"]),
    Case("rank-until-max", ["rank", "--until", "9999-12-31"]),
    Case("rank-until-min", ["rank", "--until", "0001-01-01"]),
    Case("rank-since-after-until", ["rank", "--since", "2026-06-02", "--until", "2026-06-01"]),
    Case("run-date-max", ["run", "--date", "9999-12-31", "--dry-run"]),
    Case("run-date-min", ["run", "--date", "0001-01-01", "--dry-run"]),
    Case("run-unknown", ["run", "nobody"]),
    Case("run-out-is-a-file", ["run", "--dry-run"], {"digest.toml": 'out_dir = "afile"\n',
                                                     "afile": "x"}),
    Case("run-templates-missing", ["run", "--dry-run"],
         _toml('templates_dir = "no/such/folder"\n')),
    Case("preview-unknown", ["preview", "nobody"]),
    Case("preview-date-max", ["preview", "ada", "--date", "9999-12-31"]),
    Case("explain-empty-id", ["explain", "ada", ""]),
    Case("explain-huge-id", ["explain", "ada", "x" * 100_000]),
    Case("explain-bare-prefix", ["explain", "ada", "arXiv:"]),
    # An argument in another encoding than UTF-8 arrives with lone surrogates.
    Case("explain-undecodable-id", ["explain", "ada", "\udcff"]),
    Case("feedback-undecodable-id", ["feedback", "ada", "x\udcff", "--like"], status=1),
    Case("explain-unknown-profile", ["explain", "nobody", "2503.00001"]),
    Case("explain-until-max", ["explain", "ada", "2503.00001", "--until", "9999-12-31"]),
    Case("feedback-unknown-paper", ["feedback", "ada", "9999.99999", "--like"]),
    Case("feedback-empty-paper", ["feedback", "ada", "", "--dislike"]),
    Case("feedback-unknown-profile", ["feedback", "nobody", "2503.00001", "--like"]),
    Case("feedback-no-flag", ["feedback", "ada", "2503.00001"]),
    Case("check-missing", ["profiles", "check", "nowhere.yaml"]),
    Case("check-dir", ["profiles", "check", "profiles"]),
    Case("check-binary", ["profiles", "check", "bin.yaml"], {"bin.yaml": bytes(range(256))}),
    Case("check-latin1", ["profiles", "check", "l.yaml"],
         {"l.yaml": "version: 1\nemail: caf\xe9@x.org\n".encode("latin-1")}),
    Case("check-yaml-laughs", ["profiles", "check", "laughs.yaml"],
         {"laughs.yaml": "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
             f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n"
             for i in range(8))}),
    Case("check-tabs", ["profiles", "check", "t.yaml"], {"t.yaml": "version: 1\n\temail: x\n"}),
    Case("model-refit-empty", ["model", "refit"]),
    Case("schedule-list-bad-cron", ["schedule", "--list"],
         _toml('[schedule]\ningest_cron = "61 25 * * *"\n'), says="ingest_cron"),
    Case("unsubscribe-empty", ["unsubscribe", ""]),
    Case("unsubscribe-unknown", ["unsubscribe", "nobody"]),
    Case("resubscribe-traversal", ["resubscribe", "../x"]),
    # --- global options ----------------------------------------------------------------------
    Case("db-nonsense", ["--db", "nonsense", "rank"]),
    Case("db-unknown-dialect", ["--db", "mysqlx://u@h/d", "rank"]),
    Case("db-missing-driver", ["--db", "mysql://u@127.0.0.1:9/d", "rank"]),
    Case("db-no-folder", ["--db", "sqlite:////no/such/folder/x.sqlite", "rank"]),
    Case("db-not-a-database", ["--db", "sqlite:///garbage.sqlite", "rank"],
         {"garbage.sqlite": b"not a database" * 100}),
    Case("db-a-folder", ["--db", "sqlite:///adir", "rank"], {"adir/x": "x"}),
    Case("db-postgres-refused", ["--db", "postgresql+psycopg://u@127.0.0.1:9/d", "rank"]),
    Case("profiles-missing", ["--profiles", "nowhere", "rank"]),
    Case("profiles-a-file", ["--profiles", "afile", "run", "--dry-run"], {"afile": "x"}),
    Case("config-missing", ["--config", "nowhere.toml", "rank"], says="cannot read"),
    Case("config-dir", ["--config", "adir", "rank"], {"adir/x": "x"}, says="cannot read"),
    # --- digest.toml --------------------------------------------------------------------------
    Case("toml-latin1", ["rank"], {"digest.toml": b'# caf\xe9\n'}, says="digest.toml:1: not UTF-8"),
    Case("toml-utf16", ["rank"], {"digest.toml": "out_dir = 'o'\n".encode("utf-16")},
         says="digest.toml:1: not UTF-8"),
    Case("toml-bom", ["rank"], {"digest.toml": b"\xef\xbb\xbfout_dir = 'o'\n"}),
    Case("toml-syntax", ["rank"], _toml("database = \n"), says="digest.toml:1: not valid TOML"),
    Case("toml-nul", ["rank"], _toml("a = 1\0\n"), says="not valid TOML"),
    Case("toml-from-crlf", ["run", "--dry-run"], _toml('[email]\nfrom = "a <a@b.org>\\r\\nBcc: '
                                                       'x@y.org"\n'),
         says="digest.toml:2: email.from:"),
    Case("toml-from-lf", ["run"], _toml('[email]\nfrom = """a@b.org\nBcc: x@y.org"""\n'),
         says="control characters"),
    Case("toml-from-u2028", ["run"], _toml('[email]\nfrom = "a@b.org\\u2028Bcc: x@y.org"\n'),
         says="email.from"),
    Case("toml-from-not-address", ["run"], _toml('[email]\nfrom = "nobody"\n'),
         says="expected one email address"),
    Case("toml-list-id-crlf", ["run"], _toml('[email]\nlist_id = "x\\r\\nBcc: y"\n'),
         says="email.list_id"),
    Case("toml-mailto-crlf", ["run"], _toml('[email]\nunsubscribe_mailto = "a@b\\r\\nX: y"\n'),
         says="email.unsubscribe_mailto"),
    Case("toml-mailto-not-address", ["run"], _toml('[email]\nunsubscribe_mailto = "mailto:"\n'),
         says="email.unsubscribe_mailto"),
    Case("toml-contact-crlf", ["ingest", "x.jsonl"], _toml('[http]\ncontact = "a\\nX: y"\n'),
         says="http.contact"),
    Case("toml-url-no-scheme-run", ["run"], _toml('[server]\npublic_url = "digest.example.org"'
                                                  "\n"), says="digest.toml:2: server.public_url"),
    Case("toml-url-no-scheme-serve", ["serve"], _toml('[server]\npublic_url = "example.org"\n'),
         says="no scheme"),
    Case("toml-url-ftp", ["serve"], _toml('[server]\npublic_url = "ftp://example.org"\n'),
         says="the scheme 'ftp:'"),
    Case("toml-url-javascript", ["run"], _toml('[server]\npublic_url = "javascript:alert(1)"\n'),
         says="the scheme 'javascript:'"),
    Case("toml-url-no-host", ["run"], _toml('[server]\npublic_url = "https://"\n'),
         says="without a host"),
    Case("toml-url-bad-port", ["run"], _toml('[server]\npublic_url = "https://x.org:99999"\n'),
         says="server.public_url"),
    Case("toml-url-crlf", ["run"], _toml('[server]\npublic_url = "https://x.org/\\r\\nX: y"\n'),
         says="server.public_url"),
    Case("toml-host-crlf", ["serve"], _toml('[server]\nhost = "a\\nb"\n'), says="server.host"),
    Case("toml-smtp-host-crlf", ["run"], _toml('[smtp]\nhost = "a\\r\\nb"\n'), says="smtp.host"),
    Case("toml-smtp-no-host", ["run"], _toml("[smtp]\nport = 25\n"), says="smtp.host"),
    Case("toml-port-range", ["serve"], _toml("[server]\nport = 70000\n"), says="server.port"),
    Case("toml-huge-int", ["run"], _toml("first_digest_days = 99999999999999999999\n")),
    Case("toml-nan", ["run"], _toml("[http]\ntimeout = nan\n"), says="http.timeout"),
    Case("toml-inf", ["run"], _toml("[http]\ntimeout = inf\n"), says="http.timeout"),
    Case("toml-wrong-types", ["run"], _toml("database = 5\nout_dir = []\n[email]\nfrom = {}\n")),
    Case("toml-section-scalar", ["run"], _toml("http = 5\n"), says="http"),
    Case("toml-unknown", ["run"], _toml("[server]\npublic_ulr = 'https://x.org'\n"),
         says="unknown key"),
    Case("toml-cron", ["run"], _toml('[schedule]\ningest_cron = "* * * * * * *"\n'),
         says="ingest_cron"),
    Case("toml-zone", ["run"], _toml('[schedule]\ningest_timezone = "Mars/Olympus"\n'),
         says="ingest_timezone"),
    Case("toml-zone-path", ["run"], _toml('[schedule]\ningest_timezone = "../../etc/passwd"\n'),
         says="ingest_timezone"),
    Case("toml-zone-folder", ["run"], _toml('[schedule]\ningest_timezone = "America"\n'),
         says="ingest_timezone"),
    Case("toml-sources", ["run"], _toml('[schedule]\nsources = ["arxiv:", 5]\n'),
         says="schedule.sources"),
    Case("toml-database-nonsense", ["rank"], _toml('database = "nonsense"\n')),
    Case("toml-out-devnull", ["run", "--dry-run"], _toml('out_dir = "/dev/null"\n')),
    Case("toml-deep", ["run"], _toml("a = " + "[" * 100_000), says="nested too deeply"),
    Case("toml-huge-string", ["run"], _toml('[email]\nlist_id = "' + "x" * 1_000_000 + '"\n')),
]


def _write(root: Path, files: dict[str, Content]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(path)
        elif isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)


def _looks_like_a_traceback(text: str) -> bool:
    return "Traceback (most recent call last)" in text or 'File "' in text


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated empty store, copied for each case (migrating costs more than copying)."""
    path = tmp_path_factory.mktemp("db") / "digest.sqlite"
    with Store.open(f"sqlite:///{path}"):
        pass
    return path


def _probe(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
           request: pytest.FixtureRequest, env: dict[str, str]) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("DIGEST_DB", "DIGEST_CONFIG", "DIGEST_PROFILES", "DIGEST_SECRET"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "profiles").mkdir()
    shutil.copy(ROOT / "profiles" / "ada.yaml", tmp_path / "profiles" / "ada.yaml")
    _write(tmp_path, case.files)
    if case.owner:
        request.applymarker(pytest.mark.xfail(reason=f"{case.owner} owns this", strict=False))

    result = CliRunner().invoke(main, case.args, env={**NO_NETWORK, **env})

    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{case.id}: {type(result.exception).__name__}: {result.exception}"
    )
    assert result.exit_code in (0, 1, 2), output
    assert not _looks_like_a_traceback(output), output
    if case.says is not None:
        assert case.says in output, output
    if case.status is not None:
        assert result.exit_code == case.status, output


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_gives_a_clear_error_not_a_traceback(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest,
    empty_db: Path,
) -> None:
    (tmp_path / "out").mkdir()
    shutil.copy(empty_db, tmp_path / "out" / "digest.sqlite")  # the default --db
    _probe(case, tmp_path, monkeypatch, request, {})


#: The cases whose hostile text goes into the store or is looked up in it, on PostgreSQL too:
#: it refuses text SQLite takes (a NUL, an over-long key) and has errors of its own. The other
#: cases are about arguments, files and configuration, which no backend changes.
STORE_CASES = [c for c in CASES if c.id in {
    "ingest-nul.jsonl", "ingest-nul.csv", "ingest-bigint-id.jsonl", "ingest-control.jsonl",
    "ingest-surrogate.jsonl", "explain-huge-id", "explain-undecodable-id",
    "feedback-undecodable-id", "feedback-empty-paper",
}]


@pytest.mark.parametrize("case", STORE_CASES, ids=[c.id for c in STORE_CASES])
@postgresql_only
def test_hostile_input_reaching_the_store_on_postgresql(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest,
    empty_store: str, module_backend: Backend,
) -> None:
    url = module_backend.clone(empty_store, tmp_path)
    _probe(case, tmp_path, monkeypatch, request, {"DIGEST_DB": url})


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory, module_backend: Backend) -> str:
    url = module_backend.new_url(tmp_path_factory.mktemp("empty"))
    Store.open(url).close()
    return url


def test_the_probe_covers_over_100_inputs_and_every_command() -> None:
    assert len(STORE_CASES) == 9  # each name above is a case
    assert len(CASES) >= 100
    commands = {c.args[0] if not c.args[0].startswith("--") else c.args[2] for c in CASES}
    assert {"ingest", "rank", "run", "preview", "explain", "feedback", "profiles", "model",
            "schedule", "serve", "unsubscribe", "resubscribe"} <= commands
