"""Deep features of a classifier: the logits, the penultimate (pooled) features, or the
output of any named module. Used by LOTS as ``F_s = features(x)``."""

from __future__ import annotations

from torch import Tensor, nn

from benchmark.models.registry import NormalizedClassifier, get_model_spec, resolve_module


class _StopForward(Exception):
    """Raised by a hook once the wanted activation exists, to skip the rest of the net."""


class FeatureExtractor(nn.Module):
    """``features(images in [0,1]) -> Tensor[B, D]`` (flattened per image).

    ``layer="logits"``: the model's output (thesis 4.2, the default of LOTS).
    ``layer="penultimate"``: the input of the final classifier layer, i.e. the globally
    pooled features. Any other value: the output of that module of the backbone; the
    forward stops there, so deep layers cost only the part of the net they need.
    """

    def __init__(self, classifier: nn.Module, layer: str = "logits", classifier_layer: str | None = None):
        super().__init__()
        self.classifier = classifier
        self.layer = layer
        if layer == "logits":
            self._module, self._use_input = None, False
        elif layer == "penultimate":
            if classifier_layer is None:
                classifier_layer = self._classifier_layer()
            self._module, self._use_input = self._submodule(classifier_layer), True
        else:
            self._module, self._use_input = self._submodule(layer), False

    def _classifier_layer(self) -> str:
        """The registered classifier layer of the model, else its last ``Linear``."""
        from benchmark.core.errors import BenchmarkError
        from benchmark.models.layers import last_module_of

        name = getattr(self.classifier, "name", "")
        try:
            registered = get_model_spec(name).classifier_layer if isinstance(name, str) and name else None
        except BenchmarkError:  # a model built outside the registry
            registered = None
        if registered is not None:
            return registered
        net = self.classifier.net if isinstance(self.classifier, NormalizedClassifier) else self.classifier
        path = last_module_of(net, nn.Linear)
        if path is None:
            raise BenchmarkError(
                f"{name or 'the model'} has no Linear classifier layer to take the penultimate features from: "
                "pass --method.features LAYER (a module path)"
            )
        return path

    def _submodule(self, path: str) -> nn.Module:
        if isinstance(self.classifier, NormalizedClassifier):
            return self.classifier.submodule(path)
        return resolve_module(self.classifier, path)

    def forward(self, images: Tensor) -> Tensor:
        if self._module is None:
            return self.classifier(images).flatten(1)
        captured: list[Tensor] = []

        def hook(module, args, output=None):
            captured.append(args[0] if self._use_input else output)
            raise _StopForward

        handle = (
            self._module.register_forward_pre_hook(hook)
            if self._use_input
            else self._module.register_forward_hook(hook)
        )
        try:
            self.classifier(images)
        except _StopForward:
            pass
        finally:
            handle.remove()
        if not captured:
            raise RuntimeError(f"layer {self.layer!r} was not reached by the forward pass")
        return captured[0].flatten(1)
