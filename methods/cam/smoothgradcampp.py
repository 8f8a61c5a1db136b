"""SmoothGrad-CAM++ (``smoothgradcampp``), and its device backend.

On the grad-cam backend it is :class:`.grad_cam_variants.SeededSmoothGradCAMPlusPlus` (grad-cam
does not ship it): one pass per noise sample with the backward to the input. On the device
(:func:`smooth_gradcampp`): with ``g_s = dy^c/dA`` at ``x + eps_s``, ``D_p = mean_s g_s^p``
(float64 sums of the float32 powers), ``alpha = D_2 / (2 D_2 + sum_ab A_ab D_3 + 1e-6)`` (0
where ``D_1 = 0``), ``w_k = sum_ij alpha ReLU(D_1)``, ``M = ReLU(sum_k w_k A^k(x))``. The noisy
copies of all images of the batch (noise drawn per image from its own generator, in the same
order as the grad-cam path) go through the model ``chunk`` at a time, the backward stopping at
the layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from benchmark.core.seeding import sample_seed
from benchmark.core.tensors import full_precision
from benchmark.methods.cam.base import CAM
from benchmark.methods.cam.config import SmoothGradCAMppConfig
from benchmark.methods.cam.device import Reshape, finish_cams, identity, layer_activations, weighted
from benchmark.methods.cam.grad_cam_variants import SeededSmoothGradCAMPlusPlus


def _noise(images: Tensor, seeds: Sequence[int], samples: int, std: float) -> Tensor:
    """``[B, samples, 3, H, W]``: image ``i``'s ``samples`` draws from ``Generator(seeds[i])``."""
    shape = images.shape[1:]
    drawn = []
    for seed in seeds:
        generator = torch.Generator().manual_seed(int(seed))
        drawn.append(
            torch.stack([torch.randn(shape, generator=generator, dtype=torch.float32) for _ in range(samples)])
        )
    return (torch.stack(drawn) * std).to(device=images.device, dtype=images.dtype)


def smooth_gradcampp(
    classifier: nn.Module,
    layer: nn.Module,
    images: Tensor,
    classes: Tensor,
    seeds: Sequence[int],
    n_samples: int,
    noise_std: float,
    chunk: int,
    reshape_transform: Reshape = None,
) -> Tensor:
    """SmoothGrad-CAM++ maps ``[B, H, W]``; ``seeds``: one per image (its noise generator)."""
    with full_precision(images):
        reshape = reshape_transform if reshape_transform is not None else identity
        batch = images.shape[0]
        clean = reshape(layer_activations(classifier, layer, images, None)[0]).float()
        # without noise every copy is the clean image: one pass gives the same averages
        passes = n_samples if noise_std > 0 else 1
        if noise_std > 0:
            noisy = (images[:, None] + _noise(images, seeds, passes, float(noise_std))).flatten(0, 1)
        else:
            noisy = images
        owner = torch.arange(batch, device=images.device).repeat_interleave(passes)
        sums = [torch.zeros(clean.shape, dtype=torch.float64, device=images.device) for _ in range(3)]
        for start in range(0, noisy.shape[0], chunk):
            who = owner[start : start + chunk]
            _, gradients = layer_activations(classifier, layer, noisy[start : start + chunk], classes[who])
            g = reshape(gradients).float()
            g2 = g * g
            for total, power in zip(sums, (g, g2, g2 * g)):  # float32 powers, as grad-cam's Grad-CAM++
                total.index_add_(0, who, power.double())
        d1, d2, d3 = ((total / passes).float() for total in sums)
        alpha = d2 / (2 * d2 + clean.sum(dim=(2, 3), keepdim=True) * d3 + 1e-6)
        alpha = torch.where(d1 != 0, alpha, torch.zeros_like(alpha))
        weights = (d1.clamp(min=0) * alpha).sum(dim=(2, 3))
        return finish_cams(weighted(weights, clean), images.shape[-2:])


class SmoothGradCAMPlusPlus(CAM):
    """SmoothGrad-CAM++: Grad-CAM++ with gradients averaged over noisy copies of the image.

    With ``g_s = dy^c/dA`` at ``x + eps_s``, ``eps_s ~ N(0, noise_std^2)`` in pixel space,
    ``s = 1..n_samples``: ``D_p = mean_s g_s^p``, ``alpha = D_2 / (2 D_2 + sum_ab A_ab D_3)``,
    ``w_k = sum_ij alpha_ij^k ReLU(D_1)_ij^k``, ``M = ReLU(sum_k w_k A^k(x))``. The noise is
    drawn per sample from a generator seeded from (seed, sample id).
    Omeiza et al. 2019, "Smooth Grad-CAM++: An Enhanced Inference Level Visualization
    Technique for Deep Convolutional Neural Network Models" (arXiv:1908.01224).
    """

    method_name = "smoothgradcampp"
    config_class = SmoothGradCAMppConfig
    has_device_backend = True

    def make_grad_cam(self, config: SmoothGradCAMppConfig) -> Any:
        return SeededSmoothGradCAMPlusPlus(
            self.classifier,
            list(self._target_layers),
            n_samples=config.n_samples,
            noise_std=float(config.noise_std),
            reshape_transform=self.reshape_transform,
        )

    def device_maps(self, images: Tensor, classes: Tensor) -> Tensor:
        ids = self.sample_ids_for(images.shape[0])
        chunk = self.chunk_for(images.device)
        seeds = [sample_seed(self.seed, i, SeededSmoothGradCAMPlusPlus.seed_stream) for i in ids]
        return smooth_gradcampp(
            self.classifier,
            self._target_layers[0],
            images,
            classes,
            seeds,
            self.config.n_samples,
            self.config.noise_std,
            chunk,
            self.reshape_transform,
        )
