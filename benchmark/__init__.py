"""Saliency benchmark: evaluate LOTS and the Grad-CAM family on ImageNet classifiers.

Run ``python -m benchmark --help``. This package holds the command line and the run
orchestration; the data, models, methods and metrics live in their own packages.
"""

__version__ = "0.1.0"


def evaluate(*args, **kwargs):
    """Run the ``test`` pipeline from Python; see :func:`benchmark.api.evaluate`."""
    from benchmark.api import evaluate as _evaluate

    return _evaluate(*args, **kwargs)
