"""The LightningDataModule of the benchmark: ImageNet validation images (or built-in photos)."""

from __future__ import annotations

import copy

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from benchmark.core.errors import BenchmarkError
from benchmark.datamodules.dataset import ImageDataset, collate_samples
from benchmark.datamodules.sampler import make_sampler
from benchmark.datamodules.samples import Sample, discover


class ImageNetDataModule(pl.LightningDataModule):
    """Discovers and selects the images eagerly, so a bad ``--data`` fails before any model work.

    Args:
        data: a folder in one of the recognised layouts (see :mod:`benchmark.datamodules.layouts`);
            ``None`` = the built-in scikit-image photos.
        per_class: images per class, first by file name (``None`` = all).
        limit: keep only the first N selected images (``None`` = all).
        classes: only these classes (wnids or class-index strings).
        ground_truth: ``LOC_val_solution.csv`` for a flat ``ILSVRC2012_val_*`` folder
            (default: found in the folder or its parents).
        batch_size: images per batch.
        num_workers: data-loader worker processes (0 = load in the main process).
        boxes: a CSV of bounding boxes in the ``LOC_val_solution.csv`` layout, matched by file
            stem (a flat ``ILSVRC2012_val_*`` folder has them from its ground truth already).
        pin_memory: page-locked batches for fast copies to a GPU (only for a GPU run: it
            creates a CUDA context).
    """

    def __init__(
        self,
        data: str | None = None,
        per_class: int | None = 1,
        limit: int | None = None,
        classes: list[str] | None = None,
        ground_truth: str | None = None,
        batch_size: int = 8,
        num_workers: int = 0,
        boxes: str | None = None,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise BenchmarkError(f"--batch-size {batch_size}: must be at least 1; pass a positive whole number")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise BenchmarkError(f"--num-workers {num_workers}: must be 0 or more; pass 0 to load in the main process")
        self.save_hyperparameters()
        self.data = data
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.discovery = discover(data, per_class, limit, classes, ground_truth)
        self.layout: str = self.discovery.layout
        self.samples: list[Sample] = self.discovery.samples
        if boxes is not None:
            from benchmark.datamodules.boxes import attach_boxes, read_boxes_file

            self.samples = attach_boxes(self.samples, read_boxes_file(boxes))
        self.dataset = ImageDataset(self.samples)

    def restrict(self, sample_ids: list[int]) -> None:
        """Evaluate only the samples with these ids (e.g. one chosen image per class)."""
        wanted = set(sample_ids)
        self.samples = [s for s in self.samples if s.sample_id in wanted]
        self.dataset = ImageDataset(self.samples)

    def subset(self, sample_ids: list[int]) -> ImageNetDataModule:
        """A copy that evaluates only the samples with these ids (this one is unchanged; the
        ids stay those of the full selection)."""
        part = copy.copy(self)
        part.restrict(sample_ids)
        return part

    @property
    def boxed_samples(self) -> int:
        """How many selected images have bounding boxes."""
        return sum(bool(s.boxes) for s in self.samples)

    def describe(self) -> str:
        """One line: source, number of images, layout detected, labelled or not (and boxes)."""
        text = self.discovery.describe()
        if len(self.samples) != len(self.discovery.samples):
            text += f"; {len(self.samples)} of them used"
        boxed = self.boxed_samples
        return text + (f", {boxed} with bounding boxes" if boxed else "")

    def test_dataloader(self) -> DataLoader:
        """All samples in order, each given to exactly one process under DDP."""
        trainer = self.trainer
        world_size = int(getattr(trainer, "world_size", 1) or 1) if trainer is not None else 1
        rank = int(getattr(trainer, "global_rank", 0) or 0) if trainer is not None else 0
        return DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            shuffle=False,
            sampler=make_sampler(self.dataset, world_size, rank),
            num_workers=self.num_workers,
            collate_fn=collate_samples,
            pin_memory=self.pin_memory,
            persistent_workers=False,
        )

    def predict_dataloader(self) -> DataLoader:
        """Same as :meth:`test_dataloader` (for ``Trainer.predict``)."""
        return self.test_dataloader()
