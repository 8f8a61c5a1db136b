"""Saliency metrics: functional maths in ``metrics.functional``, torchmetrics classes here."""

from metrics.average_drop import AverageDrop
from metrics.average_increase import AverageIncrease
from metrics.coherency import Coherency
from metrics.complexity import ADCC, Complexity
from metrics.insertion_deletion import Deletion, Insertion
from metrics.per_sample import PerSampleMetric
from metrics.pointing_game import EnergyPointingGame, PointingGame
from metrics.scorer import EXTRA_METRIC_KEYS, HIGHER_IS_BETTER, METRIC_KEYS, SaliencyScorer

__all__ = [
    "ADCC",
    "EXTRA_METRIC_KEYS",
    "HIGHER_IS_BETTER",
    "METRIC_KEYS",
    "AverageDrop",
    "Complexity",
    "EnergyPointingGame",
    "PointingGame",
    "AverageIncrease",
    "Coherency",
    "Deletion",
    "Insertion",
    "PerSampleMetric",
    "SaliencyScorer",
]
