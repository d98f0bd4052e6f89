"""The `digest` command group and its global options."""

from __future__ import annotations

import click

from .. import __version__
from ..config import load_config
from ..errors import ConfigError
from .common import Group, fail, verbosity_options


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="digest")
@click.option("--db", "db_url", envvar="DIGEST_DB", metavar="URL",
              help="Database URL [env DIGEST_DB; default from config, else "
                   "sqlite:///out/digest.sqlite].")
@click.option("--config", "config_path", envvar="DIGEST_CONFIG", metavar="FILE",
              help="Configuration file [env DIGEST_CONFIG; default ./digest.toml if present].")
@click.option("--profiles", "profiles_dir", envvar="DIGEST_PROFILES", metavar="DIR",
              help="Folder of profile YAML files [env DIGEST_PROFILES; default from config, "
                   "else ./profiles].")
@click.pass_context
def main(ctx: click.Context, db_url: str | None, config_path: str | None,
         profiles_dir: str | None) -> None:
    """digest: personalized research-paper digests.

    Ingest new papers, rank them against each person's interest profile, and deliver digests.
    Start with `digest init` in an empty folder.
    """
    # Imported here so that `digest --version` and `--help` never load scikit-learn.
    from ..app import DigestApp

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        fail(str(exc))
    # A caller (a test) may hand seams for the app in `obj`: {"http_factory": ...}.
    seams = ctx.obj if isinstance(ctx.obj, dict) else {}
    ctx.obj = DigestApp(config, db_url or config.database, profiles_dir or config.profiles_dir,
                        **{"notice": _notice, **seams})


def _notice(line: str) -> None:
    """A one-line notice of the library (a model fit and its progress) on stderr."""
    click.echo(f"digest: {line}", err=True)


main.params.extend(verbosity_options())
