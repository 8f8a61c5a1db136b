"""Data for the saliency benchmark: ImageNet validation images in [0,1] pixel space.

Public API: :class:`ImageNetDataModule`, :class:`ImageDataset`, :class:`Sample`,
:func:`collate_samples`, :func:`discover_samples`, :func:`imagenet_classes`, :func:`load_rgb`,
:class:`ImageLoadError` (plus :func:`make_transform`, :func:`make_sampler`,
:func:`read_loc_solution`).
"""

from benchmark.datamodules.classes import ImageNetClasses, imagenet_classes
from benchmark.datamodules.dataset import ImageDataset, collate_samples
from benchmark.datamodules.ground_truth import read_loc_solution
from benchmark.datamodules.imagenet import ImageNetDataModule
from benchmark.datamodules.loading import ImageLoadError, load_rgb, make_transform
from benchmark.datamodules.sampler import make_sampler
from benchmark.datamodules.samples import Sample, discover_samples

__all__ = [
    "ImageDataset",
    "ImageLoadError",
    "ImageNetClasses",
    "ImageNetDataModule",
    "Sample",
    "collate_samples",
    "discover_samples",
    "imagenet_classes",
    "load_rgb",
    "make_sampler",
    "make_transform",
    "read_loc_solution",
]
