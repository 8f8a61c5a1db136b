"""Data for the saliency benchmark: ImageNet validation images in [0,1] pixel space.

Public API: :class:`ImageNetDataModule`, :class:`ImageDataset`, :class:`Sample`,
:func:`collate_samples`, :func:`discover_samples`, :func:`imagenet_classes`, :func:`load_rgb`,
:class:`ImageLoadError` (plus :func:`make_transform`, :func:`make_sampler`,
:func:`read_loc_solution`).
"""

from .classes import ImageNetClasses, imagenet_classes
from .dataset import ImageDataset, collate_samples
from .ground_truth import read_loc_solution
from .imagenet import ImageNetDataModule
from .loading import ImageLoadError, load_rgb, make_transform
from .sampler import make_sampler
from .samples import Sample, discover_samples

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
