"""Pure tensor functions holding the maths of the metrics (batched, testable by hand)."""

from benchmark.metrics.functional.bootstrap import bootstrap_ci, paired_bootstrap
from benchmark.metrics.functional.coherency import coherency, pearson
from benchmark.metrics.functional.complexity import adcc, complexity
from benchmark.metrics.functional.confidence import average_drop, average_increase
from benchmark.metrics.functional.image import gaussian_blur, map_problems, minmax_normalize, opencv_sigma, to_grayscale
from benchmark.metrics.functional.insertion_deletion import (
    curve_auc,
    insertion_deletion_curves,
    pixel_order,
    pixel_rank,
    steps_for,
)
from benchmark.metrics.functional.localization import energy_pointing_game, pointing_game

__all__ = [
    "average_drop",
    "average_increase",
    "coherency",
    "curve_auc",
    "gaussian_blur",
    "insertion_deletion_curves",
    "map_problems",
    "minmax_normalize",
    "opencv_sigma",
    "pearson",
    "pixel_order",
    "pixel_rank",
    "steps_for",
    "to_grayscale",
    "adcc",
    "bootstrap_ci",
    "complexity",
    "energy_pointing_game",
    "paired_bootstrap",
    "pointing_game",
]
