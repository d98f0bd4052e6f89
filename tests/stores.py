"""Both store backends for tests: SQLite files and a real PostgreSQL server on loopback.

    def test_x(store_url: str) -> None:      # a fresh, empty store; runs once per backend
        ...

    def test_y(store_backend: Backend, tmp_path: Path) -> None:
        url = store_backend.new_url(tmp_path)          # another fresh store
        copy = store_backend.clone(url, tmp_path / "b")  # a copy of it (file copy / TEMPLATE)

The PostgreSQL server is Debian's (``/usr/lib/postgresql/<v>/bin``), started once per test session
in a temporary folder (``initdb`` as the ``postgres`` user when the tests run as root, fsync off, a
free port, its unix socket in that folder, its time zone +14 hours from UTC) and stopped at the
end; each store is a database of its own, dropped after the test. Without those binaries the
PostgreSQL parameters skip, saying why (`.ci/run` installs them). ``DIGEST_TEST_BACKENDS=sqlite``
runs SQLite only (a quick local loop).

Registered once in ``conftest.py`` like the SMTP server fixture.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa

BACKENDS = ("sqlite", "postgresql")
_names = itertools.count(1)


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                   else 0)
    return found[-1].parent if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1:`port`, superuser ``postgres``, trust auth."""

    folder: Path
    port: int
    bin: Path
    as_user: list[str]

    @classmethod
    def start(cls) -> PostgresServer:
        bin_dir = _pg_bin()
        if bin_dir is None:
            raise RuntimeError("no PostgreSQL binaries under /usr/lib/postgresql/*/bin "
                               "(apt-get install postgresql)")
        as_user: list[str] = []
        folder = Path(tempfile.mkdtemp(prefix="digest-pg-"))
        if os.geteuid() == 0:
            # initdb refuses to run as root: the cluster belongs to the postgres user.
            if shutil.which("runuser") is None:
                raise RuntimeError("running as root without runuser to start PostgreSQL")
            as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(folder, "postgres")
        server = cls(folder, free_port(), bin_dir, as_user)
        data = folder / "data"
        server._run("initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                    "--no-sync", "--no-instructions")
        # A server time zone far from UTC (+14), as a server set up in its own zone has: the
        # store must hand back times in UTC whatever the session's zone is.
        options = (f"-p {server.port} -k {folder} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                   "-c max_connections=200 -c timezone=Pacific/Kiritimati")
        server._run("pg_ctl", "-D", str(data), "-l", str(folder / "log"), "-o", options, "-w",
                    "start")
        return server

    def _run(self, tool: str, *args: str) -> None:
        result = subprocess.run([*self.as_user, str(self.bin / tool), *args],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            log = self.folder / "log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{tool} failed: {result.stderr.strip()} {tail}")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def admin(self, *statements: str) -> None:
        """Run statements in the maintenance database, outside a transaction."""
        engine = sa.create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                for statement in statements:
                    conn.exec_driver_sql(statement)
        finally:
            engine.dispose()

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


@dataclass
class Backend:
    """Makes stores of one kind; `cleanup` drops the PostgreSQL databases it made."""

    name: str
    server: PostgresServer | None = None
    databases: list[str] = field(default_factory=list)

    def new_url(self, folder: Path, stem: str = "digest") -> str:
        if self.server is None:
            folder.mkdir(parents=True, exist_ok=True)
            return f"sqlite:///{folder}/{stem}.sqlite"
        name = f"t{os.getpid()}_{next(_names)}"
        self.server.admin(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return self.server.url(name)

    def clone(self, url: str, folder: Path, stem: str = "digest") -> str:
        """A new store holding a copy of the (closed) store at `url`."""
        if self.server is None:
            source = sa.engine.make_url(url).database
            assert source
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, folder / f"{stem}.sqlite")
            return f"sqlite:///{folder}/{stem}.sqlite"
        name = f"t{os.getpid()}_{next(_names)}"
        source = sa.engine.make_url(url).database
        # CREATE DATABASE ... TEMPLATE needs the template to have no sessions at all.
        self.server.admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{source}' AND pid <> pg_backend_pid()",
            f'CREATE DATABASE "{name}" TEMPLATE "{source}"',
        )
        self.databases.append(name)
        return self.server.url(name)

    def cleanup(self) -> None:
        if self.server is not None:
            for name in self.databases:
                with contextlib.suppress(sa.exc.DBAPIError):
                    self.server.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.databases.clear()


@dataclass(frozen=True)
class Sample:
    """A folder (``out/`` with a fitted model, say) and the store at `url` that goes with it:
    made once per module, copied per test (folder with shutil, store with `Backend.clone`)."""

    root: Path
    url: str


def query(url: str, sql: str, **params: object) -> list[tuple[object, ...]]:
    """Rows of a query on the store at `url`, whatever its backend (for tests that look inside)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql), params)]
    finally:
        engine.dispose()


def store_exists(url: str) -> bool:
    """Whether a digest ever opened the store at `url`: the SQLite file is there, or the
    (pre-made) PostgreSQL database has tables. Looking never creates anything."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return bool(parsed.database) and Path(str(parsed.database)).exists()
    return bool(query(url, "SELECT 1 FROM information_schema.tables "
                           "WHERE table_schema = 'public' LIMIT 1"))


_server: PostgresServer | None = None
_server_error: str | None = None


def _postgres(config: pytest.Config | None = None) -> PostgresServer:
    """The session's server, started on first use and stopped when the session ends."""
    global _server, _server_error
    if _server is None and _server_error is None:
        try:
            _server = PostgresServer.start()
        except (RuntimeError, OSError) as exc:
            _server_error = str(exc)
        if _server is not None and config is not None:
            config.add_cleanup(_stop_postgres)
    if _server is None:
        pytest.skip(f"PostgreSQL unavailable: {_server_error}")
    return _server


def _stop_postgres() -> None:
    global _server
    if _server is not None:
        _server.stop()
        _server = None


def _wanted() -> list[str]:
    wanted = os.environ.get("DIGEST_TEST_BACKENDS", ",".join(BACKENDS)).split(",")
    return [b for b in BACKENDS if b in wanted]


@pytest.fixture(scope="session", params=_wanted())
def backend_kind(request: pytest.FixtureRequest) -> str:
    """Each store backend in turn; PostgreSQL skips where its server cannot start."""
    kind: str = request.param
    if kind == "postgresql":
        _postgres(request.config)
    return kind


#: For a test that reaches the store but where PostgreSQL adds nothing another test does not
#: already cover (ranking arithmetic over what the store gives, say): say why where it is used.
sqlite_only = pytest.mark.parametrize("backend_kind", ["sqlite"], indirect=True)
#: For a test of what only PostgreSQL could get wrong (its SQLite twin is another test).
postgresql_only = pytest.mark.parametrize(
    "backend_kind", [b for b in _wanted() if b == "postgresql"], indirect=True)


def make_backend(kind: str) -> Backend:
    return Backend(kind, _postgres() if kind == "postgresql" else None)


@pytest.fixture(scope="module")
def module_backend(backend_kind: str) -> Iterator[Backend]:
    """A backend for module-scoped stores (a template made once per module)."""
    backend = make_backend(backend_kind)
    yield backend
    backend.cleanup()


@pytest.fixture
def store_backend(backend_kind: str) -> Iterator[Backend]:
    backend = make_backend(backend_kind)
    yield backend
    backend.cleanup()


@pytest.fixture
def store_url(store_backend: Backend, tmp_path: Path) -> str:
    """A fresh, empty store's URL, on each backend in turn."""
    return store_backend.new_url(tmp_path)
