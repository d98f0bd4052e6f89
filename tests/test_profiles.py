"""Profiles: loading, every kind of problem with its file:line:col, feedback written back."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from digest.errors import ProfileError
from digest.profiles import (
    Interest,
    Profile,
    add_feedback,
    load_profile,
    load_profiles,
    profile_json_schema,
    write_schema,
)

PROFILES = Path(__file__).resolve().parents[1] / "profiles"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    """The problems of a bad profile, with the directory taken off for readability."""
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    assert caught.value.path == str(path)
    return [p.replace(f"{path.parent}{os.sep}", "") for p in caught.value.problems]


# -- the examples and the schema ----------------------------------------------------------------


def test_example_profiles_load_clean() -> None:
    loaded = load_profiles(PROFILES)
    assert loaded.errors == ()
    assert [p.name for p in loaded.profiles] == ["ada", "ben", "cara"]
    for path in loaded.paths.values():
        first_line = path.read_text(encoding="utf-8").splitlines()[0]
        assert first_line == "# yaml-language-server: $schema=./profile.schema.json"


def test_schema_file_is_up_to_date(tmp_path: Path) -> None:
    fresh = write_schema(tmp_path / "profile.schema.json")
    assert (PROFILES / "profile.schema.json").read_text(encoding="utf-8") == fresh.read_text(
        encoding="utf-8"
    ), "out of date: regenerate it with digest.profiles.write_schema"


def test_schema_describes_the_file_not_the_model() -> None:
    schema = profile_json_schema()
    assert "name" not in schema["properties"]  # the file name is the name
    assert schema["required"] == ["version"]
    assert schema["additionalProperties"] is False
    assert {"type": "string", "minLength": 1}.items() <= (
        schema["properties"]["interests"]["items"]["anyOf"][1].items()
    )
    for key, prop in schema["properties"].items():
        assert prop.get("description"), key
    json.dumps(schema)


# -- valid profiles ---------------------------------------------------------------------------


def test_bare_strings_are_interests(tmp_path: Path) -> None:
    path = write(tmp_path, "cara.yaml", """
        version: 1
        interests:
          - LLM-as-a-judge
          - name: speech
            text: speech recognition
    """)  # fmt: skip
    profile = load_profile(path)
    assert profile.name == "cara"
    assert profile.interests == (
        Interest(name="LLM-as-a-judge", text="LLM-as-a-judge"),
        Interest(name="speech", text="speech recognition"),
    )


def test_defaults(tmp_path: Path) -> None:
    profile = load_profile(write(tmp_path, "d.yaml", "version: 1\ninterests: [x]\n"))
    assert (profile.email, profile.timezone, profile.schedule) == (None, "UTC", "0 7 * * *")
    assert profile.formats == ("email", "markdown", "rss")
    assert (profile.max_papers, profile.min_relevance, profile.send_empty) == (12, 1.7, False)
    assert profile.min_score is None  # the old key: unset, so no warning


@pytest.mark.parametrize(
    "body",
    [
        "seed_papers: ['2503.16422']",
        "liked: ['2503.16422']",
        "interests: [{name: splatting, seed_papers: ['2503.16422']}]",
        "interests: [{name: splatting, text: 3D Gaussian splatting}]",
    ],
)
def test_seed_only_text_only_and_liked_only_profiles_are_valid(tmp_path: Path, body: str) -> None:
    load_profile(write(tmp_path, "p.yaml", f"version: 1\n{body}\n"))


def test_unquoted_arxiv_ids_are_read_as_written(tmp_path: Path) -> None:
    # YAML reads 2504.13120 as the number 2504.1312; the loader takes the text in the file.
    path = write(tmp_path, "p.yaml", """
        version: 1
        seed_papers: [2504.13120, "2503.16422"]
        liked:
          - 1412.6980   # Adam
        interests:
          - name: x
            seed_papers: [2503.12000]
    """)  # fmt: skip
    profile = load_profile(path)
    assert profile.seed_papers == ("2504.13120", "2503.16422")
    assert profile.liked == ("1412.6980",)
    assert profile.interests[0].seed_papers == ("2503.12000",)


def test_yaml_1_2_keeps_no_as_a_string(tmp_path: Path) -> None:
    profile = load_profile(write(tmp_path, "p.yaml", "version: 1\ninterests: [no]\n"))
    assert profile.interests[0].name == "no"


def test_profiles_are_frozen_and_hashable(tmp_path: Path) -> None:
    profile = load_profile(write(tmp_path, "p.yaml", "version: 1\ninterests: [x]\n"))
    with pytest.raises(ValueError, match="frozen"):
        profile.max_papers = 3  # type: ignore[misc]
    assert hash(profile) == hash(load_profile(tmp_path / "p.yaml"))


# -- problems, each with file:line:col ---------------------------------------------------------


def test_every_problem_in_a_file_is_reported_with_its_position(tmp_path: Path) -> None:
    path = write(tmp_path, "alice.yaml", """
        # Alice's profile
        version: 2
        email: alice-at-example
        timezone: Europe/Berln
        schedule: "0 7 * * 8"
        formats: [email, pdf]
        max_papers: "12"
        min_score: 1.5
        intrests: [vision]
        interests:
          - name: a
            weight: 7
          - ""
          - name: b
          - 42
          - name: c
            text: x
            wieght: 2
        liked: ["2503.16422"]
        disliked: ["arXiv:2503.16422v2"]
        categories: [cs.CV, computer vision]
        send_empty: no
    """)  # fmt: skip
    assert problems(path) == [
        "alice.yaml:2:1: version: must be 1",
        "alice.yaml:3:1: email: must be an email address like ada@example.org",
        "alice.yaml:4:1: timezone: 'Europe/Berln' is not an IANA time zone like Europe/Berlin"
        " (did you mean 'Europe/Berlin'?)",
        "alice.yaml:5:1: schedule: day of week: 8 is out of range 0-7",
        "alice.yaml:6:18: formats[1]: must be 'email', 'markdown' or 'rss'",
        "alice.yaml:7:1: max_papers: must be a whole number",
        "alice.yaml:8:1: min_score: must be <= 1",
        "alice.yaml:9:1: intrests: unknown key (did you mean 'interests'?)",
        "alice.yaml:12:5: interests[0].weight: must be <= 5",
        "alice.yaml:13:5: interests[1].name: must not be empty",
        "alice.yaml:14:5: interests[2]: an interest needs text or seed_papers to say what it is"
        " about",
        "alice.yaml:15:5: interests[3]: must be a string or a mapping with name, text,"
        " seed_papers, weight",
        "alice.yaml:18:5: interests[4].wieght: unknown key (did you mean 'weight'?)",
        "alice.yaml:20:1: disliked: 'arXiv:2503.16422v2' is in both liked and disliked",
        "alice.yaml:21:21: categories[1]: must be an arXiv category like cs.CV",
        "alice.yaml:22:1: send_empty: must be true or false",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("interests: [x]\n", "p.yaml:1:1: version: required key is missing"),
        (
            "version: 1\n",
            "p.yaml:1:1: profile: nothing to rank papers by: add at least one of"
            " interests, seed_papers, liked",
        ),
        (
            "version: 1\nname: bob\ninterests: [x]\n",
            "p.yaml:2:1: name: not a key here; the profile is named after its file ('p')",
        ),
        ("version: 1\ninterests: [x, X]\n", "p.yaml:2:1: interests: two interests are named 'X'"),
        (
            "version: 1\ninterests: [x]\nformats: [email]\n",
            "p.yaml:3:1: formats: 'email' needs an email address: set `email` or drop 'email' here",
        ),
        ("version: 1\ninterests: [x]\nmax_papers: 0\n", "p.yaml:3:1: max_papers: must be >= 1"),
        (
            "version: 1\ninterests:\n  - name: x\n    text: y\n    weight: 0\n",
            "p.yaml:5:5: interests[0].weight: must be > 0",
        ),
        (
            "version: 1\ninterests: [x]\navoid: [x, 3]\n",
            "p.yaml:3:12: avoid[1]: must be text (put it in quotes)",
        ),
        ("version: 1\ninterests: x\n", "p.yaml:2:1: interests: must be a list"),
        (
            "version: 1\ninterests: [x]\nschedule: 0 7 * *\n",
            "p.yaml:3:1: schedule: cron expression '0 7 * *' has 4 field(s); expected 5:"
            " minute hour day-of-month month day-of-week (e.g. '0 7 * * mon-fri')",
        ),
    ],
)
def test_single_problems(tmp_path: Path, text: str, expected: str) -> None:
    assert problems(write(tmp_path, "p.yaml", text)) == [expected]


def test_duplicate_keys_are_all_reported_with_the_first_line(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", """
        version: 1
        liked: ["a"]
        interests:
          - name: x
            text: y
            text: z
        liked: ["b"]
    """)  # fmt: skip
    assert problems(path) == [
        "p.yaml:6:5: interests[0].text: duplicate key (first at line 5)",
        "p.yaml:7:1: liked: duplicate key (first at line 2)",
    ]


def test_yaml_syntax_errors_give_the_parsers_position(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", "version: 1\ninterests:\n  - a\n  b: c\n")
    assert problems(path) == [
        "p.yaml:4:3: expected <block end>, but found '?' (while parsing a block collection)"
    ]
    path = write(tmp_path, "q.yaml", 'version: 1\ninterests: ["x]\n')
    [problem] = problems(path)
    assert problem.startswith("q.yaml:3:1: found unexpected end of stream")


@pytest.mark.parametrize("text", ["", "# nothing but a comment\n", "---\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    assert problems(write(tmp_path, "p.yaml", text)) == [
        "p.yaml:1:1: profile: the file has no keys; start with 'version: 1'"
    ]


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    assert problems(write(tmp_path, "p.yaml", "- version: 1\n")) == [
        "p.yaml:1:1: profile: must be a mapping of keys"
    ]


def test_unreadable_file(tmp_path: Path) -> None:
    [problem] = problems(tmp_path / "missing.yaml")
    assert problem.startswith("missing.yaml:1:1: profile: cannot read the file")


# -- many profiles --------------------------------------------------------------------------------


def test_one_bad_profile_does_not_stop_the_others(tmp_path: Path) -> None:
    write(tmp_path, "ada.yaml", "version: 1\ninterests: [vision]\n")
    write(tmp_path, "bad.yaml", "version: 1\nintrests: [vision]\n")
    write(tmp_path, "cy.yml", "version: 1\nliked: ['2503.16422']\n")
    write(tmp_path, "ada.yml", "version: 1\ninterests: [other]\n")
    write(tmp_path, ".hidden.yaml", "not: a profile\n")
    write(tmp_path, "notes.txt", "ignored\n")
    loaded = load_profiles(tmp_path)
    assert [p.name for p in loaded.profiles] == ["ada", "cy"]
    assert loaded.paths == {"ada": tmp_path / "ada.yaml", "cy": tmp_path / "cy.yml"}
    duplicate, misspelled = loaded.errors
    assert duplicate.path == str(tmp_path / "ada.yml")
    assert duplicate.problems == [
        f"{tmp_path / 'ada.yml'}:1:1: profile: {tmp_path / 'ada.yaml'} already defines 'ada'"
    ]
    assert misspelled.path == str(tmp_path / "bad.yaml")
    assert misspelled.problems == [
        f"{tmp_path / 'bad.yaml'}:2:1: intrests: unknown key (did you mean 'interests'?)"
    ]
    assert not loaded.ok
    assert loaded.get("cy") is loaded.profiles[1] and loaded.get("bad") is None


def test_load_profiles_takes_a_list_of_files(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", "version: 1\ninterests: [x]\n")
    loaded = load_profiles([a, tmp_path / "gone.yaml"])
    assert [p.name for p in loaded.profiles] == ["a"] and len(loaded.errors) == 1


# -- feedback written back ----------------------------------------------------------------------


@pytest.fixture
def ada(tmp_path: Path) -> Path:
    path = tmp_path / "ada.yaml"
    path.write_bytes((PROFILES / "ada.yaml").read_bytes())
    return path


LIKED = """liked:
  - "2504.13123"
  - "RePOPE: Impact of Annotation Errors on the POPE Benchmark"
"""


def test_like_appends_and_keeps_everything_else_byte_identical(ada: Path) -> None:
    before = ada.read_text(encoding="utf-8")
    assert LIKED in before
    assert add_feedback(ada, "2506.00001", like=True) is True
    assert ada.read_text(encoding="utf-8") == before.replace(LIKED, LIKED + '  - "2506.00001"\n')
    assert load_profile(ada).liked[-1] == "2506.00001"
    # No temporary file left; the lock file that serializes writers stays (see profile_lock).
    assert sorted(p.name for p in ada.parent.iterdir()) == [".ada.yaml.lock", "ada.yaml"]


def test_dislike_fills_an_empty_list_and_removes_the_paper_from_liked(ada: Path) -> None:
    before = ada.read_text(encoding="utf-8")
    assert add_feedback(ada, "arXiv:2504.13123v2", like=False) is True
    assert ada.read_text(encoding="utf-8") == before.replace(
        LIKED, LIKED.replace('  - "2504.13123"\n', "")
    ).replace("disliked: []\n", 'disliked:\n  - "arXiv:2504.13123v2"\n')


def test_feedback_already_recorded_is_a_no_op(ada: Path) -> None:
    before = ada.read_bytes()
    assert add_feedback(ada, "2504.13123", like=True) is False
    assert add_feedback(ada, "arXiv:2504.13123v3", like=True) is False  # same paper
    assert ada.read_bytes() == before


def test_removing_the_last_item_keeps_the_comments_below_the_list(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", """
        version: 1
        interests: [x]
        liked:
          - a  # first
          - b

        # Papers not wanted.
        disliked: []
    """)  # fmt: skip
    assert add_feedback(path, "b", like=False)
    assert path.read_text(encoding="utf-8") == textwrap.dedent("""\
        version: 1
        interests: [x]
        liked:
          - a  # first

        # Papers not wanted.
        disliked:
          - b
    """)
    assert add_feedback(path, "a", like=False)
    assert path.read_text(encoding="utf-8") == textwrap.dedent("""\
        version: 1
        interests: [x]
        liked: []

        # Papers not wanted.
        disliked:
          - b
          - a
    """)


def test_feedback_creates_the_key_and_keeps_other_layouts(tmp_path: Path) -> None:
    text = "version: 1\ninterests:\n- name: x\n  seed_papers:\n  - 2503.16420\n"
    path = write(tmp_path, "p.yaml", text)
    assert add_feedback(path, "2503.16422", like=True)
    assert path.read_text(encoding="utf-8") == text + "liked:\n- '2503.16422'\n"


def test_feedback_keeps_crlf_line_endings(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(b"version: 1\r\ninterests: [x]\r\nliked:\r\n  - a\r\n")
    assert add_feedback(path, "b", like=True)
    assert path.read_bytes() == b"version: 1\r\ninterests: [x]\r\nliked:\r\n  - a\r\n  - b\r\n"


def test_unquoted_ids_are_matched_as_written(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", "version: 1\ninterests: [x]\nliked: [2504.13120]\n")
    assert add_feedback(path, "2504.13120", like=True) is False
    assert add_feedback(path, "2504.13120", like=False) is True
    assert load_profile(path).disliked == ("2504.13120",)


def test_feedback_refuses_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"p.yaml:3:1: found unexpected end of stream"):
        add_feedback(write(tmp_path, "p.yaml", 'version: 1\nliked: ["a]\n'), "b", like=True)
    with pytest.raises(ProfileError, match=r"q.yaml:2:1: liked: must be a list"):
        add_feedback(write(tmp_path, "q.yaml", "version: 1\nliked: a\n"), "b", like=True)


def test_profile_construction_in_code_is_validated() -> None:
    with pytest.raises(ValueError, match="nothing to rank papers by"):
        Profile(version=1, name="x")
    assert Profile(version=1, name="x", seed_papers=("2503.16422",)).seed_papers == ("2503.16422",)
