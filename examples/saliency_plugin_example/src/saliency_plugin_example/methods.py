from dataclasses import dataclass, field

import torch

from benchmark.methods import Explainer, MethodConfig


@dataclass
class CentreGaussianConfig(MethodConfig):
    sigma: float = field(default=0.25, metadata={"help": "std of the Gaussian, as a fraction of the image side"})

    def validate(self) -> None:
        if not self.sigma > 0:
            raise ValueError(f"--method.sigma must be > 0, got {self.sigma}")


class CentreGaussian(Explainer):
    """Centre Gaussian: M(y, x) = exp(-((y - 1/2)^2 + (x - 1/2)^2) / (2 sigma^2)), min-max normalized
    (y, x in [0, 1]); the centre-bias baseline of Judd et al. 2009, "Learning to predict where humans look"."""

    config_class = CentreGaussianConfig

    def explain(self, images: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = images.shape
        y = torch.linspace(0, 1, height, dtype=images.dtype, device=images.device)[:, None]
        x = torch.linspace(0, 1, width, dtype=images.dtype, device=images.device)[None, :]
        gaussian = torch.exp(-((y - 0.5) ** 2 + (x - 0.5) ** 2) / (2 * self.config.sigma**2))
        gaussian = (gaussian - gaussian.min()) / (gaussian.max() - gaussian.min())
        return gaussian.expand(batch, height, width).clone()
