"""The preset of the built-in default run (no ``--data``, no ``--config``).

The thesis settings (500 LOTS iterations per map, twice per image for Coherency, 224-step
curves) take longer than ten minutes for the built-in photos on a 2-core CPU, so the
default run uses fewer LOTS iterations and says so; ``--config configs/thesis.yaml`` (or
any ``--method.iterations``) restores them.
"""

from __future__ import annotations

from benchmark.config import Overrides

QUICK_PRESET = {"iterations": 100}


def preset_layer() -> Overrides:
    return Overrides(source="preset quick (built-in photos)", method=dict(QUICK_PRESET))
