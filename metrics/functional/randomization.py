"""Cascading model parameter randomization (Adebayo et al. 2018): which layers are randomized
at which stage, their seeded random weights, and a context that puts them into the model in
place for one stage after another and always puts the trained weights back.

The model is changed in place, not copied: a method holds its hooks and layers on the model it
was built for (the CAM's target layer, LOTS's feature layer), so the randomized weights must be
in that very model while the method runs again. :func:`cascade` restores every value it
changed when it ends, also when the method fails, so nothing else ever sees them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from benchmark.core.errors import BenchmarkError
from benchmark.core.seeding import sample_seed

#: The seed stream of the re-initialized weights (mixed with the layer's forward position).
RANDOMIZATION_STREAM = 401


def check_steps(steps: int) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise BenchmarkError(f"--metrics.randomization_steps must be an integer >= 1 (e.g. 5), got {steps!r}")
    return steps


def _own_tensors(module: nn.Module) -> dict[str, Tensor]:
    """The parameters and buffers a module holds itself (not its children's)."""
    return {
        **{f"p:{n}": p for n, p in module.named_parameters(recurse=False)},
        **{f"b:{n}": b for n, b in module.named_buffers(recurse=False) if b is not None},
    }


def layers_in_forward_order(model: nn.Module, example: Tensor) -> tuple[list[tuple[str, nn.Module]], list[str]]:
    """``(layers, kept)``: the modules of ``model`` that hold parameters themselves and have
    ``reset_parameters()``, in the order one forward of ``example`` calls them first; ``kept``
    names the parameter-holding modules without ``reset_parameters()`` (never randomized, as in
    Quantus's MPRT). Modules the forward does not call are left out."""
    holders = [(name, m) for name, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))]
    called: list[nn.Module] = []
    handles = [
        m.register_forward_pre_hook(lambda m, _: called.append(m) if m not in called else None) for _, m in holders
    ]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    names = {id(m): name for name, m in holders}
    ordered = [(names[id(m)], m) for m in called]
    return (
        [(n, m) for n, m in ordered if hasattr(m, "reset_parameters")],
        [n for n, m in ordered if not hasattr(m, "reset_parameters")],
    )


def stage_groups(layers: list, steps: int) -> list[list]:
    """``layers`` (forward order) from the output towards the input, cut into ``steps``
    consecutive groups as equal as possible (the first groups one longer)."""
    if steps > len(layers):
        raise BenchmarkError(
            f"--metrics.randomization_steps {steps} exceeds the {len(layers)} layers with parameters of this "
            f"model; choose at most {len(layers)}"
        )
    reverse = list(reversed(layers))
    size, extra = divmod(len(reverse), steps)
    groups, start = [], 0
    for index in range(steps):
        end = start + size + (1 if index < extra else 0)
        groups.append(reverse[start:end])
        start = end
    return groups


def layer_seed(position: int, seed: int = 0) -> int:
    """The seed of the layer at ``position`` in forward order (fixed per layer, so every stage
    and every process draws the same weights for it)."""
    return sample_seed(seed, position, RANDOMIZATION_STREAM) % 2**63


@dataclass
class CascadingRandomization:
    """The stages of one model: ``groups[s]`` = the ``(name, module)`` layers stage s + 1 adds
    to the randomized ones, ``random[id(module)]`` = their re-initialized own tensors."""

    groups: list[list[tuple[str, nn.Module]]]
    kept: list[str]
    random: dict[int, dict[str, Tensor]] = field(default_factory=dict)

    @classmethod
    def build(cls, model: nn.Module, example: Tensor, steps: int, seed: int = 0) -> CascadingRandomization:
        """Find the layers (one forward of ``example``) and draw their random weights: each
        layer's ``reset_parameters()`` under its own seed (:func:`layer_seed`), the model's
        trained values put back straight after."""
        layers, kept = layers_in_forward_order(model, example)
        position = {id(m): i for i, (_, m) in enumerate(layers)}
        stages = cls(stage_groups(layers, steps), kept)
        devices = sorted({t.device.index or 0 for t in model.parameters() if t.is_cuda})
        for group in stages.groups:
            for _, module in group:
                with _trained_values_restored(module), torch.random.fork_rng(devices=devices):
                    torch.manual_seed(layer_seed(position[id(module)], seed))
                    module.reset_parameters()
                    stages.random[id(module)] = {k: t.detach().clone() for k, t in _own_tensors(module).items()}
        return stages

    def describe(self) -> dict:
        """The layers of each stage (first and last name, count) for results.json."""
        return {
            "stages": [
                {"layers": len(group), "from": group[0][0] or "(model)", "to": group[-1][0] or "(model)"}
                for group in self.groups
            ],
            "not_randomized": self.kept,
        }

    @contextmanager
    def cascade(self) -> Iterator[Iterator[int]]:
        """An iterator over the stages: at its ``s``-th step (1-based) the layers of groups
        1..s hold their random weights. On leaving the block every layer holds its trained
        values again (whether or not the iteration finished)."""
        modules = [m for group in self.groups for _, m in group]
        saved = {id(m): {k: t.detach().clone() for k, t in _own_tensors(m).items()} for m in modules}

        def stages() -> Iterator[int]:
            for number, group in enumerate(self.groups, start=1):
                for _, module in group:
                    _put(module, self.random[id(module)])
                yield number

        try:
            yield stages()
        finally:
            for module in modules:
                _put(module, saved[id(module)])


@contextmanager
def _trained_values_restored(module: nn.Module) -> Iterator[None]:
    """Every tensor of ``module`` and its children as it was when the block started."""
    tensors = {
        f"{name}|{k}": (m, k, t.detach().clone())
        for name, m in module.named_modules()
        for k, t in _own_tensors(m).items()
    }
    try:
        yield
    finally:
        for m, k, value in tensors.values():
            _put(m, {k: value})


def _put(module: nn.Module, values: dict[str, Tensor]) -> None:
    with torch.inference_mode(False), torch.no_grad():
        own = _own_tensors(module)
        for key, value in values.items():
            own[key].copy_(value)
