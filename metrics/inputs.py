"""The inputs a metric may need (``needs``), computed at most once per batch and shared by
every metric that asked: one forward of ``x * M`` for every metric that uses its
probabilities, one call of the method on ``x * M``, one set of Insertion/Deletion curves."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any

import torch
from torch import Tensor

from benchmark.metrics.functional.insertion_deletion import insertion_deletion_curves

#: What a metric may need (``needs``), computed at most once per batch by :class:`BatchInputs`.
INPUTS = {
    "maps": "the maps M [B, H, W] in [0, 1]",
    "images": "the images x [B, 3, H, W] in [0, 1] pixel space",
    "classes": "the top-1 classes c [B] on x",
    "base_prob": "softmax probability of c on x [B]",
    "explanation_prob": "softmax probability of c on x * M [B] (one forward of x * M)",
    "explanation_probs": "softmax probabilities on x * M [B, classes]",
    "maps_of_explanation": "the method's maps of x * M for c [B, H, W] (the method again)",
    "insertion_curves": "Insertion curves [B, S + 1]",
    "deletion_curves": "Deletion curves [B, S + 1]",
    "boxes": "per image a [K, 4] tensor of boxes in map pixels, or None",
    "classifier": "the classifier: pixel-space images -> logits",
    "class_probability": "probability(images [N, 3, H, W], classes [N]) -> softmax probability of each class [N] "
    "(forward-only passes in the benchmark's chunks)",
    "explain": "the method again: explain(images, classes) -> maps [B, H, W]",
    "method_for_inputs": "the method on other images: method(images [B, 3, H, W], None) -> maps [B, H, W] for the "
    "batch's classes (unavailable for maps computed elsewhere)",
    "method_for_classes": "the method for other classes: method(images, classes [B]) -> maps (unavailable where "
    "the maps do not depend on the class)",
    "class_count": "the number of classes of the classifier",
}
#: Inputs that call the method again: unavailable for maps computed elsewhere.
METHOD_INPUTS = ("maps_of_explanation", "explain", "method_for_inputs", "method_for_classes")


def _softmax(logits: Tensor) -> Tensor:
    return logits.softmax(dim=-1, dtype=torch.promote_types(logits.dtype, torch.float32))


class BatchInputs:
    """The inputs of one batch's metrics (:data:`INPUTS`), each computed once, when first asked.

    ``images``, ``maps``, ``classes`` and ``base_prob`` are given; the forward of ``x * M``, the
    method on ``x * M`` and the Insertion/Deletion curves are computed on first use and shared.
    ``chunk_size``: images per forward of the passes it makes in chunks (the curves,
    ``class_probability``); ``curve_options``: the other keyword arguments of
    :func:`~benchmark.metrics.functional.insertion_deletion.insertion_deletion_curves` (``n_steps``,
    ``score``, ``blur_kernel``, ``blur_sigma``).
    """

    def __init__(
        self,
        classifier,
        explain_fn,
        images,
        maps,
        classes,
        base_prob,
        boxes,
        forward_only=None,
        method=None,
        *,
        chunk_size: int,
        curve_options: Mapping[str, Any],
    ):
        self.chunk_size = chunk_size
        self.curve_options = dict(curve_options)
        self.classifier = classifier
        #: ``method(images, classes or None)``: the method on any images (``None``: the batch's classes)
        self.method_for_inputs = self.method_for_classes = method
        #: the classifier for passes that need no hooks or gradients (possibly compiled)
        self.forward_only = forward_only if forward_only is not None else classifier
        self.explain = explain_fn
        self.images = images
        self.maps = maps
        self.classes = classes
        self.base_prob = base_prob.detach().to(images.device)
        self.boxes = list(boxes) if boxes is not None else [None] * maps.shape[0]

    @cached_property
    def explanation(self) -> Tensor:
        """``x * M``."""
        return self.images.detach() * self.maps.unsqueeze(1)

    @cached_property
    def explanation_probs(self) -> Tensor:
        with torch.no_grad():
            return _softmax(self.forward_only(self.explanation))

    @cached_property
    def explanation_prob(self) -> Tensor:
        probs = self.explanation_probs
        return probs.gather(1, self.classes.to(probs.device).unsqueeze(1)).squeeze(1)

    @cached_property
    def maps_of_explanation(self) -> Tensor:
        return torch.as_tensor(self.explain(self.explanation, self.classes)).detach().to(self.maps.device)

    @cached_property
    def class_count(self) -> int:
        return int(self.explanation_probs.shape[1])

    @cached_property
    def class_probability(self) -> Callable[[Tensor, Tensor], Tensor]:
        chunk = self.chunk_size

        def probability(images: Tensor, classes: Tensor) -> Tensor:
            classes = classes.to(device=images.device, dtype=torch.long)
            scores = []
            with torch.no_grad():
                for start in range(0, images.shape[0], chunk):
                    probs = _softmax(self.forward_only(images[start : start + chunk]))
                    scores.append(probs.gather(1, classes[start : start + chunk, None]).squeeze(1))
            return torch.cat(scores) if scores else images.new_zeros(0)

        return probability

    @cached_property
    def _curves(self) -> tuple[Tensor, Tensor]:
        def score_fn(inputs: Tensor) -> Tensor:
            with torch.no_grad():
                return _softmax(self.forward_only(inputs))

        return insertion_deletion_curves(
            score_fn,
            self.images,
            self.maps,
            self.classes,
            chunk_size=self.chunk_size,
            **self.curve_options,
        )

    @property
    def insertion_curves(self) -> Tensor:
        return self._curves[0]

    @property
    def deletion_curves(self) -> Tensor:
        return self._curves[1]
