"""Random-CAM (``random``): a sanity-check baseline."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from benchmark.core.seeding import sample_seed
from benchmark.methods.base import MethodConfig
from benchmark.methods.cam.base import CAM
from benchmark.methods.cam.device import forward_only_cam, random_channel_weights, weighted
from benchmark.methods.cam.grad_cam_variants import SeededRandomCAM


class RandomCAM(CAM):
    """Random-CAM: target-layer activations under random channel weights (a baseline).

    ``M = ReLU(sum_k w_k A^k)``, ``w_k ~ U(-1, 1)`` drawn per sample from a generator seeded
    from (seed, sample id): the same map for a sample in any batch and on any process. The
    class is ignored. grad-cam's RandomCAM; a sanity-check baseline in the sense of
    Adebayo et al. 2018, "Sanity Checks for Saliency Maps" (NeurIPS).
    """

    method_name = "random"
    grad_cam_class = "RandomCAM"
    uses_class = False
    has_device_backend = True
    forward_only_activations = True

    def make_grad_cam(self, config: MethodConfig) -> Any:
        # grad-cam's RandomCAM draws from numpy's global generator: the seeded variant per sample
        return SeededRandomCAM(self.classifier, list(self._target_layers), self.reshape_transform)

    def device_maps(self, images: Tensor, classes: Tensor) -> Tensor:
        seeds = [sample_seed(self.seed, i, SeededRandomCAM.seed_stream) for i in self.sample_ids_for(images.shape[0])]

        def randomly_weighted(activations: Tensor) -> Tensor:
            weights = torch.from_numpy(random_channel_weights(seeds, activations.shape[1]))
            # float64 as in grad-cam (numpy promotes the float32 activations to the weights' dtype)
            return weighted(weights.to(device=activations.device), activations.double())

        return forward_only_cam(
            self.classifier,
            self._target_layers[0],
            images,
            randomly_weighted,
            self.reshape_transform,
            self.forward_with_layer,
        )
