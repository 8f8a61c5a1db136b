"""Small helpers for running under torch.distributed (DDP) or in one process."""

from __future__ import annotations

from typing import Any

import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` in one process). All ranks must call it."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def gather_objects_to_rank_zero(obj: Any) -> list[Any]:
    """Every rank's ``obj`` in rank order on rank 0, ``[]`` on the others (``[obj]`` in one
    process): for large objects only rank 0 needs (saved maps). All ranks must call it."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] | None = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered if gathered is not None else []
