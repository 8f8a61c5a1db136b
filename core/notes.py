"""User-facing notes: one ``note:`` line on stderr, printed by the first process only."""

from __future__ import annotations

import sys

from pytorch_lightning.utilities import rank_zero_only


def note(message: str) -> None:
    """One ``note:`` line on stderr, from the first process only (DDP ranks build models too)."""
    if rank_zero_only.rank != 0:
        return
    print(f"note: {message}", file=sys.stderr, flush=True)
