"""Ctrl-C (SIGINT) and SIGTERM (``kill``, SLURM at its time limit, a container stop) stop a
run where it is, within the current tensor operation, not at the end of the batch.

While a command runs, both signals raise :class:`RunInterrupted` in the main thread. Lightning
lets it through (after its own teardown; it composes its SIGTERM handler with this one), the
evaluation adds the folder to resume from, and the command line prints what was kept and the
command that finishes the run. The records on disk are whole lines of whole batches (a line
torn by a kill is dropped when the run is resumed), so nothing already written is lost.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

#: The signals that stop a run, and the exit status of each (128 + the signal number).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(BaseException):
    """A stop signal arrived. A ``BaseException``, so that no ``except Exception`` in a library
    on the way swallows it.

    ``run_dir`` / ``table_dir``: the folder a resumption continues from, once it is known.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        self.run_dir: Path | None = None
        self.table_dir: Path | None = None
        super().__init__(f"interrupted by {self.signal_name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _raise_interrupt(signum: int, frame) -> None:
    raise RunInterrupted(signum)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise :class:`RunInterrupted` (main thread only:
    elsewhere Python cannot install signal handlers, and the defaults stay)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    for signum in STOP_SIGNALS:
        signal.signal(signum, _raise_interrupt)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
