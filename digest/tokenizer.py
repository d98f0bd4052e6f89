"""Tokenizing documents into integer ids, as scikit-learn's word analyzer splits them.

This module imports nothing of digest (only the standard library and numpy) so that it can run
as a second process of a model fit without importing the whole package: `Worker` starts it by
the file's path, hands it slices of documents on stdin and reads their ids on stdout.
"""

from __future__ import annotations

import pickle
import queue
import re
import subprocess
import sys
import threading
from collections import defaultdict
from collections.abc import Sequence
from typing import IO, Any

import numpy as np
import numpy.typing as npt

#: scikit-learn's default token pattern.
DEFAULT_PATTERN = r"(?u)\b\w\w+\b"

# The default pattern on ASCII text: every character but [A-Za-z0-9_] is a separator.
# bytes.translate and split do that four times faster than the regular expression; one-letter
# words come through and are dropped later with the stop words. Other text takes the regex.
_ASCII_SEPARATORS = bytes.maketrans(
    bytes(range(128)),
    bytes(c if chr(c).isalnum() or c == ord("_") else ord(" ") for c in range(128)))


class Tokens:
    """Token ids of documents: one flat int32 array, `offsets[i]:offsets[i+1]` per document,
    and the token strings in id order."""

    def __init__(self, ids: npt.NDArray[np.int32], offsets: npt.NDArray[np.int64],
                 words: list[str]) -> None:
        self.ids = ids
        self.offsets = offsets
        self.words = words


def tokenize(texts: Sequence[str], pattern: str = DEFAULT_PATTERN) -> Tokens:
    """Lowercase and tokenize `texts` as scikit-learn's word analyzer does, into ids. With the
    default pattern the words may include one-letter ones, which the caller drops."""
    findall = re.compile(pattern).findall
    fast = pattern == DEFAULT_PATTERN
    vocab: defaultdict[bytes, int] = defaultdict()
    vocab.default_factory = vocab.__len__  # a new word gets the next id
    words: list[bytes] = []
    lengths = np.zeros(len(texts), dtype=np.int64)
    for i, text in enumerate(texts):
        low = text.lower()
        if fast and low.isascii():
            found = low.encode("ascii").translate(_ASCII_SEPARATORS).split()
        else:
            found = [w.encode("utf-8") for w in findall(low)]
        lengths[i] = len(found)
        words.extend(found)
    ids = np.fromiter(map(vocab.__getitem__, words), dtype=np.int32, count=len(words))
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return Tokens(ids, offsets, [w.decode("utf-8") for w in vocab])


def merge(parts: list[Tokens]) -> Tokens:
    """Token ids tokenized separately, in order, under one vocabulary. Empties `parts` as it
    goes, so that the ids are never held twice."""
    index: dict[str, int] = {}
    total = sum(len(p.ids) for p in parts)
    ids = np.empty(total, dtype=np.int32)
    offsets = [np.zeros(1, dtype=np.int64)]
    base = 0
    parts.reverse()
    while parts:
        part = parts.pop()
        remap = np.fromiter((index.setdefault(w, len(index)) for w in part.words),
                            dtype=np.int32, count=len(part.words))
        n = len(part.ids)
        if n:
            ids[base : base + n] = remap[part.ids]
        offsets.append(part.offsets[1:] + base)
        base += n
    return Tokens(ids, np.concatenate(offsets), list(index))


class WorkerError(RuntimeError):
    """The tokenizer process failed; its slices are lost (the texts were not kept)."""


class Worker:
    """`tokenize` in another Python process (this file run by path, so the package is not
    imported there): `send` slices of texts as they are read, then `results()` gives their
    tokens, one `Tokens` per slice, in order. A thread feeds the process, so `send` only
    waits when two slices are already queued."""

    def __init__(self, pattern: str) -> None:
        bootstrap = ("import importlib.util as u, sys; s = u.spec_from_file_location("
                     "'digest_tokenizer', sys.argv[1]); m = u.module_from_spec(s); "
                     "s.loader.exec_module(m); m.serve(sys.stdin.buffer, sys.stdout.buffer)")
        # -I: neither the working folder nor PYTHON* variables change what is imported.
        self.proc = subprocess.Popen([sys.executable, "-I", "-c", bootstrap, __file__],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.queue: queue.Queue[list[str] | None] = queue.Queue(maxsize=2)
        self.broken = False
        self.thread = threading.Thread(target=self._feed, args=(pattern,), daemon=True)
        self.thread.start()

    def _feed(self, pattern: str) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        item: Any = pattern
        while item is not None:
            if not self.broken:
                try:
                    pickle.dump(item, stdin, protocol=pickle.HIGHEST_PROTOCOL)
                except OSError:  # the process died: results() says so
                    self.broken = True
            item = self.queue.get()
        try:
            stdin.close()
        except OSError:
            self.broken = True

    def send(self, texts: Sequence[str]) -> None:
        self.queue.put(list(texts))

    def results(self) -> list[Tokens]:
        """The tokens of every slice sent; `WorkerError` (with its last words) if it failed."""
        self.queue.put(None)
        self.thread.join()
        self.proc.stdin = None  # closed by the thread: communicate() must not flush it
        out, err = self.proc.communicate()
        if self.proc.returncode != 0 or self.broken:
            last = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
            raise WorkerError(f"the tokenizer process failed ({self.proc.returncode}): "
                              f"{last[0]}")
        return [Tokens(ids, offsets, words) for ids, offsets, words in pickle.loads(out)]

    def close(self) -> None:
        """Stop the process (after a failure elsewhere); results() is not called then."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.queue.put(None)
        self.thread.join()
        self.proc.wait()


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """The worker's side: a pattern, then slices of texts until the end, as pickles in; the
    (ids, offsets, words) of each slice out, as one pickle."""
    pattern = pickle.load(stdin)
    out = []
    while True:
        try:
            texts = pickle.load(stdin)
        except EOFError:
            break
        tokens = tokenize(texts, pattern)
        out.append((tokens.ids, tokens.offsets, tokens.words))
    pickle.dump(out, stdout, protocol=pickle.HIGHEST_PROTOCOL)
    stdout.flush()
