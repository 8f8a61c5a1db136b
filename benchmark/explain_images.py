"""``explain``: explanations of single image files, to look at.

    python -m benchmark explain IMAGE [IMAGE...] --method lots|gradcam|... [--model M]
        [--method.target image --method.target_image OTHER.jpg] [--method.kernel_size 3,7,15,31,49]
        --output DIR

Writes, per image, into ``DIR/<file stem>/``: ``original.png`` (the 224x224 crop the model
sees), for LOTS ``adversarial.png`` and ``perturbation_x10.png`` (thesis Fig. 4.1: the
perturbation times 10, shifted by 128), ``map.png`` (grey levels, 255 = 1), ``overlay.png``,
``predictions.json`` (top-5 classes with names, on the original and, for LOTS, on the
adversarial image); with several kernel sizes ``map_k<k>.png`` and ``kernel_strip.png`` (the
maps from fine to coarse, thesis Fig. 5.6; LOTS is run once, only the blur changes).
``DIR/explain.json`` holds the settings and every image's summary. Any image file works,
including objects outside ImageNet; a ``<wnid>_*`` file name gives the label.

The perturbation pictures are for methods that declare ``perturbation_pictures = True`` (LOTS):
such a method has ``attack(images, classes)`` returning the adversarial images with
per-sample ``iterations`` and ``final_distance``, and a config with ``kernel_size`` and
``threshold``; its map is the perturbation map of ``benchmark.methods.lots.lots_map``. Any other method's
maps come from its ``explain_maps``. No method is known here by its name or class.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from datetime import datetime
from pathlib import Path

import torch

from benchmark.config import CommandOptions
from benchmark.core.errors import BenchmarkError
from benchmark.explainers import build_method
from benchmark.files import write_text_atomic

#: Run options that make no sense for single images.
EXPLAIN_EXCLUDED = (
    "methods",
    "data",
    "per_class",
    "limit",
    "classes",
    "ground_truth",
    "boxes",
    "num_workers",
    "save_maps",
    "overlay_images",
    "devices",
    "resume",
    "precision",
)
#: The run options ``explain`` takes (see :class:`benchmark.config.CommandOptions`).
EXPLAIN_OPTIONS = CommandOptions("explain", exclude=EXPLAIN_EXCLUDED, own=("images",))


def perturbation_pictures(method) -> bool:
    """Whether ``method`` declares the adversarial/perturbation pictures and the kernel strip."""
    return bool(getattr(method, "perturbation_pictures", False))


def parse_kernel_sizes(namespace: argparse.Namespace) -> list[int] | None:
    """``--method.kernel_size 3,7,15`` -> ``[3, 7, 15]`` (sorted); the namespace keeps the
    coarsest, so the method config validates as usual. ``None`` for a single size."""
    raw = getattr(namespace, "method.kernel_size", None)
    if raw is None or "," not in str(raw):
        return None
    try:
        sizes = sorted({int(part) for part in str(raw).split(",") if part.strip()})
    except ValueError:
        raise BenchmarkError(f"--method.kernel_size: {raw!r} is not a comma-separated list of odd integers") from None
    setattr(namespace, "method.kernel_size", str(sizes[-1]))
    return sizes


def label_of(file: str) -> int:
    """The class index from a ``<wnid>_*`` / ``<wnid>/*`` path, else -1."""
    from benchmark.datamodules.classes import imagenet_classes
    from benchmark.datamodules.layouts import WNID_NAME

    classes = imagenet_classes()
    path = Path(file)
    for name in (path.stem, path.parent.name):
        match = WNID_NAME.fullmatch(name)
        if match and match.group(1) in classes:
            return classes.index_of(match.group(1))
    return -1


def load_images(files: list[str]) -> torch.Tensor:
    """All images as ``[N, 3, 224, 224]``; an unreadable one is an error naming it."""
    from benchmark.datamodules import ImageLoadError, load_rgb, make_transform

    transform = make_transform()
    pictures = []
    for file in files:
        try:
            pictures.append(transform(load_rgb(file)))
        except ImageLoadError as error:
            raise BenchmarkError(f"{file}: {error}; pass readable image files") from None
    return torch.stack(pictures)


def image_folders(files: list[str], output: Path) -> list[Path]:
    """``output/<stem>`` per file, with ``_2``, ``_3``... for repeated stems."""
    seen: dict[str, int] = {}
    folders = []
    for file in files:
        stem = Path(file).stem or "image"
        seen[stem] = seen.get(stem, 0) + 1
        folders.append(output / (stem if seen[stem] == 1 else f"{stem}_{seen[stem]}"))
    return folders


def _device(accelerator: str) -> torch.device:
    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return torch.device("cuda")
    if accelerator in ("gpu", "cuda"):
        raise BenchmarkError(f"--accelerator {accelerator}: no CUDA device is available; use cpu or auto")
    return torch.device("cpu")


def run_explain(namespace: argparse.Namespace, run_config) -> Path:
    """The ``explain`` command; returns the output folder. ``run_config`` resolves the shared
    run options (``benchmark.commands.explain.run_config``)."""
    from benchmark.datamodules import imagenet_classes
    from benchmark.methods.lots import lots_map
    from benchmark.pictures import (
        kernel_strip,
        magnified_perturbation,
        map_to_uint8,
        overlay_uint8,
        save_png,
        to_uint8,
        top_k,
    )

    sizes = parse_kernel_sizes(namespace)
    config = run_config(namespace)
    o = config.options
    from benchmark.devices import apply_run_settings

    apply_run_settings(o)
    method_config = config.method_config
    if sizes:
        for size in sizes:
            dataclasses.replace(method_config, kernel_size=size).validate()
    files = [str(Path(f).expanduser()) for f in namespace.images]
    images = load_images(files)  # before any model work
    labels = torch.tensor([label_of(f) for f in files], dtype=torch.long)
    if "output" in vars(namespace):
        output = Path(o.output)
    else:
        output = Path(o.output) / f"explain_{o.method.replace(':', '_')}_{o.model}_{datetime.now():%Y%m%d-%H%M%S}"
    device = _device(o.accelerator)
    torch.manual_seed(o.seed)

    method = build_method(config).to(device).eval()
    pictures = perturbation_pictures(method)
    sizes = sizes or ([method_config.kernel_size] if pictures else None)
    names = imagenet_classes()
    records = []
    folders = image_folders(files, output)
    for start in range(0, len(files), o.batch_size):
        batch = images[start : start + o.batch_size].to(device)
        ids = torch.arange(start, start + batch.shape[0])
        with torch.no_grad():
            probabilities = method.classifier(batch).softmax(dim=-1)
        predicted = probabilities.argmax(dim=-1)
        classes = method.choose_classes({"label": labels[start : start + batch.shape[0]].to(device)}, predicted)
        method.current_sample_ids = ids
        try:
            if pictures:
                result = method.attack(batch, classes)
                maps = {k: lots_map(batch, result.adversarial, k, method_config.threshold) for k in sizes}
                with torch.no_grad():
                    adversarial_probabilities = method.classifier(result.adversarial).softmax(dim=-1)
            else:
                maps = {None: method.explain_maps(batch, classes)}
        finally:
            method.current_sample_ids = None
        for row in range(batch.shape[0]):
            index = start + row
            folder = folders[index]
            folder.mkdir(parents=True, exist_ok=True)
            image = batch[row].cpu()
            main_map = maps[sizes[-1] if pictures else None][row].cpu()
            save_png(to_uint8(image), folder / "original.png")
            save_png(map_to_uint8(main_map), folder / "map.png")
            save_png(overlay_uint8(image, main_map), folder / "overlay.png")
            record = {
                "file": files[index],
                "folder": str(folder),
                "label": int(labels[index]),
                "explained_class": int(classes[row]),
                "explained_class_name": names.names[int(classes[row])],
                "original_top5": top_k(probabilities[row], 5, names.names, names.wnids),
            }
            if pictures:
                adversarial = result.adversarial[row].cpu()
                save_png(to_uint8(adversarial), folder / "adversarial.png")
                save_png(magnified_perturbation(image, adversarial), folder / "perturbation_x10.png")
                record["adversarial_top5"] = top_k(adversarial_probabilities[row], 5, names.names, names.wnids)
                record["iterations"] = int(result.iterations[row])
                record["final_distance"] = float(result.final_distance[row])
                if len(sizes) > 1:
                    for k in sizes:
                        save_png(map_to_uint8(maps[k][row].cpu()), folder / f"map_k{k}.png")
                    kernel_strip(
                        image,
                        {k: maps[k][row].cpu() for k in sizes},
                        folder / "kernel_strip.png",
                        title=f"{Path(files[index]).name}: {type(method).__name__} maps from fine to coarse",
                    )
                    record["kernel_sizes"] = sizes
            write_text_atomic(folder / "predictions.json", json.dumps(record, indent=2) + "\n")
            records.append(record)
            top = record["original_top5"][0]
            print(f"{files[index]}: {top['name']} ({top['probability']:.2f}) -> {folder}")
    summary = {
        "method": o.method,
        "model": o.model,
        "config": config.to_dict(),
        "device": str(device),
        "images": records,
    }
    output.mkdir(parents=True, exist_ok=True)
    write_text_atomic(output / "explain.json", json.dumps(summary, indent=2, default=str) + "\n")
    print(f"explanations: {output}")
    return output
