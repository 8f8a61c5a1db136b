"""``--model timm:NAME``: any timm ImageNet-1k classifier.

The architecture is ``timm.create_model(NAME, pretrained=False)``; its weights come from
``--model.weights FILE`` (a state dict or ``.safetensors`` file), else from the local caches
timm itself reads (nothing is downloaded at run time):

1. the Hugging Face cache (``$HF_HUB_CACHE``, by default ``~/.cache/huggingface/hub``) of the
   model's ``pretrained_cfg.hf_hub_id``: ``model.safetensors``, else ``pytorch_model.bin``;
2. timm's older cache, the torch hub folder (``$TORCH_HOME/hub/checkpoints``), for the file of
   ``pretrained_cfg.url``.

The file is read safely (``weights_only`` / safetensors) and handed to timm as the pretrained
state dict, so timm's own per-model conversion (``checkpoint_filter_fn``) applies. Mean and
std come from the model's ``pretrained_cfg``; ``--model.weights none`` builds it with random
weights (smoke tests only).
"""

from __future__ import annotations

import difflib
from pathlib import Path

from torch import nn

from benchmark.core.errors import BenchmarkError
from benchmark.models.registry import RANDOM_WEIGHTS, ModelSpec, register_model_prefix
from benchmark.models.weights import hub_checkpoint, load_state_dict

PREFIX = "timm"
IMAGENET_CLASSES = 1000
#: The side of the benchmark's images (datamodules: resize 256, centre crop 224).
CROP = 224
#: The weight files timm looks for in a Hugging Face repository, in its order.
HF_FILES = ("model.safetensors", "pytorch_model.bin")


def _pretrained_cfg(arch: str):
    import timm
    from timm.models import get_pretrained_cfg

    if not arch or not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=3)
        hint = f" (did you mean {', '.join(f'{PREFIX}:{c}' for c in close)}?)" if close else ""
        raise BenchmarkError(f"unknown timm model {arch!r}{hint}; timm.list_models() lists the names")
    try:
        cfg = get_pretrained_cfg(arch)
    except RuntimeError as error:  # an unknown tag: "resnet18.nosuch"
        raise BenchmarkError(f"--model {PREFIX}:{arch}: {error}") from None
    if cfg is None:
        raise BenchmarkError(f"--model {PREFIX}:{arch}: timm has no pretrained configuration for it")
    classes = cfg.num_classes or 0
    if classes != IMAGENET_CLASSES or cfg.label_offset:
        raise BenchmarkError(
            f"--model {PREFIX}:{arch} has {classes} output classes"
            + (f" (label offset {cfg.label_offset})" if cfg.label_offset else "")
            + f", not ImageNet's {IMAGENET_CLASSES}: choose an ImageNet-1k classifier (e.g. a tag ending in in1k)"
        )
    size = tuple(cfg.input_size[1:]) if cfg.input_size else (CROP, CROP)
    if cfg.fixed_input_size and size != (CROP, CROP):
        raise BenchmarkError(
            f"--model {PREFIX}:{arch} takes only {size[0]}x{size[1]} images, the benchmark's are {CROP}x{CROP} "
            "(resize 256, centre crop 224): choose a variant made for 224"
        )
    return cfg


def _hf_repo(cfg) -> tuple[str, str | None] | None:
    if not cfg.hf_hub_id:
        return None
    repo, _, revision = cfg.hf_hub_id.partition("@")
    return repo, revision or None


def cached_weights(cfg) -> Path | None:
    """The model's pretrained file in the local caches, or ``None``."""
    repo = _hf_repo(cfg)
    if repo is not None:
        from huggingface_hub import try_to_load_from_cache

        for filename in [cfg.hf_hub_filename] if cfg.hf_hub_filename else HF_FILES:
            found = try_to_load_from_cache(repo[0], filename, revision=repo[1])
            if isinstance(found, str) and Path(found).is_file():
                return Path(found)
    if cfg.url and not cfg.url.endswith(".npz"):  # .npz (big_vision) files need timm's own loader
        cached = hub_checkpoint(cfg.url)
        if cached.is_file():
            return cached
    return None


def missing_weights_message(arch: str, cfg) -> str:
    from huggingface_hub import constants

    name = f"{PREFIX}:{arch}"
    where = []
    if cfg.url and not cfg.url.endswith(".npz"):
        cached = hub_checkpoint(cfg.url)
        where.append(f"put {cached.name} (from {cfg.url}) at {cached}")
    repo = _hf_repo(cfg)
    if repo is not None:
        where.append(
            f"put the Hugging Face repository {repo[0]} into the cache {constants.HF_HUB_CACHE} "
            f"(`hf download {repo[0]}` where there is internet fills that folder)"
        )
    where.append("pass --model.weights FILE (a state dict or .safetensors file)")
    return (
        f"{name} needs its pretrained weights and this machine cannot download them: {', or '.join(where)}; "
        f"or --model.weights {RANDOM_WEIGHTS} for random weights (smoke tests only)"
    )


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= 300 else text[:300] + " ..."


def build_timm(arch: str, weights: str | None) -> nn.Module:
    import timm

    if weights == RANDOM_WEIGHTS:
        return timm.create_model(arch, pretrained=False)
    cfg = _pretrained_cfg(arch)
    if weights is None:
        cached = cached_weights(cfg)
        if cached is None:
            raise BenchmarkError(missing_weights_message(arch, cfg))
        weights = str(cached)
    state = load_state_dict(weights)
    try:
        # timm loads the state dict as its pretrained weights: its checkpoint filter applies
        net = timm.create_model(arch, pretrained=True, pretrained_cfg_overlay={"state_dict": state, "source": None})
    except (RuntimeError, KeyError, ValueError, IndexError) as error:
        raise BenchmarkError(
            f"weights {weights!r} do not fit {PREFIX}:{arch} ({_one_line(error)}); pass the weights of the right "
            "architecture"
        ) from None
    for config in {
        id(c): c
        for c in (getattr(net, "pretrained_cfg", None), getattr(net, "default_cfg", None))
        if isinstance(c, dict)
    }.values():
        config.pop("state_dict", None)  # timm keeps the overlay: a second copy of every tensor
    return net


def timm_spec(arch: str) -> ModelSpec:
    cfg = _pretrained_cfg(arch)
    classifier = cfg.classifier
    if isinstance(classifier, (list, tuple)):  # distilled models: (head, head_dist)
        classifier = classifier[0] if classifier else None
    return ModelSpec(
        name=f"{PREFIX}:{arch}",
        build=lambda weights: build_timm(arch, weights),
        mean=tuple(float(v) for v in cfg.mean),
        std=tuple(float(v) for v in cfg.std),
        cam_layer=None,  # automatic: a vision transformer's last block's norm1, else the last Conv2d
        classifier_layer=classifier or None,
        description=f"timm {arch} ({cfg.hf_hub_id or cfg.url or 'no pretrained file'})",
    )


register_model_prefix(
    PREFIX,
    timm_spec,
    "any timm ImageNet-1k classifier; weights from --model.weights or the Hugging Face / torch hub cache",
)
