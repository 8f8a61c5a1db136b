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

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        """Close the bars now, so that what the command prints about the stop comes after them."""
        for bar in (self._train_progress_bar, self._val_progress_bar, self._test_progress_bar,
                    self._predict_progress_bar):
            if bar is not None:
                bar.close()
