"""CAM classes built on grad-cam's ``BaseCAM`` that grad-cam does not ship as needed here.

* :class:`SeededRandomCAM`: grad-cam's ``RandomCAM`` draws its channel weights from numpy's
  global RNG, so a sample's map depends on the batch it sits in and on the process. Here each
  sample's weights come from its own generator, seeded from (seed, sample id).
* :class:`SeededSmoothGradCAMPlusPlus`: SmoothGrad-CAM++ (Omeiza et al. 2019), Grad-CAM++ weights
  from gradients averaged over noisy copies of the input, the noise drawn per sample from
  generators seeded from (seed, sample id).

Both take the per-sample seeds through ``sample_seeds`` (one int per image of the next call,
see :func:`sample_seed`); without them the position in the batch stands in for the sample id.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.random_cam import RandomCAM

from benchmark.core.seeding import sample_seed
from benchmark.methods.cam.device import random_channel_weights


class _PerSampleSeeds:
    """Mixin: ``sample_seeds`` for the next call, with a positional fallback."""

    seed_stream = 0
    sample_seeds: Sequence[int] | None = None

    def seeds_for(self, batch_size: int) -> list[int]:
        seeds = self.sample_seeds
        if seeds is None:
            return [sample_seed(0, position, self.seed_stream) for position in range(batch_size)]
        if len(seeds) != batch_size:
            raise ValueError(f"{len(seeds)} sample seeds for a batch of {batch_size} images")
        return [int(s) for s in seeds]


class SeededRandomCAM(_PerSampleSeeds, RandomCAM):
    """grad-cam's RandomCAM with per-sample seeds: ``w_k ~ U(-1, 1)`` from the sample's own
    generator (numpy ``default_rng(sample_seed)``), ``M = ReLU(sum_k w_k A^k)``. The weights
    ignore the gradients, so no backward pass is run."""

    seed_stream = 1

    def __init__(self, model, target_layers, reshape_transform=None) -> None:
        super().__init__(model, target_layers, reshape_transform)
        self.uses_gradients = False

    def get_cam_weights(self, input_tensor, target_layer, targets, activations, grads) -> np.ndarray:
        batch, channels = activations.shape[:2]
        return random_channel_weights(self.seeds_for(batch), channels)


class SeededSmoothGradCAMPlusPlus(_PerSampleSeeds, BaseCAM):
    """SmoothGrad-CAM++ (Omeiza et al. 2019, arXiv:1908.01224) on grad-cam's ``BaseCAM``.

    With ``g_s = dy^c/dA`` at ``x + eps_s``, ``eps_s ~ N(0, noise_std^2)`` per pixel and
    channel (pixel space, not clamped), ``s = 1..n_samples``, and the averaged
    ``D1 = mean_s g_s``, ``D2 = mean_s g_s^2``, ``D3 = mean_s g_s^3``:
    ``alpha_ij^k = D2 / (2 D2 + sum_ab A_ab^k D3 + 1e-6)`` (0 where ``D1 = 0``),
    ``w_k = sum_ij alpha_ij^k ReLU(D1_ij^k)``, ``M = ReLU(sum_k w_k A^k)`` with the
    activations ``A`` of the clean image. ``noise_std = 0`` gives grad-cam's Grad-CAM++.
    Sample ``i``'s noise comes from ``torch.Generator().manual_seed(sample_seeds[i])`` on the
    CPU (then moved to the input's device), re-seeded on every call.
    """

    seed_stream = 2

    def __init__(
        self, model, target_layers, n_samples: int = 16, noise_std: float = 0.15, reshape_transform=None
    ) -> None:
        if len(target_layers) != 1:
            raise ValueError("SmoothGrad-CAM++ takes exactly one target layer")
        if n_samples < 1 or noise_std < 0:
            raise ValueError(f"need n_samples >= 1 and noise_std >= 0, got {n_samples}, {noise_std}")
        # The clean forward only records A(x); the gradients come from the noisy passes.
        super().__init__(model, target_layers, reshape_transform, uses_gradients=False)
        self.n_samples = n_samples
        self.noise_std = noise_std

    def noise(self, input_tensor: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
        """The next noise tensor, one draw per image from that image's generator."""
        shape = input_tensor.shape[1:]
        drawn = torch.stack([torch.randn(shape, generator=g, dtype=torch.float32) for g in generators])
        return (drawn * self.noise_std).to(device=input_tensor.device, dtype=input_tensor.dtype)

    def averaged_gradients(self, input_tensor: torch.Tensor, targets) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(D1, D2, D3)`` as float32 arrays shaped like the activations."""
        clean = input_tensor.detach()
        generators = [torch.Generator().manual_seed(s) for s in self.seeds_for(clean.shape[0])]
        # without noise every copy is the clean image: one pass gives the same averages
        passes = self.n_samples if self.noise_std > 0 else 1
        sums = None
        for _ in range(passes):
            noisy = clean + self.noise(clean, generators) if self.noise_std > 0 else clean.clone()
            outputs = self.activations_and_grads(noisy.requires_grad_(True))
            self.model.zero_grad()
            loss = sum(target(output) for target, output in zip(targets, outputs))
            loss.backward()
            grads = self.activations_and_grads.gradients[0].numpy().astype(np.float32)
            powers = (grads, grads**2, grads**2 * grads)  # float32, as grad-cam's Grad-CAM++
            if sums is None:
                sums = [p.astype(np.float64) for p in powers]
            else:
                for total, p in zip(sums, powers):
                    total += p
        self.outputs = None
        # float64 sums of the float32 powers, divided by the number of passes, cast back
        return tuple((total / passes).astype(np.float32) for total in sums)

    def get_cam_weights(self, input_tensor, target_layer, targets, activations, grads) -> np.ndarray:
        d1, d2, d3 = self.averaged_gradients(input_tensor, targets)
        spatial_axes = tuple(range(2, activations.ndim))
        sum_activations = np.sum(activations, axis=spatial_axes)
        sum_activations = sum_activations.reshape(sum_activations.shape + (1,) * len(spatial_axes))
        eps = 0.000001
        aij = d2 / (2 * d2 + sum_activations * d3 + eps)
        aij = np.where(d1 != 0, aij, 0)
        return np.sum(np.maximum(d1, 0) * aij, axis=spatial_axes)
