"""Saliency metrics: functional maths in ``metrics.functional``, torchmetrics classes here."""

from metrics.average_drop import AverageDrop
from metrics.average_increase import AverageIncrease
from metrics.coherency import Coherency
from metrics.complexity import ADCC, Complexity
from metrics.insertion_deletion import Deletion, Insertion
from metrics.per_sample import PerSampleMetric
from metrics.pointing_game import EnergyPointingGame, PointingGame
from metrics.catalog import metric_class, metric_names, register_metric
from metrics.scorer import HIGHER_IS_BETTER, INPUTS, METRIC_KEYS, SaliencyScorer, extra_metric_keys

__all__ = [
    "ADCC",
    "HIGHER_IS_BETTER",
    "INPUTS",
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
    "extra_metric_keys",
    "metric_class",
    "metric_names",
    "register_metric",
]
