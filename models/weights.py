"""Loading state dicts safely (``weights_only=True``, or safetensors), from a file or the
torch hub cache."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from benchmark.core.errors import BenchmarkError


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a state dict without running pickled code; a checkpoint dict is unwrapped. A
    ``.safetensors`` file (Hugging Face's format, which holds no code) is read with safetensors."""
    path = Path(path)
    if not path.is_file():
        raise BenchmarkError(f"weights file {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        except Exception as error:
            raise BenchmarkError(
                f"weights file {str(path)!r} is not a readable safetensors file ({type(error).__name__})"
            ) from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, ... for bad files
        raise BenchmarkError(
            f"weights file {str(path)!r} cannot be loaded safely ({type(error).__name__}); "
            "it must be a plain state dict saved with torch.save"
        ) from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise BenchmarkError(f"weights file {str(path)!r} does not hold a state dict")
    return state


def hub_checkpoint(url: str) -> Path:
    """Where torchvision caches the file of ``url`` (``$TORCH_HOME/hub/checkpoints/...``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def load_matching_state_dict(module: torch.nn.Module, state: dict, source: str) -> None:
    """Load a state dict strictly; a mismatch names the source and the first bad keys."""
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise BenchmarkError(
            f"weights {source!r} do not fit this model: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}; pass the weights of the right architecture"
        )
