"""The configuration file (``digest.toml``): where things live and how to reach the world.

Every key has a default, so digest runs with no file at all. Unknown keys and bad values are
reported as ``file:line: key: what was expected``.
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .config_checks import (
    check_address,
    check_one_line,
    check_web_url,
    decode_utf8,
    toml_problem,
)
from .cron import check_timezone, parse_cron
from .errors import ConfigError
from .store import DEFAULT_URL

DEFAULT_FILE = "digest.toml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("*")
    @classmethod
    def _one_line(cls, value: Any) -> Any:
        # Every text here is a single value, and several end up in mail or HTTP headers, where
        # a CR/LF would start a header of the sender's choosing.
        for text in value if isinstance(value, list) else (value,):
            if isinstance(text, str):
                check_one_line(text)
        return value


class HttpConfig(_Section):
    """How digest talks to arXiv and Hugging Face."""

    contact: str = Field(
        "digest@localhost",
        description="Contact address sent in the User-Agent, as arXiv asks of API users.",
    )
    timeout: float = Field(30.0, gt=0, le=600, description="Seconds before a request gives up.")
    retries: int = Field(4, ge=0, le=10, description="Retries of a 429/5xx or network error.")


class SmtpConfig(_Section):
    """Where email goes. Without an [smtp] section, messages are written as .eml files."""

    host: str = Field(description="SMTP server host name.")
    port: int = Field(587, ge=1, le=65535, description="587 for STARTTLS, 465 for SSL.")
    security: Literal["starttls", "ssl", "none"] = Field(
        "starttls", description="starttls, ssl, or none (only for a local relay)."
    )
    user: str | None = Field(None, description="Login name; the password is read from the "
                                                "environment variable named by password_env.")
    password_env: str = Field("DIGEST_SMTP_PASSWORD", description="Environment variable "
                                                                  "holding the SMTP password.")
    timeout: float = Field(30.0, gt=0, le=600, description="Seconds per SMTP operation.")
    retries: int = Field(3, ge=0, le=10, description="Retries of temporary failures (4xx, "
                                                     "dropped connections).")


class EmailConfig(_Section):
    """How digests present themselves as email."""

    sender: str = Field("digest <digest@localhost>", alias="from",
                        description="From address of every digest.")
    list_id: str = Field("digest.localhost", description="List-Id: one mailing list per site.")
    unsubscribe_mailto: str | None = Field(
        None, description="Address for mail-based unsubscribe (List-Unsubscribe mailto:)."
    )

    @field_validator("sender")
    @classmethod
    def _an_address(cls, value: str) -> str:
        return check_address(value, "digest <digest@example.org>")

    @field_validator("unsubscribe_mailto")
    @classmethod
    def _a_mailto(cls, value: str | None) -> str | None:
        if value is not None:
            check_address(value.removeprefix("mailto:"), "unsubscribe@example.org")
        return value


class ServerConfig(_Section):
    """The public side: links in emails, feeds, one-click unsubscribe (``digest serve``)."""

    public_url: str | None = Field(
        None, description="Base URL where `digest serve` is reachable, e.g. "
                          "https://digest.example.org; without it emails carry no links to it."
    )
    secret_env: str = Field("DIGEST_SECRET", description="Environment variable holding the "
                                                          "secret that signs link tokens.")
    secret_file: str | None = Field(
        None, description="File holding that secret (mode 0600, written by `digest init`), read "
                          "when the environment variable is not set."
    )
    host: str = Field("127.0.0.1", description="Address `digest serve` listens on.")
    port: int = Field(8080, ge=1, le=65535, description="Port `digest serve` listens on.")
    previous_secrets_env: str = Field(
        "DIGEST_PREVIOUS_SECRETS", description="Environment variable holding earlier secrets "
        "(space-separated) whose links are still accepted: rotate without breaking mailed links."
    )
    previous_secrets_until: dt.date | None = Field(
        None, description="Last day the previous secrets are accepted (the grace period); "
                          "unset: as long as the variable lists them."
    )
    threads: int = Field(8, ge=1, le=256, description="Requests `digest serve` answers at once.")
    connection_limit: int = Field(
        2000, ge=10, le=100_000, description="Open connections `digest serve` holds at most; "
        "idle and slow ones cost a socket, not a thread."
    )
    request_timeout: float = Field(
        20, gt=0, le=3600, description="Seconds a client has to send a whole request."
    )

    @field_validator("public_url")
    @classmethod
    def _a_web_url(cls, value: str | None) -> str | None:
        return None if value is None else check_web_url(value)


class FeedConfig(_Section):
    """The RSS/Atom feed of what each profile was sent."""

    window_days: int = Field(30, ge=1, le=3650, description="Days of digests a feed keeps.")
    max_items: int = Field(100, ge=1, le=10000, description="Items a feed keeps at most.")


class ScheduleConfig(_Section):
    """The ``[schedule]`` section: when and what to ingest, and how patient to be."""

    ingest_cron: str = Field(
        "30 20 * * 0-4",
        description="When to ingest, as standard cron: by default half an hour after arXiv's "
        "announcement (20:00 US/Eastern, Sunday to Thursday).",
    )
    ingest_timezone: str = Field("America/New_York", description="Time zone of ingest_cron.")
    sources: list[str] | None = Field(
        None,
        description="Sources to ingest, as `digest ingest` takes them. Default: the arXiv "
        "listing of every category the profiles name (cs.CV, cs.CL, cs.LG and cs.AI for a "
        "profile naming none), and Hugging Face daily papers ('hf:').",
    )
    misfire_grace_hours: float = Field(
        6, gt=0, le=168,
        description="A run missed (machine down or asleep) still happens this late; later, "
        "it is skipped and the next digest covers its papers.",
    )
    resync_seconds: int = Field(
        60, ge=1, le=86400, description="How often profile files are checked for changes."
    )

    @field_validator("ingest_cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        parse_cron(value)  # its ValueError says what is wrong
        return value

    @field_validator("ingest_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return check_timezone(value)

    @field_validator("sources")
    @classmethod
    def _valid_sources(cls, value: list[str] | None) -> list[str] | None:
        from .sources.resolve import resolve

        for spec in value or ():
            resolve(spec, today=dt.date.today())  # a malformed named source is a ValueError
        return value


class QueueConfig(_Section):
    """The ``[queue]`` section: workers on PostgreSQL (`digest worker`, `digest run --queue`)."""

    shard_size: int = Field(
        2000, ge=1, le=100000,
        description="Profiles per shard job: ranked as one chunked product, then rendered.",
    )
    send_batch: int = Field(
        200, ge=1, le=10000,
        description="Digests per send job, sent over the worker's one SMTP connection.",
    )
    send_rate: float = Field(
        0, ge=0, le=100000,
        description="Messages per second across every worker (the SMTP provider's limit); "
        "0: no limit.",
    )
    claim_lease: float = Field(
        1800, gt=0, le=86400,
        description="Seconds a shard job holds the digests it builds; a dead worker's are "
        "built again after this.",
    )
    send_lease: float = Field(
        300, gt=0, le=86400,
        description="Seconds a send job holds the digests it sends; a dead worker's are sent "
        "again (same bytes and Message-ID) after this.",
    )
    heartbeat: float = Field(
        10, gt=0, le=3600, description="Seconds between a worker's heartbeats."
    )
    stalled_after: float = Field(
        60, gt=0, le=86400,
        description="Seconds without a heartbeat after which a worker is taken for dead and "
        "its jobs are run again.",
    )
    sweep_seconds: float = Field(
        60, gt=0, le=86400,
        description="How often a worker looks for work a dead worker left (stalled jobs, "
        "lapsed claims and leases).",
    )


class Config(_Section):
    """The whole file. Relative paths are taken from the file's own folder (from the current
    directory when there is no file)."""

    database: str = Field(DEFAULT_URL, description="SQLAlchemy database URL.")
    profiles_dir: str = Field("profiles", description="Folder of profile YAML files.")
    out_dir: str = Field("out", description="Where digests, feeds and .eml files are written.")
    templates_dir: str | None = Field(
        None, description="A folder of templates that override the shipped ones."
    )
    first_digest_days: int = Field(
        7, ge=1, le=365,
        description="A profile's first digest covers papers announced this many days back.",
    )
    http: HttpConfig = Field(default_factory=HttpConfig)
    smtp: SmtpConfig | None = Field(None, description="Leave out to write .eml files instead.")
    email: EmailConfig = Field(default_factory=EmailConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    feeds: FeedConfig = Field(default_factory=FeedConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    queue: QueueConfig = Field(default_factory=QueueConfig)

    def secret(self) -> str | None:
        """The link-signing secret from the environment, else from `server.secret_file`
        (never from this file itself)."""
        from_env = os.environ.get(self.server.secret_env)
        if from_env or not self.server.secret_file:
            return from_env or None
        try:
            return Path(self.server.secret_file).read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise ConfigError(f"{self.server.secret_file}: cannot read the secret: "
                              f"{exc.strerror or exc}") from None

    def relative_to(self, folder: Path) -> Config:
        """This configuration with its relative paths taken from `folder` (the config file's
        own folder), so a command run elsewhere uses the same store, profiles and output."""

        def anchored(value: str) -> str:
            return value if Path(value).is_absolute() else str(folder / value)

        server = self.server
        if server.secret_file:
            server = server.model_copy(update={"secret_file": anchored(server.secret_file)})
        database = self.database
        if database.startswith("sqlite:///") and database != "sqlite:///:memory:":
            database = "sqlite:///" + anchored(database.removeprefix("sqlite:///"))
        return self.model_copy(update={
            "database": database,
            "profiles_dir": anchored(self.profiles_dir),
            "out_dir": anchored(self.out_dir),
            "templates_dir": anchored(self.templates_dir) if self.templates_dir else None,
            "server": server,
        })


    def previous_secrets(self) -> tuple[str, ...]:
        """Earlier link-signing secrets, still accepted during the grace period."""
        return tuple(os.environ.get(self.server.previous_secrets_env, "").split())


def _unknown_key(loc: tuple[Any, ...]) -> str:
    """"unknown key", with the closest key of its section when there is one."""
    model: Any = Config
    for part in loc[:-1]:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        inner = [a for a in get_args(field.annotation) if isinstance(a, type)] if field else []
        model = next((a for a in [field.annotation, *inner] if isinstance(a, type)
                      and issubclass(a, BaseModel)), None) if field else None
        if model is None:
            return "unknown key"
    keys = [f.alias or name for name, f in model.model_fields.items()]
    close = difflib.get_close_matches(str(loc[-1]), keys, n=1)
    return "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")


def _line_of(text: str, loc: tuple[Any, ...]) -> int | None:
    """Best-effort line number of a key path in TOML text (1-based)."""
    lines = text.splitlines()
    section: tuple[str, ...] = ()
    wanted_section = tuple(str(p) for p in loc[:-1] if isinstance(p, str))
    key = str(loc[-1]) if loc else ""
    header = re.compile(r"^\s*\[+\s*([^\]]+?)\s*\]+")
    for number, line in enumerate(lines, start=1):
        match = header.match(line)
        if match:
            section = tuple(part.strip().strip('"') for part in match.group(1).split("."))
            if section == tuple(str(p) for p in loc if isinstance(p, str)):
                return number
            continue
        if section == wanted_section and re.match(rf"^\s*\"?{re.escape(key)}\"?\s*=", line):
            return number
    return None


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Load `path`, or ``./digest.toml`` if it exists, or the defaults."""
    if path is None:
        if not Path(DEFAULT_FILE).is_file():
            return Config()
        path = DEFAULT_FILE
    name = str(path)
    try:
        text = decode_utf8(name, Path(path).read_bytes())
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(toml_problem(name, exc)) from None
    except RecursionError:
        raise ConfigError(f"{name}: not valid TOML: arrays or tables nested too deeply") from None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            line = _line_of(text, loc)
            where = f"{name}:{line}" if line else name
            key = ".".join(str(p) for p in loc)
            message = (_unknown_key(loc) if error["type"] == "extra_forbidden"
                       else error["msg"].removeprefix("Value error, "))
            problems.append(f"{where}: {key}: {message}")
        raise ConfigError("\n".join(problems)) from None
    return config.relative_to(Path(path).resolve().parent)
