"""`python -m digest`: the same as the `digest` command."""

from digest.cli import main

if __name__ == "__main__":
    main(prog_name="digest")
