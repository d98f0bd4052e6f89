"""Profiles fuzzed: whatever a person (or a broken editor) leaves in the profiles folder,
loading never raises, the good profile beside it still loads, and each bad file is reported
as ``file:line:col: key.path: what``, naming the key whenever the file is valid YAML.

The documents are random structures dumped as YAML (wrong types for every key, unicode keys,
huge numbers and strings, unknown time zones and crons, duplicate keys, non-mapping roots) and
the shipped example profile mutated as bytes (junk, invalid UTF-8, truncation). Examples are
derandomized, so CI sees the same ones each run; ``DIGEST_LONG_TESTS=1`` runs many more.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from digest.cli import main
from digest.errors import ProfileError
from digest.profiles import Profile, load_profile, load_profiles

LONG = bool(os.environ.get("DIGEST_LONG_TESTS"))
FUZZ = settings(
    max_examples=1000 if LONG else 50,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

EXAMPLE = Path(__file__).resolve().parents[1] / "profiles" / "ada.yaml"
GOOD = "version: 1\nemail: good@example.org\ntimezone: Europe/Berlin\ninterests: [speech]\n"
#: A valid profile with every key set; one key at a time is replaced with junk.
BASE: dict[str, Any] = {
    "version": 1,
    "email": "ada@example.org",
    "timezone": "Europe/Berlin",
    "schedule": "0 7 * * mon-fri",
    "formats": ["email", "markdown", "rss"],
    "max_papers": 15,
    "min_relevance": 1.5,
    "interests": [{"name": "speech", "text": "speech recognition", "seed_papers": ["2503.13107"],
                   "weight": 2.0}, "dialogue"],
    "seed_papers": ["2503.16422"],
    "liked": ["2412.01234"],
    "disliked": ["2411.00001"],
    "avoid": ["survey"],
    "authors": ["Ada Lovelace"],
    "categories": ["cs.CL"],
    "send_empty": False,
}
#: Keys whose problem may be reported at another key, or at the profile as a whole.
COUPLED = {
    "email": {"formats"},
    "liked": {"disliked", "profile"},
    "disliked": {"liked"},
    "interests": {"profile"},
    "seed_papers": {"profile"},
}
FIELDS = [k for k in Profile.model_fields if k != "name"]
PROBLEM = re.compile(r"(?P<where>.+?):(?P<line>\d+):(?P<col>\d+): (?P<what>.+)", re.DOTALL)


def dump(data: Any) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


# -- strategies ---------------------------------------------------------------------------------

texts = st.one_of(
    st.text(max_size=20),
    st.text(st.characters(codec="utf-8"), max_size=12),  # any code point UTF-8 can carry
    st.sampled_from([
        "", " ", "\u202egnp.exe", "zero\u200bwidth", "العربية", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "a\x00b", "a\x85b",
        "\ufeff", "Europe/Berlin", "America", "../../etc/passwd", "UTC/..", "* * * * *",
        "60 24 32 13 8", "*/0 * * * *", "1-99999999999999999999 * * * *", "@daily",
        "0 7 * * mon-fri", "2503.13107", "ada@example.org", "email", "fax", "2001-02-30",
        "{{ 7*7 }}", "<script>alert(1)</script>", "yes", "no", "~", "null", ".nan",
    ]),
    st.integers(1, 5000).map(lambda n: "é" * n),
    st.just("x" * 20_000),
)
numbers = st.one_of(
    st.integers(-300, 300),
    st.integers(-(10**80), 10**80),
    st.floats(allow_nan=True, allow_infinity=True),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts, st.dates())
keys = st.one_of(st.sampled_from(FIELDS), st.text(max_size=12), st.integers(-5, 5), st.none(),
                 st.booleans(), st.dates())
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)


@st.composite
def one_bad_key(draw: st.DrawFn) -> tuple[str, Any]:
    """The valid BASE profile with one key's value replaced by junk (or removed, or a new key
    added), as YAML text, and the key that was spoiled."""
    data = dict(BASE)
    key = draw(st.one_of(st.sampled_from(FIELDS), keys))
    if key in data and draw(st.booleans()) and key != "version":
        del data[key]
    else:
        data[key] = draw(values)
    return dump(data), key


@st.composite
def pairs_document(draw: st.DrawFn) -> str:
    """Key-value pairs dumped one by one: a mapping that may repeat keys."""
    pairs = draw(st.lists(st.tuples(keys, values), max_size=8))
    if draw(st.booleans()):
        pairs.insert(0, ("version", 1))
    return "".join(dump({k: v}) for k, v in pairs)


@st.composite
def mutated_example(draw: st.DrawFn) -> bytes:
    """The shipped example profile, its bytes cut, spliced with junk or shuffled."""
    data = bytearray(EXAMPLE.read_bytes())
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["junk", "bad-utf8", "cut", "truncate", "dup-line",
                                     "big-number", "deep"]))
        if kind == "junk":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "bad-utf8":
            data[at:at] = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xe2\x82"]))
        elif kind == "cut":
            del data[at : at + draw(st.integers(1, 200))]
        elif kind == "truncate":
            del data[at:]
        elif kind == "dup-line":  # a key written twice
            lines = bytes(data).split(b"\n")
            n = draw(st.integers(0, len(lines) - 1))
            lines.insert(n, lines[n])
            data = bytearray(b"\n".join(lines))
        elif kind == "big-number":
            data += b"\nmax_papers: " + b"9" * draw(st.integers(4000, 6000)) + b"\n"
        else:
            depth = draw(st.integers(1, 300))  # ruamel scans deep nesting in O(depth**2)
            data += b"\nliked: " + b"[" * depth + b"]" * depth + b"\n"
    return bytes(data)


documents = st.one_of(
    one_bad_key().map(lambda pair: pair[0]).map(str.encode),
    pairs_document().map(str.encode),
    values.map(dump).map(str.encode),  # any root: a list, a string, a number, null
    mutated_example(),
    st.binary(max_size=300),
)


# -- checks -------------------------------------------------------------------------------------


def check_problems(error: ProfileError, path: Path, text: bytes) -> list[tuple[int, str]]:
    """Each problem says where it is, inside the file; returns (line, what) of each."""
    assert error.path == str(path)
    assert error.problems, "an error without problems"
    lines = text.count(b"\n") + 1
    found = []
    for problem in error.problems:
        match = PROBLEM.fullmatch(problem)
        assert match, problem
        assert match["where"] == str(path), problem
        assert 1 <= int(match["line"]) <= lines + 1, (problem, lines)
        assert int(match["col"]) >= 1
        assert "Traceback" not in problem
        found.append((int(match["line"]), match["what"]))
    return found


def load_beside_good(folder: Path, name: str, text: bytes) -> tuple[Path, Any]:
    (folder / "good.yaml").write_text(GOOD, encoding="utf-8")
    bad = folder / name
    bad.write_bytes(text)
    loaded = load_profiles(folder)  # never raises
    assert [p.name for p in loaded.profiles if p.name == "good"] == ["good"]
    assert loaded.get("good") == load_profile(folder / "good.yaml")
    assert all(e.path != str(folder / "good.yaml") for e in loaded.errors)
    return bad, loaded


def key_names(key: Any) -> set[str]:
    """How a problem may name a key of the file (pydantic names a key that is not text by its
    repr, and True as 1)."""
    names = {str(key), repr(key)}
    if isinstance(key, bool):
        names.add(str(int(key)))
    return names


# -- tests --------------------------------------------------------------------------------------


@FUZZ
@given(text=documents, name=st.sampled_from(["bad.yaml", "Bad Name!.yml", "é.yaml"]))
def test_any_file_beside_a_good_profile(tmp_path: Path, text: bytes, name: str) -> None:
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    bad, loaded = load_beside_good(folder, name, text)
    errors = [e for e in loaded.errors if e.path == str(bad)]
    assert len(loaded.errors) == len(errors) <= 1
    if errors:
        check_problems(errors[0], bad, text)
        assert loaded.get(bad.stem) is None
    else:
        assert loaded.get(bad.stem) is not None


@FUZZ
@given(case=one_bad_key())
def test_a_spoiled_key_is_named_with_its_line(tmp_path: Path, case: tuple[str, Any]) -> None:
    text, key = case
    in_file = YAML().load(text)
    # A key that does not survive the YAML round trip (ruamel reads a NEL it wrote as a line
    # break) is not the key the file holds.
    assume(key in in_file or key in FIELDS)
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    bad, loaded = load_beside_good(folder, "bad.yaml", text.encode())
    if loaded.get("bad") is not None:
        # The junk happened to be valid: then the key is a profile key that takes it.
        assert key in FIELDS
        return
    (error,) = loaded.errors
    allowed = key_names(key) | COUPLED.get(str(key), set())
    for line, what in check_problems(error, bad, text.encode()):
        assert any(what.startswith((f"{name}: ", f"{name}.", f"{name}[")) for name in allowed), (
            f"{what!r} does not name {key!r}"
        )
        named = tuple(f"{name}{sep}" for name in key_names(key) for sep in (": ", ".", "["))
        if what.startswith(named) and key in in_file:
            # The key is in the file: the problem is on its line or below it (inside its value).
            assert line >= 1 + in_file.lc.key(key)[0], (line, what)


@FUZZ
@given(field=st.sampled_from(["timezone", "schedule"]), value=st.one_of(texts, numbers))
def test_time_zones_and_crons_of_any_shape(tmp_path: Path, field: str, value: Any) -> None:
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    text = dump({**BASE, field: value})
    bad, loaded = load_beside_good(folder, "bad.yaml", text.encode())
    if loaded.get("bad") is not None:
        assert isinstance(value, str)
        return
    (error,) = loaded.errors
    line = text.splitlines().index(next(s for s in text.splitlines() if s.startswith(field))) + 1
    ((at, what),) = check_problems(error, bad, text.encode())
    assert at == line and what.startswith(f"{field}: "), what
    if not isinstance(value, str):
        assert what == f"{field}: must be text (put it in quotes)"
    elif field == "timezone":
        assert "is not an IANA time zone like Europe/Berlin" in what, what


def test_a_billion_laughs_is_read_in_its_own_size(tmp_path: Path) -> None:
    # Nine levels of aliases, each repeating the one before nine times: 9**9 strings expanded.
    lines = ["version: 1", "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    lines.append("interests: *a8")
    path = tmp_path / "lol.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    assert f"{path}:2:1: a0: unknown key" in caught.value.problems
    # Each alias is an error once, where its anchor is: 9 items, not 9**9.
    assert len(caught.value.problems) == 9 + 9
    assert sum(": interests[" in p for p in caught.value.problems) == 9


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: 1\ntimezone: America\n", ":2:1: timezone: 'America' is not an IANA time zone"),
        ("version: 1\ntimezone: " + "A" * 300 + "\n", ":2:1: timezone: 'AAAA"),
        ("version: 1\ntimezone: 2001-02-30\n",
         ":2:11: cannot read '2001-02-30' as timestamp: day is out of range for month"),
        ("version: 1\nmax_papers: !!int abc\n", ":2:13: cannot read 'abc' as int"),
        ("version: 1\nsend_empty: !!bool maybe\n", ":2:13: cannot read 'maybe' as bool"),
        ("version: 1\nmax_papers: " + "9" * 5000 + "\n", ":2:13: cannot read '999"),
        ("version: 1\ninterests: " + "[" * 300 + "]" * 300 + "\n",
         ":1:1: profile: lists or mappings are nested too deeply to read"),
        ("version: 1\ninterests: [x]\nemail: " + "x" * 200_000 + "\n",
         ":3:1: email: must be an email address like ada@example.org"),
        ("version: 1\ninterests: [a\x01b]\n", ":2:14: character U+0001 is not allowed in YAML"),
        ("version: 1\n1: x\ninterests: [x]\n", ":2:1: 1: keys must be text"),
        ("version: 1\n2001-01-01: x\ninterests: [x]\n",
         ":2:1: datetime.date(2001, 1, 1): keys must be text"),
    ],
)
def test_what_fuzzing_found(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    assert any(p.startswith(f"{path}{expected}") for p in caught.value.problems), (
        caught.value.problems
    )


def test_invalid_utf8_is_reported_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(b"\xef\xbb\xbfversion: 1\nemail: caf\xe9@example.org\n")
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    assert caught.value.problems == [f"{path}:2:11: profile: cannot read the file (not UTF-8 text)"]


# -- the command line ---------------------------------------------------------------------------


def invoke(*args: str) -> Any:
    # click 8.2 keeps stderr apart by default and dropped `mix_stderr`.
    if tuple(int(part) for part in version("click").split(".")[:2]) >= (8, 2):
        runner = CliRunner()
    else:  # pragma: no cover - click 8.1
        runner = CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    return runner.invoke(main, list(args), catch_exceptions=False)


@settings(FUZZ, max_examples=200 if LONG else 10)
@given(text=documents)
def test_profiles_check_exits_1_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: bytes
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./digest.toml of the checkout
    for name in ("DIGEST_DB", "DIGEST_CONFIG", "DIGEST_PROFILES"):
        monkeypatch.delenv(name, raising=False)
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    _, loaded = load_beside_good(folder, "bad.yaml", text)
    # SQLite: that checking creates no store is seen as no file.
    result = invoke("--db", f"sqlite:///{folder}/none.sqlite", "--profiles", str(folder),
                    "profiles", "check")
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    if loaded.errors:
        assert result.exit_code == 1, output
        assert result.stderr.strip().endswith("1 valid, 1 invalid")
        for problem in loaded.errors[0].problems:
            assert problem in result.stdout
    else:
        assert result.exit_code == 0, output
        assert result.stderr.strip().endswith("2 valid, 0 invalid")
    assert not (folder / "none.sqlite").exists()  # checking never creates a store
