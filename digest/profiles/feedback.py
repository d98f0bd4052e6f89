"""Writing a like or dislike back into a person's profile file, keeping what they wrote."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, ScalarString

from digest.errors import ProfileError

from .model import Profile, _paper_key
from .yamlio import dump, id_text, layout_of, read_yaml, write_atomically


@contextmanager
def profile_lock(path: Path) -> Iterator[None]:
    """Hold the lock of the profile at `path` across processes (the CLI, the server, ...).

    Feedback reads, edits and replaces the file; two writers that overlap would each write back
    what they read, and one like would be lost. The lock is a separate hidden file beside the
    profile (``.ada.yaml.lock``) because the profile itself is replaced, not rewritten, on each
    change; it is never deleted, since deleting it would let two writers lock different files.
    The kernel releases it when a holder dies.
    """
    lock_path = path.with_name(f".{path.name}.lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ProfileError(str(path), [f"{path}:1:1: profile: cannot lock the file: "
                                       f"{lock_path}: {exc.strerror or exc}"]) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def add_feedback(path: str | os.PathLike[str], paper_id: str, like: bool) -> bool:
    """Record that the person liked (or disliked) a paper, in their profile file.

    Appends `paper_id` to ``liked`` (or ``disliked``), creating the key if need be, and
    removes it from the other list. Comments, key order, quoting and indentation are kept;
    the file is replaced atomically, under `profile_lock`, so concurrent feedback from any
    number of processes is all kept. Returns False, writing nothing, if it was already there.
    The file must be valid YAML with a mapping at the top; other problems do not block feedback.
    """
    paper_id = paper_id.strip()
    if not paper_id:
        raise ValueError("paper_id is empty")
    path = Path(path)
    with profile_lock(path):
        return _add_feedback_locked(path, paper_id, like)


def _add_feedback_locked(path: Path, paper_id: str, like: bool) -> bool:
    root, text = read_yaml(path)
    if not isinstance(root, CommentedMap):
        raise ProfileError(str(path), [f"{path}:1:1: profile: must be a mapping of keys"])
    lines = text.splitlines()
    layout = layout_of(root, text)  # before the change: one parse of the file, not two
    target, other = ("liked", "disliked") if like else ("disliked", "liked")
    for key in (target, other):
        if root.get(key) is not None and not isinstance(root[key], CommentedSeq):
            line, col = root.lc.key(key)
            raise ProfileError(str(path), [f"{path}:{line + 1}:{col + 1}: {key}: must be a list"])

    wanted = _paper_key(paper_id)
    changed = False
    if isinstance(root.get(other), CommentedSeq):
        seq = root[other]
        for i in reversed(range(len(seq))):
            if _paper_key(id_text(seq, i, lines)) == wanted:
                _delete_keeping_comments(root, other, i)
                changed = True
    seq = root.get(target)
    if not isinstance(seq, CommentedSeq):
        seq = root[target] = CommentedSeq()
    if all(_paper_key(id_text(seq, i, lines)) != wanted for i in range(len(seq))):
        _append_keeping_comments(seq, _styled_like(paper_id, seq, root.get(other)))
        changed = True
    if changed:
        write_atomically(path, dump(root, text, layout))
    return changed


def _styled_like(paper_id: str, *seqs: Any) -> Any:
    """`paper_id` quoted the way the list's existing items are (or the other list's)."""
    for seq in seqs:
        if isinstance(seq, CommentedSeq):
            for item in reversed(seq):
                if isinstance(item, ScalarString):
                    return type(item)(paper_id)
                if isinstance(item, str):
                    return paper_id
    return paper_id


def _append_keeping_comments(seq: CommentedSeq, value: Any) -> None:
    """Append, keeping the comment block below the list below it.

    ruamel stores the blank lines and comments that follow a list (often the heading of the
    next key) on its last item; appended naively, the new item would land under them.
    """
    last = len(seq) - 1
    seq.append(value)
    entry = seq.ca.items.get(last)
    if last < 0 or not entry or entry[0] is None:
        return
    token = entry[0]
    eol, newline, below = token.value.partition("\n")
    if not below:  # only an end-of-line comment: it stays with its item
        return
    moved = type(token)(newline + below, token.start_mark, token.end_mark, column=0)
    seq.ca.items[last + 1] = [moved, None, None, None]
    if eol.strip():
        token.value = eol + "\n"
    else:
        del seq.ca.items[last]


def _delete_keeping_comments(root: CommentedMap, key: str, index: int) -> None:
    """Delete an item, keeping the comment block below the list (see above) in place."""
    seq = root[key]
    entry = seq.ca.items.get(index) if index == len(seq) - 1 else None
    del seq[index]
    if not entry or entry[0] is None:
        return
    token = entry[0]
    below = token.value.partition("\n")[2]
    if not below:
        return
    if seq:
        previous = seq.ca.items.get(index - 1)
        if previous and previous[0] is not None:
            previous[0].value += below  # after the item's own end-of-line comment
        else:
            moved = type(token)("\n" + below, token.start_mark, token.end_mark, column=0)
            seq.ca.items[index - 1] = [moved, None, None, None]
    else:
        # An empty block list has nowhere to hang comments: write it as [] and hang them on
        # the key, which ruamel prints after the value.
        seq.fa.set_flow_style()
        moved = type(token)("\n" + below, token.start_mark, token.end_mark, column=0)
        slots = root.ca.items.setdefault(key, [None, None, None, None])
        slots[2] = moved


def seed_conflict(profile: Profile, paper_id: str) -> str | None:
    """Where `paper_id` is a seed of `profile` ("seed_papers", or "interest 'X'"), if it is:
    disliking a seed paper sends contradictory signals, so the person is told."""
    wanted = _paper_key(paper_id)
    if any(_paper_key(ref) == wanted for ref in profile.seed_papers):
        return "seed_papers"
    for interest in profile.interests:
        if any(_paper_key(ref) == wanted for ref in interest.seed_papers):
            return f"interest {interest.name!r}"
    return None


_NEW_PROFILE = """\
# yaml-language-server: $schema=./profile.schema.json
#
# Made by `digest profiles import`; add interests in plain words, an email, a schedule.
version: 1

# Stable identity: what was sent and an unsubscribe follow it, so the file can be renamed.
id: {name}

# Papers typical of your interests, from your library.
seed_papers: []
"""


def add_seed_papers(path: str | os.PathLike[str], refs: list[str]) -> list[str]:
    """Append `refs` (arXiv ids or stored keys) to the profile's top-level ``seed_papers``,
    leaving out those already there; create the profile (with an `id`) if the file does not
    exist. Same care as `add_feedback`: comments kept, atomic, under `profile_lock`.
    Returns the refs added."""
    path = Path(path)
    with profile_lock(path):
        if not path.exists():
            write_atomically(path, _NEW_PROFILE.format(name=path.stem))
        root, text = read_yaml(path)
        if not isinstance(root, CommentedMap):
            raise ProfileError(str(path), [f"{path}:1:1: profile: must be a mapping of keys"])
        seq = root.get("seed_papers")
        if seq is not None and not isinstance(seq, CommentedSeq):
            line, col = root.lc.key("seed_papers")
            raise ProfileError(str(path),
                               [f"{path}:{line + 1}:{col + 1}: seed_papers: must be a list"])
        if seq is None:
            seq = root["seed_papers"] = CommentedSeq()
        lines = text.splitlines()
        layout = layout_of(root, text)
        have = {_paper_key(id_text(seq, i, lines)) for i in range(len(seq))}
        added = []
        for ref in refs:
            if _paper_key(ref) not in have:
                have.add(_paper_key(ref))
                # Quoted, so that YAML never reads an id such as 2504.13120 as a number.
                _append_keeping_comments(seq, DoubleQuotedScalarString(ref))
                added.append(ref)
        if added:
            if seq.fa.flow_style() and len(seq) > 5:
                seq.fa.set_block_style()  # a long list reads better one paper a line
            write_atomically(path, dump(root, text, layout))
        return added
