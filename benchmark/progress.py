"""Progress on stderr, so stdout carries only the results (``> results.md`` stays clean)."""

from __future__ import annotations

import sys

from pytorch_lightning.callbacks import TQDMProgressBar
from pytorch_lightning.callbacks.progress.tqdm_progress import Tqdm


class StderrProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar for ``trainer.test``, written to stderr, counting batches."""

    def init_test_tqdm(self) -> Tqdm:
        return Tqdm(
            desc="Evaluating (batches)",
            position=2 * self.process_position,
            disable=self.is_disabled,
            leave=True,
            dynamic_ncols=True,
            file=sys.stderr,
            bar_format=self.BAR_FORMAT,
        )
