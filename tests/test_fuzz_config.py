"""``digest.toml`` fuzzed: whatever the file holds, loading it gives a `Config` or a
`ConfigError` whose every line is ``file[:line]: ...``, never another exception; and what loads
can be used: its values make a mail whose headers are exactly the ones digest writes (no CR/LF
smuggled in), and its public URL is an http(s) URL with a host.

Documents are random TOML over the real keys (every type, control characters, hostile URLs and
addresses, unknown keys) and the README's example file mutated as bytes (junk, invalid UTF-8,
truncation). Examples are derandomized; ``DIGEST_LONG_TESTS=1`` runs many more.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest.config import Config, load_config
from digest.errors import ConfigError
from digest.mailer import build_message

LONG = bool(os.environ.get("DIGEST_LONG_TESTS"))
FUZZ = settings(max_examples=1000 if LONG else 150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])

README = Path(__file__).resolve().parents[1] / "README.md"
EXAMPLE = re.search(r"```toml\n(# digest.toml.*?)```", README.read_text(encoding="utf-8"),
                    re.DOTALL)

#: A valid file with every key set; a few keys at a time get a random or hostile value.
BASE: dict[str | None, dict[str, Any]] = {
    None: {"database": "sqlite:///out/x.sqlite", "profiles_dir": "profiles", "out_dir": "out",
           "templates_dir": "templates", "first_digest_days": 7},
    "http": {"contact": "me@example.org", "timeout": 30, "retries": 4},
    "smtp": {"host": "smtp.example.org", "port": 587, "security": "starttls", "user": "me",
             "password_env": "PW", "timeout": 30, "retries": 3},
    "email": {"from": "digest <digest@example.org>", "list_id": "digest.example.org",
              "unsubscribe_mailto": "unsubscribe@example.org"},
    "server": {"public_url": "https://digest.example.org", "secret_env": "S",
               "host": "127.0.0.1", "port": 8080},
    "feeds": {"window_days": 30, "max_items": 100},
    "schedule": {"ingest_cron": "30 20 * * 0-4", "ingest_timezone": "America/New_York",
                 "misfire_grace_hours": 6, "resync_seconds": 60},
}
KEYS = [(section, key) for section, keys in BASE.items() for key in keys]

HOSTILE = [
    "https://digest.example.org", "http://127.0.0.1:8080/d", "digest.example.org", "ftp://x.org",
    "javascript:alert(1)", "https://", "https://x.org:99999", "https://[::1", "//x.org",
    "a@b.org", "digest <digest@example.org>", "nobody", "a@b.org, c@d.org", "mailto:", "@",
    "a\r\nBcc: x@y.org", "a\nb", "a\u2028b", "a\x00b", "\x1b[31m", "", " ", "é" * 3,
    "0 7 * * mon-fri", "61 25 * * *", "Europe/Berlin", "America", "../../etc/passwd",
    "sqlite:///x.sqlite", "nonsense", "ssl", "starttls", "none",
]
TEXT = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=30).filter(
    lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s)))
SCALAR = st.one_of(
    TEXT,
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)
VALUE = st.one_of(SCALAR, st.lists(SCALAR, max_size=3))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)  # JSON string escapes are TOML's


@st.composite
def documents(draw: st.DrawFn) -> str:
    changed = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=3, unique=True))
    dropped = draw(st.lists(st.sampled_from(KEYS), max_size=3, unique=True))
    lines: list[str] = []
    for section, values in BASE.items():
        if section is not None:
            lines.append(f"[{section}]")
        for key, value in values.items():
            if (section, key) in dropped:
                continue
            if (section, key) in changed:
                value = draw(VALUE)
            lines.append(f'"{key}" = {_toml_value(value)}')
        if draw(st.integers(0, 20)) == 0:
            lines.append(f'"{draw(st.sampled_from(["unknown", "from_", "publicurl"]))}" = 1')
    return "\n".join(lines) + "\n"


def _load(data: bytes) -> Config | ConfigError:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "digest.toml"
        path.write_bytes(data)
        try:
            return load_config(path)
        except ConfigError as exc:
            for line in str(exc).splitlines():
                assert re.match(rf"{re.escape(str(path))}(:\d+)?: \S", line), line
            return exc


def _usable(config: Config) -> None:
    """What `run` and `serve` will do with the values must work."""
    url = config.server.public_url
    if url is not None:
        assert re.match(r"https?://[^/?#\s]", url, re.IGNORECASE), url
    message = build_message(
        sender=config.email.sender, to="reader@example.org", subject="s", text="t", html="<p>h",
        message_id="<1@example.org>", date=dt.datetime(2026, 6, 8, tzinfo=dt.UTC),
        list_id=config.email.list_id,
        unsubscribe_url=(url.rstrip("/") + "/u/tok") if url else None,
        unsubscribe_mailto=config.email.unsubscribe_mailto,
    )
    parsed = email.message_from_bytes(message, policy=email.policy.SMTP)
    names = {name.lower() for name in parsed}
    assert names <= {"from", "to", "subject", "date", "message-id", "list-id",
                     "list-unsubscribe", "list-unsubscribe-post", "auto-submitted",
                     "mime-version", "content-type"}, names
    for value in (config.http.contact, config.server.host, config.email.list_id):
        assert not re.search(r"[\r\n\x00]", value)


@FUZZ
@given(documents())
def test_any_toml_document_loads_or_is_a_clear_error(document: str) -> None:
    loaded = _load(document.encode("utf-8"))
    if isinstance(loaded, Config):
        _usable(loaded)


@FUZZ
@given(st.data())
def test_the_example_file_mutated_as_bytes_loads_or_is_a_clear_error(data: st.DataObject) -> None:
    assert EXAMPLE is not None
    raw = bytearray(EXAMPLE.group(1).encode("utf-8"))
    for _ in range(data.draw(st.integers(1, 4))):
        action = data.draw(st.sampled_from(["flip", "insert", "truncate"]))
        at = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if action == "flip" and raw:
            raw[at] = data.draw(st.integers(0, 255))
        elif action == "insert":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del raw[at:]
    loaded = _load(bytes(raw))
    if isinstance(loaded, Config):
        _usable(loaded)


def test_the_readme_example_loads_and_is_usable() -> None:
    assert EXAMPLE is not None
    loaded = _load(EXAMPLE.group(1).encode("utf-8"))
    assert isinstance(loaded, Config), loaded
    _usable(loaded)


@pytest.mark.parametrize(("text", "problem"), [
    ('[email]\nfrom = "a <a@b.org>\\r\\nBcc: x@y.org"\n',
     "2: email.from: {}must be one line without control characters; found '\\r' at character "
     "12"),
    ('[email]\nunsubscribe_mailto = "mailto:nobody"\n',
     "2: email.unsubscribe_mailto: {}expected one email address such as "
     "'unsubscribe@example.org', got 'nobody'"),
    ('\n[server]\nhost = "h"\npublic_url = "digest.example.org"\n',
     "4: server.public_url: {}expected an absolute http(s) URL such as "
     "'https://digest.example.org', got 'digest.example.org' with no scheme"),
    ('[server]\npublic_url = "ftp://digest.example.org"\n',
     "2: server.public_url: {}expected an absolute http(s) URL such as "
     "'https://digest.example.org', got 'ftp://digest.example.org' with the scheme 'ftp:'"),
    ('[server]\npublic_url = "https://x.org/?a=1"\n',
     "2: server.public_url: {}expected an absolute http(s) URL such as "
     "'https://digest.example.org' without '?' or '#', got 'https://x.org/?a=1'"),
    ("[http]\ncontact = \"\"\"me@x.org\nX-Evil: 1\"\"\"\n",
     "2: http.contact: {}must be one line without control characters; found '\\n' at "
     "character 9"),
])
def test_bad_values_are_refused_at_load_with_file_line_and_key(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "digest.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    # pydantic prefixes "Value error, " unless the loader strips it.
    assert str(caught.value) in {f"{path}:{problem.format(p)}" for p in ("", "Value error, ")}


def test_a_file_not_in_utf8_names_the_line_of_the_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "digest.toml"
    path.write_bytes(b'out_dir = "o"\n# r\xe9sum\xe9\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (f"{path}:2: not UTF-8 text (byte 0xe9 at column 4); save the "
                                 "file as UTF-8")


def test_toml_errors_and_deep_nesting_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "digest.toml"
    path.write_text("[http]\ntimeout = \n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}:2: not valid TOML: "):
        load_config(path)
    path.write_text("a = " + "[" * 100_000, encoding="utf-8")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(path)


def test_a_byte_order_mark_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "digest.toml"
    path.write_bytes(b'\xef\xbb\xbf[feeds]\nmax_items = 7\n')
    assert load_config(path).feeds.max_items == 7
