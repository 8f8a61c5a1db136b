"""Ablation-CAM on the images' device, the ablated copies going through the model in the
benchmark's chunks.

Ablation-CAM (Desai & Ramaswamy 2020, WACV): ``w_k = (y^c - y^c_k) / y^c`` with ``y^c_k`` the
logit when channel ``k`` of the layer's output is ablated, ``M = ReLU(sum_k w_k A^k)``.
grad-cam swaps the layer for its ``AblationLayer`` and runs the whole model on ``chunk`` copies
of the image per chunk of channels, recomputing everything before the layer for every copy.
Here a forward hook hands on each image's ``chunk`` ablated copies of the layer's output in
place of the batch's output, so only the layers after it see the copies (1,282 full forwards
per image with 1,280 channels become 2 of the batch, and one pass of a stand-in per further
chunk).

What enters the model for a chunk only has to get the forward to the layer, whose output the
copies replace: after the first chunk, whose scores are computed with the images and again
with the stand-in (one image of zeros, at most 32 x 32), the stand-in enters if the two agreed
bit for bit, so the layers before the layer do almost no work (several times faster than with
the images entering, the maps bit for bit the same; perf/README.md). Where they disagree or
the stand-in fails (a skip connection around the layer, a model of one input size) the images
enter. A skip connection makes them enter one at a time (its one image broadcasts against the
copies: the same value); a model that cannot broadcast it (a concatenation) gets the copies as
images, as in grad-cam.

The ablation value is grad-cam's: 0 if the copies' minimum is 0, else that minimum minus 1e7,
the minimum taken again before each copy (so the values fall by 1e7 from copy to copy of a
chunk).

Only ``y^c_k`` is wanted of each copy's logits: under the fast executions (``channels_last``,
``compiled``), where the logits are one ``nn.Linear``'s output, the copies' passes stop at its
input and compute ``w_c . x + b_c`` alone (``y^c`` too, so that their difference keeps the same
rounding), one row of the head's weights instead of 1,000, because on EfficientNet-Lite0 the
full head was a large share of the method's time (perf/README.md; the maps within 1e-4 of
eager's, as channels_last's are within 4e-5). ``--execution eager`` runs the whole head.

The maps finish as every CAM here (ReLU, per-image min-max, bilinear resize, ReLU, min-max;
:func:`benchmark.methods.cam.device.finish_cams`). ``tests/methods/test_cam_device.py`` checks them
against the grad-cam path.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from benchmark.core.tensors import at_least_float32, full_precision, memory_format_of
from benchmark.methods.cam.device import finish_cams, weighted
from benchmark.models.counting import stand_in_passes

#: grad-cam's ``AblationLayer``: a layer whose minimum is not 0 is ablated to "minimum - 1e7".
ABLATION_OFFSET = 1e7


def ablation_values(minimum: Tensor, copies: int) -> Tensor:
    """``[..., copies]``: the value grad-cam's ``AblationLayer`` writes into copy ``i``'s channel,
    for each of the layer outputs whose minima are ``minimum`` (``[...]``, e.g. one per image).

    It loops over the copies of a chunk and takes ``torch.min`` of all of them before each
    write: 0 while that minimum is 0, else the minimum minus 1e7; each write below the minimum
    becomes the next one."""
    values, low = [], minimum.float()
    for _ in range(copies):
        value = torch.where(low == 0, torch.zeros_like(low), low - ABLATION_OFFSET)
        values.append(value)
        low = torch.minimum(low, value)
    return torch.stack(values, dim=-1)


def ablated_copies(activations: Tensor, channels: Tensor, values: Tensor | None = None) -> Tensor:
    """``[B * n, C, h, w]``: per image of ``activations`` (``[B, C, h, w]``) ``n`` copies, copy
    ``i`` with channel ``channels[i]`` set to its ablation value (image-major; in the
    activations' memory format). ``values``: :func:`ablation_values` of the images (``[B, >=
    n]``: a chunk's values are the first ``n`` of a longer chunk's), else computed here."""
    batch, n = activations.shape[0], channels.numel()
    # written once, in the activations' layout (the first dimension splits into [B, n] in either)
    flat = torch.empty(
        (batch * n, *activations.shape[1:]),
        dtype=activations.dtype,
        device=activations.device,
        memory_format=memory_format_of(activations),
    )
    copies = flat.view(batch, n, *activations.shape[1:])
    copies.copy_(activations.unsqueeze(1).expand_as(copies))
    if values is None:
        values = ablation_values(activations.flatten(1).amin(dim=1), n)
    values = values[:, :n].to(copies.dtype)  # [B, n]
    copies[:, torch.arange(n, device=copies.device), channels] = values[:, :, None, None]
    return flat


class _HeadReached(Exception):
    """Raised by a forward pre-hook on the logit head: the pass stops there with its input."""

    def __init__(self, features: Tensor):
        super().__init__("the logit head's input")
        self.features = features


def logit_head(net: nn.Module, run: Callable[[], Tensor]) -> tuple[Tensor, nn.Linear | None, Tensor | None]:
    """``run()``'s logits, the ``nn.Linear`` of ``net`` that made them (called once in the
    pass, on ``[N, F]`` features, its output the very tensor ``run`` returned: nothing after it
    touches the logits) and its input; ``None, None`` where no layer is that."""
    outputs: dict[nn.Module, list[tuple[Tensor, Tensor]]] = {}

    def record(module: nn.Module, args, output: Tensor) -> None:
        outputs.setdefault(module, []).append((args[0], output))

    handles = [m.register_forward_hook(record) for m in net.modules() if isinstance(m, nn.Linear)]
    try:
        logits = run()
    finally:
        for handle in handles:
            handle.remove()
    for module, made in outputs.items():
        if len(made) == 1 and made[0][1] is logits and logits.dim() == 2 and made[0][0].dim() == 2:
            return logits, module, made[0][0]  # type: ignore[return-value]
    return logits, None, None


def class_logits(head: nn.Linear, features: Tensor, classes: Tensor) -> Tensor:
    """``head(features)[i, classes[i]]`` for each row ``i``: one row of the head's weights per
    row instead of all of them (``w_c . x + b_c``; the same to float32 rounding)."""
    scores = torch.linalg.vecdot(features, head.weight.index_select(0, classes).to(features.dtype))
    if head.bias is not None:
        scores = scores + head.bias.index_select(0, classes).to(features.dtype)
    return scores


def _scores_with(
    classifier: nn.Module,
    layer: nn.Module,
    images: Tensor,
    copies: Tensor,
    classes: Tensor,
    repeat_inputs: bool,
    head: nn.Linear | None = None,
) -> Tensor | None:
    """The logits of ``classes`` (one per copy) with ``layer``'s output replaced by ``copies``
    (``[B * n]``, image-major). ``images`` (``[B, 3, H, W]``, or a stand-in of any count and
    size) enter once, or with ``repeat_inputs`` once per copy (grad-cam's way). With ``head``
    (:func:`logit_head`) the pass stops at the head's input and only the classes' logits are
    computed (:func:`class_logits`). ``None`` when what entered once cannot stand for the copies
    (the model failed or gave another batch)."""
    n = copies.shape[0] // images.shape[0]

    def replace(module: nn.Module, args, output: Tensor) -> Tensor:
        return copies

    def stop(module: nn.Module, args) -> None:
        raise _HeadReached(args[0])

    handles = [layer.register_forward_hook(replace)]
    if head is not None:
        handles.append(head.register_forward_pre_hook(stop))
    try:
        inputs = images.repeat_interleave(n, dim=0) if repeat_inputs else images
        try:
            logits = classifier(inputs)
        except _HeadReached as reached:
            features = reached.features
            if features.dim() != 2 or features.shape[0] != copies.shape[0]:
                if repeat_inputs:
                    raise RuntimeError(
                        f"the head saw {features.shape[0]} rows for {copies.shape[0]} ablated copies"
                    ) from None
                return None
            return class_logits(head, features, classes).float()  # type: ignore[arg-type]
        except RuntimeError:
            if repeat_inputs:
                raise
            return None
    finally:
        for handle in handles:
            handle.remove()
    if logits.shape[0] != copies.shape[0]:
        if repeat_inputs:
            raise RuntimeError(f"the model gave {logits.shape[0]} outputs for {copies.shape[0]} ablated copies")
        return None
    return logits.gather(1, classes.view(-1, 1))[:, 0].float()


#: the stand-in's largest side: small enough that the layers before the target do little work,
#: large enough for the usual CNNs' 32-fold downsampling
STAND_IN_SIDE = 32


def _stand_in(images: Tensor) -> Tensor:
    """One image of zeros, of the images' channels and at most ``STAND_IN_SIDE`` pixels a side:
    what enters the model for any number of images' copies (one image, so the layers before the
    target cost little more than their calls, where a stand-in of one small image per image of
    the batch still took a large share of Ablation-CAM's time: perf/README.md)."""
    height, width = (min(side, STAND_IN_SIDE) for side in images.shape[-2:])
    return images.new_zeros(1, images.shape[1], height, width)


def ablation_cam(
    classifier: nn.Module,
    net: nn.Module,
    layer: nn.Module,
    images: Tensor,
    classes: Tensor,
    chunk: int,
    class_logits_only: bool = False,
) -> Tensor:
    """Ablation-CAM maps ``[B, H, W]``, ``chunk`` ablated channels of each image per pass
    (``net``: the backbone ``classifier`` runs, whose passes are counted).

    The images of the batch enter together, each followed after the layer by its copies; where
    the layers after it combine the copies with a tensor from before it (a skip connection),
    one image enters at a time (its tensor broadcasts against its copies), and where that
    fails too (a concatenation), the copies enter as images, as in grad-cam. Where the images
    enter once, a stand-in (:func:`_stand_in`) takes their place after the first chunk if its
    scores there equal theirs bit for bit (the layers after the target then read nothing the
    images computed); its passes are counted as the method's work
    (:func:`models.counting.stand_in_passes`), not as passes of the model. With
    ``class_logits_only`` (the fast executions), where the logits come from one ``nn.Linear``
    (:func:`logit_head`), the copies' passes stop at its input and compute the class's logit
    alone (:func:`class_logits`)."""
    with full_precision(images), torch.no_grad():
        kept: dict[str, Tensor] = {}

        def keep(module: nn.Module, args, output: Tensor) -> None:
            kept["a"] = output.detach().clone()

        handle = layer.register_forward_hook(keep)
        try:
            logits, head, features = (
                logit_head(net, lambda: classifier(images)) if class_logits_only else (classifier(images), None, None)
            )
        finally:
            handle.remove()
        layer_output = kept["a"]
        batch, channels = layer_output.shape[:2]
        classes = classes.to(images.device).long().view(-1)
        if head is not None:  # y^c as each y^c_k is computed (their difference is the weight)
            original = class_logits(head, features, classes).float()
        else:
            original = logits.float().gather(1, classes.view(-1, 1))[:, 0]
        ablated = torch.empty(batch, channels, dtype=torch.float32, device=images.device)
        values = ablation_values(layer_output.flatten(1).amin(dim=1), min(chunk, channels))  # every chunk's

        stand_in = _stand_in(images)
        # per way of entering: whether the stand-in gave the images' scores (None: not tried yet)
        stand_in_agrees: dict[str, bool | None] = {"batch": None, "image": None}

        def scores_of(rows: slice, which: Tensor, repeat_inputs: bool, entering: Tensor | None = None) -> Tensor | None:
            copies = ablated_copies(layer_output[rows], which, values[rows])
            wanted = classes[rows].repeat_interleave(which.numel())
            scores = _scores_with(
                classifier, layer, images[rows] if entering is None else entering, copies, wanted, repeat_inputs, head
            )
            return None if scores is None else scores.view(-1, which.numel())

        def stand_in_scores(rows: slice, which: Tensor) -> Tensor | None:
            try:
                with stand_in_passes(net):
                    return scores_of(rows, which, repeat_inputs=False, entering=stand_in)
            except Exception:
                return None

        def entering_once(mode: str, rows: slice, which: Tensor) -> Tensor | None:
            """The chunk's scores with the images (or the stand-in, once it agreed) entering once."""
            if stand_in_agrees[mode]:
                scores = stand_in_scores(rows, which)
                if scores is not None:
                    return scores
            scores = scores_of(rows, which, repeat_inputs=False)
            if scores is not None and stand_in_agrees[mode] is None:
                # the copies built again: an in-place op after the layer may have changed those handed on
                check = stand_in_scores(rows, which)
                stand_in_agrees[mode] = check is not None and torch.equal(check, scores)
            return scores

        # "batch": the images enter together; "image": one at a time; "copies": grad-cam's way
        mode = "batch" if batch > 1 else "image"
        for start in range(0, channels, chunk):
            which = torch.arange(start, min(start + chunk, channels), device=images.device)
            if mode == "batch":
                scores = entering_once("batch", slice(0, batch), which)
                if scores is not None:
                    ablated[:, which] = scores
                    continue
                mode = "image"
            for i in range(batch):
                scores = None if mode == "copies" else entering_once("image", slice(i, i + 1), which)
                if scores is None:
                    mode = "copies"
                    scores = scores_of(slice(i, i + 1), which, repeat_inputs=True)
                ablated[i, which] = scores[0]
        weights = (original[:, None] - ablated) / original[:, None]
        return finish_cams(
            weighted(weights.to(at_least_float32(layer_output).dtype), at_least_float32(layer_output)),
            images.shape[-2:],
        )
