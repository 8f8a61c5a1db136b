"""Writing result files so that a run killed mid-write never leaves a torn one.

Each file is written under a temporary name beside its final one, flushed to disk, and then
renamed over the final name (``os.replace``: atomic on POSIX and Windows). A reader sees the
old file or the new one, never half of one; a kill leaves at most a ``.<name>.partial<ext>``
file, which the next write of the same file replaces.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def partial_path(path: Path) -> Path:
    """The temporary name of ``path`` (same folder, same extension, so writers that infer
    the format from it, such as matplotlib, still do)."""
    return path.with_name(f".{path.stem}.partial{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s content to; on success it becomes ``path``."""
    path = Path(path)
    partial = partial_path(path)
    try:
        yield partial
        with open(partial, "rb+") as handle:  # what the writer wrote reaches the disk first
            os.fsync(handle.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(path: str | Path, newline: str | None = None) -> Iterator[IO[str]]:
    """``open(path, "w")`` that replaces ``path`` only once the ``with`` block succeeds."""
    with atomic_path(path) as partial, open(partial, "w", encoding="utf-8", newline=newline) as handle:
        yield handle


def write_text_atomic(path: str | Path, text: str) -> Path:
    """``Path(path).write_text(text)``, atomically."""
    with atomic_open(path) as handle:
        handle.write(text)
    return Path(path)
