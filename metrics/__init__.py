"""Saliency metrics: functional maths in ``metrics.functional``, torchmetrics classes here."""

from metrics.average_drop import AverageDrop
from metrics.average_increase import AverageIncrease
from metrics.coherency import Coherency
from metrics.insertion_deletion import Deletion, Insertion
from metrics.per_sample import PerSampleMetric
from metrics.scorer import HIGHER_IS_BETTER, METRIC_KEYS, SaliencyScorer

__all__ = [
    "HIGHER_IS_BETTER",
    "METRIC_KEYS",
    "AverageDrop",
    "AverageIncrease",
    "Coherency",
    "Deletion",
    "Insertion",
    "PerSampleMetric",
    "SaliencyScorer",
]
