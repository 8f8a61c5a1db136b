"""The golden runs: small real runs whose per-image numbers are pinned in this folder.

Each run is a ``python -m benchmark`` command line; ``{sample}`` stands for the 200-image
ImageNet sample folder the tests use and ``{golden}`` for this folder. ``tests/test_golden.py``
runs every command again and compares per image with ``<name>.csv``:

- ``float64`` runs to :data:`FLOAT64_TOLERANCE` (1e-9 points) in every column;
- ``float32`` runs to the per-column bounds of :data:`FLOAT32_BOUNDS`, chosen from the spread
  measured across batch sizes 1/4 and torch thread counts 1/2 (``measured.json``);
- float32 LOTS has no file of its own: its twin run in float64 is pinned, and the float32 run is
  compared with that twin's file to :data:`LOTS_FLOAT32_BOUNDS` (float32 LOTS amplifies rounding,
  so its exact numbers depend on the CPU's kernels).

The golden files change only in a commit that says why the numbers moved
(``python -m tests.golden.regenerate`` rewrites them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

GOLDEN_DIR = Path(__file__).resolve().parent

#: Settings every golden run shares: a few curve steps, no pictures, no logger.
COMMON = ["--metrics.n_steps", "8", "--logger", "none", "--overlay-images", "0"]
#: The batch size and thread count the golden files were made with (the bounds cover 1/4 and 1/2).
EXECUTION = ["--batch-size", "4", "--threads", "2"]
#: Four of the built-in photos (no labels, no boxes).
PHOTOS = ["--limit", "4", "--metrics.extra", "complexity,adcc"]
#: Four ImageNet sample images with boxes made for the test (one image has none).
SAMPLE = [
    "--data",
    "{sample}",
    "--limit",
    "4",
    "--boxes",
    "{golden}/boxes.csv",
    "--metrics.extra",
    "complexity,adcc,pointing_game,energy_pointing_game",
]
LOTS = ["--method", "lots", "--method.iterations", "5"]
FLOAT64 = ["--precision", "64"]

#: Columns compared (when the run has them); ``ms_per_map`` is a timing and never compared.
EXACT_COLUMNS = ("sample_id", "file", "label", "pred_class", "map_problem", "iterations")
FLOAT_COLUMNS = (
    "pred_prob",
    "avg_drop",
    "avg_increase",
    "coherency",
    "insertion",
    "deletion",
    "complexity",
    "adcc",
    "pointing_game",
    "energy_pointing_game",
    "final_distance",
)

#: float64 runs: every float column, in percentage points (or probability for pred_prob).
FLOAT64_TOLERANCE = 1e-9


@dataclass(frozen=True)
class GoldenRun:
    """One pinned run: ``kind`` is ``float64``, ``float32`` or ``twin`` (float32 LOTS, compared
    with the file of the float64 run named by ``twin``)."""

    name: str
    args: list[str]
    kind: str
    twin: str | None = None

    def command(self, sample: Path, execution: list[str] = EXECUTION) -> list[str]:
        """The ``python -m benchmark`` arguments, placeholders filled in."""
        filled = [a.replace("{sample}", str(sample)).replace("{golden}", str(GOLDEN_DIR)) for a in self.args]
        return ["test", *filled, *COMMON, *execution]

    @property
    def file(self) -> Path:
        return GOLDEN_DIR / f"{self.twin or self.name}.csv"


RUNS: tuple[GoldenRun, ...] = (
    GoldenRun("lots_float64_photos", [*LOTS, *PHOTOS, *FLOAT64], "float64"),
    GoldenRun("lots_float64_sample", [*LOTS, *SAMPLE, *FLOAT64], "float64"),
    GoldenRun("lots_float32_sample", [*LOTS, *SAMPLE], "twin", twin="lots_float64_sample"),
    GoldenRun("gradcam_float64_sample", ["--method", "gradcam", *SAMPLE, *FLOAT64], "float64"),
    GoldenRun("gradcam_photos", ["--method", "gradcam", *PHOTOS], "float32"),
    GoldenRun("gradcam_sample", ["--method", "gradcam", *SAMPLE], "float32"),
    GoldenRun("gradcampp_sample", ["--method", "gradcampp", *SAMPLE], "float32"),
    GoldenRun("layercam_sample", ["--method", "layercam", *SAMPLE], "float32"),
    # A CAM through the grad-cam package itself (numpy, OpenCV). Not XGrad-CAM: at conv_head some
    # channels' activations sum to nearly zero, the denominator of its weights, and its Coherency
    # moved by 2.5 points between 1 and 2 threads.
    GoldenRun("gradcamelementwise_sample", ["--method", "gradcamelementwise", *SAMPLE], "float32"),
    GoldenRun("smoothgradcampp_sample", ["--method", "smoothgradcampp", "--method.n_samples", "4", *SAMPLE], "float32"),
    GoldenRun("random_sample", ["--method", "random", *SAMPLE], "float32"),
)

#: float32 CAM runs: the largest difference measured across batch sizes 1/4 and 1/2 threads
#: (measured.json, 2026-12-01) was pred_prob 6.9e-7, Average Drop 8.3e-4, Coherency 1.2e-3,
#: Insertion 1.8e-3, Deletion 1.5e-2 (Grad-CAM++: near-ties in the pixel order), Complexity
#: 9.6e-4, ADCC 1.0e-3, energy pointing game 7.5e-4 points; Average Increase and the pointing
#: game never changed. The bounds are about five times that, so that another CPU of the same
#: kind stays inside while a real change (a moved formula, another layer) does not.
FLOAT32_BOUNDS = {
    "pred_prob": 5e-6,
    "avg_drop": 5e-3,
    "avg_increase": 0.0,
    "coherency": 1e-2,
    "insertion": 1e-2,
    "deletion": 0.1,
    "complexity": 5e-3,
    "adcc": 5e-3,
    "pointing_game": 0.0,
    "energy_pointing_game": 5e-3,
    "final_distance": 1e-4,
}
#: float32 LOTS against its float64 twin: measured (batch 1/4 x 1/2 threads) pred_prob 4.5e-7,
#: Average Drop 0.55, Coherency 3.7, Insertion 0.38, Deletion 1.6, Complexity 0.90, ADCC 0.50,
#: energy pointing game 0.10 points, final distance 0.22; Average Increase and the pointing game
#: equal. Bounds: about three times that (float32 LOTS amplifies rounding; this catches a broken
#: float32 path, not a last digit).
LOTS_FLOAT32_BOUNDS = {
    "pred_prob": 5e-6,
    "avg_drop": 2.0,
    "avg_increase": 0.0,
    "coherency": 10.0,
    "insertion": 1.5,
    "deletion": 5.0,
    "complexity": 3.0,
    "adcc": 2.0,
    "pointing_game": 0.0,
    "energy_pointing_game": 0.5,
    "final_distance": 0.7,
}

#: The execution variants the float32 bounds were measured over.
VARIANTS = {
    f"batch {batch}, {threads} thread(s)": ["--batch-size", str(batch), "--threads", str(threads)]
    for batch in (1, 4)
    for threads in (1, 2)
}


def by_name(name: str) -> GoldenRun:
    return next(run for run in RUNS if run.name == name)
