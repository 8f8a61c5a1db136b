"""Score-CAM and SmoothGrad-CAM++ on the images' device, their perturbed copies going through
the model in the benchmark's chunks.

grad-cam's Score-CAM scores the masked copies with one ``.item()`` per copy, with its hooks
recording every copy's activations; its SmoothGrad-CAM++ here (``methods.cam_variants``) runs
one pass per noise sample with the backward to the input. Here:

* **Score-CAM** (Wang et al. 2020, CVPR Workshops): with ``A`` the layer's activations of
  ``x``, ``H^k = minmax(upsample(A^k))`` (bilinear, corners aligned, as grad-cam's
  ``UpsamplingBilinear2d``; ``minmax`` with ``+1e-8``), ``s_k = y^c(x * H^k)`` (the logit),
  ``w = softmax_k(s)``, ``M = ReLU(sum_k w_k A^k)``. The ``C`` masked copies of each image go
  through ``forward`` (the run's forward-only pass, compiled under ``--execution compiled``)
  ``chunk`` at a time, scored on the device.
* **SmoothGrad-CAM++** (Omeiza et al. 2019, arXiv:1908.01224): with ``g_s = dy^c/dA`` at
  ``x + eps_s``, ``D_p = mean_s g_s^p`` (float64 sums of the float32 powers),
  ``alpha = D_2 / (2 D_2 + sum_ab A_ab D_3 + 1e-6)`` (0 where ``D_1 = 0``),
  ``w_k = sum_ij alpha ReLU(D_1)``, ``M = ReLU(sum_k w_k A^k(x))``. The noisy copies of all
  images of the batch (noise drawn per image from its own generator, in the same order as the
  grad-cam path) go through the model ``chunk`` at a time, the backward stopping at the layer.

Both finish as every CAM here (ReLU, per-image min-max, bilinear resize, ReLU, min-max;
:func:`methods.cam_device.finish_cams`). ``tests/test_cam_device.py`` checks them against the
grad-cam path.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from methods.cam_device import _weighted, finish_cams, layer_activations
from metrics.functional.image import full_precision

Reshape = Callable[[Tensor], Tensor] | None


def _identity(tensor: Tensor) -> Tensor:
    return tensor


def score_cam(classifier: nn.Module, forward: Callable[[Tensor], Tensor], layer: nn.Module, images: Tensor,
              classes: Tensor, chunk: int, reshape_transform: Reshape = None) -> Tensor:
    """Score-CAM maps ``[B, H, W]``; ``forward(images) -> logits`` scores the masked copies."""
    with full_precision(images):
        reshape = reshape_transform or _identity
        activations = reshape(layer_activations(classifier, layer, images, None)[0]).float()
        batch, channels = activations.shape[:2]
        scores = torch.empty(batch, channels, dtype=torch.float32, device=images.device)
        with torch.no_grad():
            for i in range(batch):
                for start in range(0, channels, chunk):
                    masks = F.interpolate(activations[i:i + 1, start:start + chunk], size=images.shape[-2:],
                                          mode="bilinear", align_corners=True)[0]
                    flat = masks.flatten(1)
                    low = flat.amin(dim=1)[:, None, None]
                    high = flat.amax(dim=1)[:, None, None]
                    masks = (masks - low) / (high - low + 1e-8)
                    logits = forward(images[i:i + 1] * masks[:, None].to(images.dtype))
                    scores[i, start:start + masks.shape[0]] = logits[:, int(classes[i])].float()
        return finish_cams(_weighted(scores.softmax(dim=-1), activations), images.shape[-2:])


def _noise(images: Tensor, seeds: Sequence[int], samples: int, std: float) -> Tensor:
    """``[B, samples, 3, H, W]``: image ``i``'s ``samples`` draws from ``Generator(seeds[i])``."""
    shape = images.shape[1:]
    drawn = []
    for seed in seeds:
        generator = torch.Generator().manual_seed(int(seed))
        drawn.append(torch.stack([torch.randn(shape, generator=generator, dtype=torch.float32)
                                  for _ in range(samples)]))
    return (torch.stack(drawn) * std).to(device=images.device, dtype=images.dtype)


def smooth_gradcampp(classifier: nn.Module, layer: nn.Module, images: Tensor, classes: Tensor,
                     seeds: Sequence[int], n_samples: int, noise_std: float, chunk: int,
                     reshape_transform: Reshape = None) -> Tensor:
    """SmoothGrad-CAM++ maps ``[B, H, W]``; ``seeds``: one per image (its noise generator)."""
    with full_precision(images):
        reshape = reshape_transform or _identity
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
            who = owner[start:start + chunk]
            _, gradients = layer_activations(classifier, layer, noisy[start:start + chunk], classes[who])
            g = reshape(gradients).float()
            g2 = g * g
            for total, power in zip(sums, (g, g2, g2 * g)):  # float32 powers, as grad-cam's Grad-CAM++
                total.index_add_(0, who, power.double())
        d1, d2, d3 = ((total / passes).float() for total in sums)
        alpha = d2 / (2 * d2 + clean.sum(dim=(2, 3), keepdim=True) * d3 + 1e-6)
        alpha = torch.where(d1 != 0, alpha, torch.zeros_like(alpha))
        weights = (d1.clamp(min=0) * alpha).sum(dim=(2, 3))
        return finish_cams(_weighted(weights, clean), images.shape[-2:])
