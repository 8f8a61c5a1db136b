"""Saliency metrics: functional maths in ``benchmark.metrics.functional``, torchmetrics classes here."""

from benchmark.metrics.average_drop import AverageDrop
from benchmark.metrics.average_increase import AverageIncrease
from benchmark.metrics.catalog import metric_class, metric_names, register_metric
from benchmark.metrics.coherency import Coherency
from benchmark.metrics.complexity import ADCC, Complexity
from benchmark.metrics.inputs import INPUTS
from benchmark.metrics.insertion_deletion import Deletion, Insertion
from benchmark.metrics.options import MetricOptions
from benchmark.metrics.per_sample import PerSampleMetric
from benchmark.metrics.pointing_game import EnergyPointingGame, PointingGame
from benchmark.metrics.scorer import SaliencyScorer
from benchmark.metrics.selection import HIGHER_IS_BETTER, METRIC_KEYS, extra_metric_keys

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
    "MetricOptions",
    "PerSampleMetric",
    "SaliencyScorer",
    "extra_metric_keys",
    "metric_class",
    "metric_names",
    "register_metric",
]
