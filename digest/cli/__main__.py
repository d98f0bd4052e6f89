"""`python -m digest.cli`, as before the CLI became a package (same as `python -m digest`)."""

from digest.cli import main

if __name__ == "__main__":
    main(prog_name="digest")
