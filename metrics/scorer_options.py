"""The scorer's own options (``--metrics.<name>``): the Insertion/Deletion curves, the chunks
of forward-only passes, the extra metrics and the bootstrap of the means.

The curves are one input shared by Insertion and Deletion (computed once per batch), and the
chunk size serves every forward-only pass the scorer makes in chunks (the curves, ROAD's
``class_probability``), so these options belong to the scorer rather than to one metric.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmark.core.errors import BenchmarkError
from benchmark.metrics.functional.bootstrap import DEFAULT_RESAMPLES
from benchmark.metrics.functional.insertion_deletion import check_blur, check_chunk_size, check_n_steps, check_score
from benchmark.metrics.options import MetricOptions, checked
from benchmark.metrics.selection import check_extra

#: Images per forward along the Insertion/Deletion curves when ``--metrics.chunk_size`` is not
#: given. CPU: per-image forward time grows with the batch beyond about 16 (perf/README.md);
#: CUDA: large batches are what a GPU is fast at, bounded to keep memory modest.
DEFAULT_CHUNK_SIZE = {"cpu": 16, "cuda": 128}


@dataclass
class ScorerOptions(MetricOptions):
    """The options of :class:`~benchmark.metrics.scorer.SaliencyScorer` itself (every metric's own
    options are declared by the metric, ``options_class``)."""

    n_steps: int | None = field(
        default=None,
        metadata={"help": "Insertion/Deletion: steps along the curves; none: the image side (224 for 224x224)"},
    )
    score: str = field(
        default="original_class",
        metadata={
            "help": "Insertion/Deletion: the probability along the curves: original_class (of the top-1 class c) "
            "or max_class (the highest, the thesis's variant)"
        },
    )
    chunk_size: int | None = field(
        default=None,
        metadata={
            "help": "images per classifier forward along the curves and in ROAD; none: "
            f"{DEFAULT_CHUNK_SIZE['cpu']} on a CPU, {DEFAULT_CHUNK_SIZE['cuda']} on a GPU (perf/README.md)"
        },
    )
    blur_kernel: int = field(
        default=11, metadata={"help": "Insertion/Deletion: odd kernel size of the Gaussian blur of the baseline"}
    )
    blur_sigma: float = field(
        default=5.0, metadata={"help": "Insertion/Deletion: sigma of that blur (0: OpenCV's rule for the kernel)"}
    )
    extra: list[str] | None = field(
        default=None,
        metadata={
            "help": "metrics beyond the thesis's five, comma-separated: names listed below (adcc brings complexity; "
            "the pointing games need --boxes) or package.module:Class"
        },
    )
    bootstrap: int = field(
        default=DEFAULT_RESAMPLES, metadata={"help": "resamples of the 95% bootstrap interval of each metric's mean"}
    )

    def validate(self) -> None:
        checked("score", check_score, self.score)
        if self.chunk_size is not None:
            checked("chunk_size", check_chunk_size, self.chunk_size)
        checked("n_steps", check_n_steps, self.n_steps)
        checked("blur_kernel/blur_sigma", check_blur, self.blur_kernel, self.blur_sigma)
        check_extra(self.extra)
        bootstrap = self.bootstrap
        if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 1:
            raise BenchmarkError(f"--metrics.bootstrap must be a number of resamples >= 1, got {bootstrap!r}")

    @property
    def curve_options(self) -> dict[str, object]:
        """The keyword arguments of ``insertion_deletion_curves`` besides the chunk size."""
        return {
            "n_steps": self.n_steps,
            "score": self.score,
            "blur_kernel": self.blur_kernel,
            "blur_sigma": self.blur_sigma,
        }
