"""FullGrad (``fullgrad``): no target layer, every bias layer; its device backend is
:mod:`.fullgrad_device`."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from benchmark.methods.base import MethodConfig
from benchmark.methods.cam.base import CAM
from benchmark.methods.cam.config import FullGradConfig
from benchmark.methods.cam.fullgrad_device import CompiledTerm, bias_layers, fullgrad
from benchmark.methods.cam.grad_cam_backend import installed_grad_cam_class
from benchmark.methods.cam.target_layer import backbone
from benchmark.models.execution import execution_of


def grad_cam_bias_layers(net: nn.Module) -> list[nn.Module]:
    """The layers grad-cam's FullGrad reads: of type exactly ``Conv2d`` or ``BatchNorm2d``, with a bias."""
    return [m for m in net.modules() if type(m) in (nn.Conv2d, nn.BatchNorm2d) and m.bias is not None]


class FullGrad(CAM):
    """FullGrad: input-gradient and bias-gradient maps of every layer, summed (no target layer).

    ``M = psi(|dy^c/dx * x|) + sum_l sum_c psi(|b_l * dy^c/dz_l|)`` over every Conv2d and
    BatchNorm2d with a bias ``b_l`` and output ``z_l`` (psi = per-channel min-max scaling and
    resizing to the input; see :mod:`methods.cam.fullgrad_device`, the default backend).
    Srinivas & Fleuret 2019, "Full-Gradient Representation for Neural Network Visualization"
    (NeurIPS).
    """

    method_name = "fullgrad"
    grad_cam_class = "FullGrad"
    config_class = FullGradConfig
    reads_target_layer = False
    has_device_backend = True

    def __init__(self, classifier: nn.Module, config: MethodConfig | None = None, **kwargs) -> None:
        super().__init__(classifier, config, **kwargs)
        #: the layer terms through one compiled graph, under the ``compiled`` execution
        self._compiled_term: CompiledTerm | None = None

    def make_grad_cam(self, config: MethodConfig) -> Any:
        return installed_grad_cam_class(self.grad_cam_class)(model=self.classifier, target_layers=[])

    def describe(self) -> dict[str, Any]:
        if self.uses_device_backend():
            layers = len(bias_layers(backbone(self.classifier)))
            return {
                "target_layer": None,
                "backend": "device",
                "layers": f"the input gradient and the bias of every Conv2d/BatchNorm2d ({layers} layers)",
            }
        layers = len(grad_cam_bias_layers(backbone(self.classifier)))
        return {
            "target_layer": None,
            "backend": "grad-cam",
            "layers": f"the input gradient and the bias of the layers of type exactly Conv2d/BatchNorm2d "
            f"({layers} layers)",
        }

    def device_maps(self, images: Tensor, classes: Tensor) -> Tensor:
        return fullgrad(self.classifier, backbone(self.classifier), images, classes, self._fullgrad_term())

    def _fullgrad_term(self) -> CompiledTerm | None:
        """The compiled layer term under the ``compiled`` execution (made on first use)."""
        if self._compiled_term is None and execution_of(self.classifier) == "compiled":
            self._compiled_term = CompiledTerm()
        return self._compiled_term

    def prepare(self, images: Tensor) -> None:
        """On the device: the layer term built and compiled before the first map is timed (the
        C++ function's first build in an environment takes far longer than a map)."""
        if self.uses_device_backend() and self._fullgrad_term() is not None:
            self._compiled_term.prepare(images.device)

    def execution_facts(self) -> dict[str, Any]:
        facts = super().execution_facts()
        if self._compiled_term is not None:
            facts.update(self._compiled_term.describe())
        return facts
