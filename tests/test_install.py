"""Installing digest as a user would: the wheel, `digest init`, and a first run outside the
checkout; and `digest init` itself.

The wheel is built from a copy of the sources with the dev environment's setuptools (no
network), installed into a fresh venv, and run from an empty folder. The fresh venv sees the
dev environment's third-party packages through a path entry, but not its editable install of
digest (the .pth files of a path entry are not run), so what runs is what the wheel carries.
"""

from __future__ import annotations

import os
import shutil
import site
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.config import load_config
from digest.profiles import load_profiles

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=env)
    if check:
        assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel built from this checkout installed in it; its bin folder."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("digest", "templates", "profiles"):
        shutil.copytree(ROOT / name, src / name, symlinks=True, ignore=ignore)
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
        "--no-index", "-w", base / "dist", src, cwd=base)
    (wheel,) = (base / "dist").glob("digest_papers-*.whl")
    venv = base / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=base)
    run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "-q",
        "--no-index", "--no-deps", wheel, cwd=base)
    (site_packages,) = (venv / "lib").glob("python3.*/site-packages")
    (site_packages / "dev-deps.pth").write_text(
        "\n".join(p for p in site.getsitepackages() if "site-packages" in p) + "\n"
    )
    return venv / "bin"


def test_the_wheel_carries_what_a_first_run_needs_and_runs_the_demo(
    installed: Path, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGEST_", "PYTHON"))}
    here = tmp_path / "empty"
    here.mkdir()
    where = run(installed / "python", "-c", "import digest; print(digest.__file__)", cwd=here,
                env=env).stdout
    assert where.startswith(str(installed.parent)), where  # the wheel's copy, not the checkout

    version = run(installed / "python", "-m", "digest", "--version", cwd=here, env=env)
    assert version.stdout.startswith("digest, version ")

    run(installed / "digest", "init", "--examples", "site", cwd=here, env=env)
    config = here / "site" / "digest.toml"
    # From another folder: every path is the config file's folder's, nothing lands here.
    ingest = run(installed / "digest", "--config", config, "ingest", "sample", cwd=here, env=env)
    assert "483 papers in the store" in ingest.stdout
    result = run(installed / "digest", "--config", config, "run", "--date", "2026-07-01",
                 cwd=here, env=env)
    assert "ada: sent" in result.stdout, result.stdout
    out = here / "site" / "out"
    assert (out / "ada" / "2026-07-01.md").is_file()
    assert (out / "ada" / "feed.atom").is_file()
    assert list((out / "ada").glob("*.eml"))
    assert sorted(p.name for p in here.iterdir()) == ["site"]


# -- digest init ---------------------------------------------------------------------------------


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


# Each test in an empty folder without DIGEST_* settings: `scratch` in conftest.py.
pytestmark = pytest.mark.usefixtures("scratch")


def test_init_writes_a_config_a_starter_profile_the_schema_and_a_private_secret(
    scratch: Path,
) -> None:
    code, out, _ = invoke("init", "site", "--name", "ada")
    assert code == 0
    site_dir = scratch / "site"
    assert out.split() == [f"site/{p}" for p in (
        ".digest-secret", "profiles/ada.yaml", "profiles/profile.schema.json", "digest.toml")]
    secret = site_dir / ".digest-secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert len(secret.read_text().strip()) >= 40
    text = (site_dir / "digest.toml").read_text()
    assert "secret_file" in text and secret.read_text().strip() not in text
    assert tomllib.loads(text)["server"]["secret_file"] == ".digest-secret"
    found = load_profiles(site_dir / "profiles")
    assert found.ok and [(p.name, p.id) for p in found.profiles] == [("ada", "ada")]
    config = load_config(site_dir / "digest.toml")
    assert config.secret() == secret.read_text().strip()
    assert Path(config.profiles_dir) == site_dir / "profiles"


def test_init_with_examples_writes_the_shipped_profiles(scratch: Path) -> None:
    code, _, _ = invoke("init", "--examples")
    assert code == 0
    found = load_profiles(scratch / "profiles")
    assert found.ok and [p.name for p in found.profiles] == ["ada", "ben", "cara"]
    assert (scratch / "profiles" / "profile.schema.json").is_file()


def test_init_refuses_to_overwrite_and_writes_nothing(scratch: Path) -> None:
    (scratch / "digest.toml").write_text("# mine\n")
    code, out, err = invoke("init")
    assert code == 1 and out == ""
    assert "digest.toml already exists" in err
    assert (scratch / "digest.toml").read_text() == "# mine\n"
    assert sorted(p.name for p in scratch.iterdir()) == ["digest.toml"]


def test_paths_in_a_config_are_the_config_folders_not_the_current_ones(
    scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site_dir = scratch / "site"
    site_dir.mkdir()
    (site_dir / "digest.toml").write_text(
        'database = "sqlite:///data/d.sqlite"\nout_dir = "public"\n'
        'profiles_dir = "people"\ntemplates_dir = "/abs/templates"\n'
    )
    elsewhere = scratch / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(Path("..") / "site" / "digest.toml")
    assert config.database == f"sqlite:///{site_dir.resolve()}/data/d.sqlite"
    assert config.out_dir == str(site_dir.resolve() / "public")
    assert config.profiles_dir == str(site_dir.resolve() / "people")
    assert config.templates_dir == "/abs/templates"


def test_output_files_are_readable_by_others_under_the_umask(scratch: Path) -> None:
    from digest.fsutil import write_atomically

    old = os.umask(0o022)
    try:
        write_atomically(scratch / "feed.rss", b"<rss/>")
        os.umask(0o077)
        write_atomically(scratch / "private.md", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((scratch / "feed.rss").stat().st_mode) == 0o644
    assert stat.S_IMODE((scratch / "private.md").stat().st_mode) == 0o600
