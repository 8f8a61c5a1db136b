"""Progress on stderr, so stdout carries only the results (``> results.md`` stays clean): one bar
of images done of the run's total, with the rate and the time left, instead of Lightning's
batch counter. A method's own bars (LOTS's iterations) nest below it."""

from __future__ import annotations

import sys
from typing import Any

from pytorch_lightning.callbacks import ProgressBar
from tqdm.auto import tqdm


class ImageProgressBar(ProgressBar):
    """``LABEL: 40%|████      | 16/40 [00:10<00:15, 1.60 img/s]`` for ``trainer.test``.

    ``total`` = the images of the run (a resumed run starts at the ``done`` ones). Only rank 0
    draws; under DDP every rank handles the same number of batches (Lightning's sampler evens
    the shards), so rank 0 counts each of its batches once per process, capped at the total.
    """

    def __init__(self, total: int, done: int = 0, label: str = "evaluating") -> None:
        super().__init__()
        self.total = int(total)
        self.done = int(done)
        self.label = label
        self.bar: tqdm | None = None
        self._enabled = True

    # -- ProgressBar's switch (Lightning calls these) -----------------------------------------

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    # -- the bar ------------------------------------------------------------------------------

    def on_test_start(self, trainer, pl_module) -> None:
        if not (self._enabled and trainer.is_global_zero):
            return
        self.bar = tqdm(
            total=self.total,
            initial=self.done,
            desc=self.label,
            unit="img",
            file=sys.stderr,
            dynamic_ncols=True,
            leave=True,
            position=0,
            smoothing=0.1,
        )

    def on_test_batch_end(
        self, trainer, pl_module, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if self.bar is None:
            return
        images = len(getattr(outputs, "sample_ids", [])) + len(getattr(outputs, "failures", []))
        if not images and isinstance(batch, dict) and "sample_id" in batch:
            images = len(batch["sample_id"])
        self.bar.update(max(0, min(images * trainer.world_size, self.total - self.bar.n)))

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_test_end(self, trainer, pl_module) -> None:
        self._close()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        """Close the bar now, so that what the command prints about the stop comes after it."""
        self._close()
