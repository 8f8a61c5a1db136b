"""Per-sample seeds: randomness that depends on the sample, never on its batch or process."""

from __future__ import annotations

import numpy as np
import torch


def sample_seed(seed: int, sample_id: int, stream: int) -> int:
    """A 64-bit seed for one sample, mixed from the run's seed, the sample id and a stream
    number (so different uses of randomness never share numbers). Independent of the batch
    and the process that handles the sample."""
    entropy = [int(seed) % 2**64, int(sample_id) % 2**64, int(stream) % 2**64]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0])


def sample_generator(sample_id: int, stream: int, seed: int = 0) -> torch.Generator:
    """A CPU generator seeded by :func:`sample_seed`."""
    return torch.Generator().manual_seed(sample_seed(seed, sample_id, stream))
