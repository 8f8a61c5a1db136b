"""Writing result files so that a run killed mid-write never leaves a torn one.

Each file is written under a temporary name beside its final one, flushed to disk, and then
renamed over the final name (``os.replace``: atomic on POSIX and Windows). A reader sees the
old file or the new one, never half of one; a kill leaves at most a ``.<name>.partial<ext>``
file, which the next write of the same file replaces.

A full disk (or quota) while writing becomes :class:`DiskFull`: one error line naming the file
and the space left, instead of the traceback of whichever writer met it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from benchmark.core.errors import BenchmarkError

#: The errors of a full disk and of a full disk quota (the same problem to whoever runs).
FULL_DISK_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


class DiskFull(BenchmarkError):
    """No space was left on the disk while writing ``path``. ``kept`` (what the run folder
    holds) and ``resume`` (the command that finishes the run) are set by whoever knows the run:
    the evaluation, or the table it belongs to."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.free = free_space(self.path)  # after the writer's partial file is removed
        self.kept: str | None = None
        self.resume: str | None = None
        super().__init__(str(self.path))

    def __str__(self) -> str:
        parts = [f"no space left on the disk writing {self.path} ({self.free} free on that disk now)"]
        if self.kept:
            parts.append(self.kept)
        parts.append(
            f"free some space and resume with: {self.resume}"
            if self.resume
            else "free some space and run the command again"
        )
        return "; ".join(parts)


def free_space(path: Path) -> str:
    """The space free on the disk holding ``path`` (or its nearest existing folder), in words."""
    for folder in [path, *path.parents]:
        if folder.exists():
            free = shutil.disk_usage(folder).free
            for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
                if free >= size:
                    return f"{free / size:.1f} {unit}"
            return f"{free} bytes"
    return "unknown"


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` or one it arose from (``__cause__``/``__context__``) is a full disk:
    an ``OSError`` with ENOSPC or EDQUOT, or a message carrying ENOSPC's text. ``torch.save``
    writing through a Python file raises ``RuntimeError("[enforce fail at inline_container.cc]
    ... unexpected pos ...")`` whose context is the file's ``OSError(28, 'No space left on
    device')``; given a path, its C++ stream reports only ``basic_ios::clear: iostream error``,
    so the writers here hand it a Python file."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in FULL_DISK_ERRNOS:
            return True
        if os.strerror(errno.ENOSPC) in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def partial_path(path: Path) -> Path:
    """The temporary name of ``path`` (same folder, same extension, so writers that infer
    the format from it, such as matplotlib, still do)."""
    return path.with_name(f".{path.stem}.partial{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s content to; on success it becomes ``path``.
    :class:`DiskFull` when the disk fills up on the way (nothing of ``path`` is changed)."""
    path = Path(path)
    partial = partial_path(path)
    try:
        yield partial
        with open(partial, "rb+") as handle:  # what the writer wrote reaches the disk first
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except (OSError, RuntimeError) as error:
        if not is_disk_full(error):
            raise
        partial.unlink(missing_ok=True)  # its space is free again before DiskFull measures it
        raise DiskFull(path) from error
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
