"""Writing files whole or not at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path


def write_atomically(path: Path, data: bytes) -> None:
    """Write `path` whole or not at all: a temp file in the same folder, fsync, rename, and an
    fsync of the folder so that the rename itself survives a power cut."""
    with staged([(path, data)]):
        pass


@contextlib.contextmanager
def staged(files: Sequence[tuple[Path, bytes]]) -> Iterator[None]:
    """Write each ``(path, data)`` whole to a temp file beside its path now, and rename them
    into place when the block ends without an exception (they are removed if it raises).

    For files that must land only if something else succeeds (a digest's markdown, once its
    email has left), and whose folder must be found unwritable before that is tried.
    """
    temps: list[tuple[str, Path]] = []
    try:
        for path, data in files:
            temps.append((_write_temp(path, data), path))
        yield
        for tmp, path in temps:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in temps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise
    for folder in dict.fromkeys(path.parent for _, path in temps):
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _umask() -> int:
    """The process's umask, read without changing it where Linux shows it."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: read by setting, then restore at once
    os.umask(mask)
    return mask


def _write_temp(path: Path, data: bytes) -> str:
    """`data` in a new temp file in `path`'s folder (made if needed), flushed to disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file 0600; what digest writes (digests, feeds) is meant to be read,
        # by a web server too, so give it the mode a plain open() would under the umask.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp
