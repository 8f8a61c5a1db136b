"""The sampler that gives every image to exactly one process under DDP.

Lightning's default distributed sampler pads the data so ranks get equal batches, which
evaluates some images twice and biases means; ``UnrepeatedDistributedSampler`` does not.
"""

from __future__ import annotations

from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import Dataset

from benchmark.core.errors import BenchmarkError


def make_sampler(dataset: Dataset, world_size: int, rank: int) -> UnrepeatedDistributedSampler | None:
    """``None`` for one process, else an unshuffled sampler giving rank ``r`` items r, r+W, ...

    Every rank must get at least one image, so fewer images than processes is a
    :class:`BenchmarkError`.
    """
    if world_size <= 1:
        return None
    if len(dataset) < world_size:
        raise BenchmarkError(f"only {len(dataset)} images for {world_size} processes; use more images or fewer devices")
    return UnrepeatedDistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=False)
