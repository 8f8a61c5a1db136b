"""``targets``: per-class LOTS feature targets from a folder of labelled (training) images.

    python -m benchmark targets --model M --data TRAIN_DIR --kind class|mean|class,mean --output F.pt

* ``mean``: per class, the mean features over all its images, accumulated in one streaming,
  batched pass (per-class sums and counts in a torchmetrics state that is summed across
  processes, so it runs on any number of GPUs; each image is seen once).
* ``class``: per class, the features of one image chosen with ``--seed`` (uniformly among the
  class's images in file-name order). Alone, only the chosen images are read; with ``mean``
  they are picked up in the same pass.

The file format is in :mod:`benchmark.methods.lots_targets`. The features must be those LOTS will use
(``--features``, default the logits, as ``--method.features``).

The options it shares with ``test`` (``--data``, ``--model``, ``--batch-size``, ``--seed``,
``--devices``, ``--config FILE.yaml``...) are parsed, layered and checked by the same code
(:data:`TARGETS_OPTIONS`, ``benchmark.config.resolve``), with the same messages; only its
defaults differ (32 images per batch, every image of a class). ``--kind``, ``--output FILE.pt``
and ``--features`` are its own.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import Tensor
from torchmetrics import Metric

from benchmark.config import CommandOptions
from benchmark.core.distributed import gather_objects
from benchmark.core.errors import BenchmarkError
from benchmark.methods.lots_targets import TARGET_KINDS, TargetsFile, write_targets_file

NUM_CLASSES = 1000

#: The run options ``targets`` takes (see :class:`benchmark.config.CommandOptions`).
TARGETS_OPTIONS = CommandOptions(
    "targets",
    only=(
        "model",
        "model_weights",
        "model_mean",
        "model_std",
        "data",
        "per_class",
        "classes",
        "ground_truth",
        "batch_size",
        "num_workers",
        "seed",
        "threads",
        "accelerator",
        "devices",
    ),
    defaults={"per_class": None, "batch_size": 32},
    help={
        "model": "classifier (the names of test --help, timm:NAME, torchvision:NAME or package.module:build)",
        "data": "folder of labelled images (any layout of --data); required",
        "threads": "torch CPU threads per process (default: torch's choice, usually the cores)",
        "per_class": "first N images per class, by file name (default: all)",
        "seed": "seed of the class kind's image choice, 0 to 2**32 - 1",
    },
    own=("kind", "targets_output", "features"),
)


def parse_kinds(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in kinds if k not in TARGET_KINDS]
    if not kinds or bad:
        raise BenchmarkError(f"--kind {text}: choose class, mean or class,mean")
    return [k for k in TARGET_KINDS if k in kinds]


def choose_class_images(samples: list, seed: int) -> dict[int, int]:
    """``{class: sample id}``: one labelled image per class, uniformly at random with ``seed``
    (classes in index order, each class's images in their sorted order)."""
    by_class: dict[int, list[int]] = {}
    for sample in samples:
        if sample.label >= 0:
            by_class.setdefault(sample.label, []).append(sample.sample_id)
    generator = torch.Generator().manual_seed(int(seed))
    chosen = {}
    for label in sorted(by_class):
        members = by_class[label]
        chosen[label] = members[int(torch.randint(len(members), (1,), generator=generator))]
    return chosen


class ClassFeatureSums(Metric):
    """Per-class sums of feature vectors and counts, summed across processes."""

    full_state_update = False

    def __init__(self, num_classes: int, dim: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("sums", default=torch.zeros(num_classes, dim, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("counts", default=torch.zeros(num_classes, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, features: Tensor, classes: Tensor) -> None:
        classes = classes.to(self.sums.device, torch.long)
        self.sums.index_add_(0, classes, features.to(self.sums.device, torch.float64))
        self.counts.index_add_(0, classes, torch.ones_like(classes, dtype=torch.float64))

    def compute(self) -> tuple[Tensor, Tensor]:
        """``(means [C, D] (zero rows for empty classes), counts [C])``."""
        safe = self.counts.clamp(min=1)[:, None]
        return self.sums / safe, self.counts.round().long()


class TargetFeatures(pl.LightningModule):
    """One pass over the images: per-class feature sums for each requested kind."""

    def __init__(self, classifier, layer: str, kinds: list[str], chosen: dict[int, int], dim: int) -> None:
        super().__init__()
        from benchmark.models.features import FeatureExtractor

        self.extractor = FeatureExtractor(classifier, layer)
        self.kinds = kinds
        self.register_buffer("chosen_ids", torch.tensor(sorted(chosen.values()), dtype=torch.long), persistent=False)
        self.sums = torch.nn.ModuleDict({kind: ClassFeatureSums(NUM_CLASSES, dim) for kind in kinds})
        self.failures: list[tuple[int, str]] = []
        self.unlabelled = 0
        self.result: dict | None = None

    def test_step(self, batch, batch_idx: int) -> None:
        self.failures.extend(batch.get("failures", []))
        images, labels, ids = batch["image"], batch["label"], batch["sample_id"]
        if images.shape[0] == 0:
            return
        labels, ids = labels.to(images.device), ids.to(images.device)
        labelled = labels >= 0
        self.unlabelled += int((~labelled).sum())
        features = self.extractor(images).detach()
        if "mean" in self.kinds:
            self.sums["mean"].update(features[labelled], labels[labelled])
        if "class" in self.kinds:
            pick = labelled & torch.isin(ids, self.chosen_ids.to(ids.device))
            self.sums["class"].update(features[pick], labels[pick])

    def on_test_epoch_end(self) -> None:
        computed = {kind: self.sums[kind].compute() for kind in self.kinds}  # every rank syncs
        failures = sorted(f for part in gather_objects(self.failures) for f in part)
        unlabelled = sum(gather_objects(self.unlabelled))
        self.result = {
            "targets": {k: v[0].float().cpu() for k, v in computed.items()},
            "counts": {k: v[1].cpu() for k, v in computed.items()},
            "failures": failures,
            "unlabelled": unlabelled,
        }


def _check_output(path: str) -> Path:
    output = Path(path).expanduser()
    if output.is_dir():
        raise BenchmarkError(f"--output {path}: is a folder; pass a file name such as targets.pt")
    parent = output.parent if str(output.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise BenchmarkError(f"--output {path}: {parent} is not a folder")
    return output


def run_targets(namespace: argparse.Namespace, run_config) -> Path | None:
    """The ``targets`` command; returns the written file (on rank 0). ``run_config``
    resolves the shared run options (``benchmark.commands.targets.run_config``)."""
    from benchmark.datamodules import imagenet_classes
    from benchmark.devices import apply_run_settings, parse_devices
    from benchmark.models import build_classifier
    from benchmark.progress import ImageProgressBar
    from benchmark.run_data import datamodule_of

    kinds = parse_kinds(namespace.kind)
    output = _check_output(namespace.targets_output)
    o = run_config(namespace).options  # the same checks and messages as test
    if o.data is None:
        raise BenchmarkError("targets needs --data DIR: a folder of labelled images (any layout of --data)")
    apply_run_settings(o)
    datamodule = datamodule_of(o)
    labelled = sum(s.label >= 0 for s in datamodule.samples)
    if labelled == 0:
        raise BenchmarkError(
            f"--data {o.data}: none of its {len(datamodule.samples)} images has a class; use an "
            "ImageFolder (<wnid>/*) or <wnid>_*.JPEG layout"
        )
    chosen = choose_class_images(datamodule.samples, o.seed)
    if kinds == ["class"]:
        datamodule.restrict(list(chosen.values()))  # only the chosen images are read
    pl.seed_everything(o.seed, workers=True, verbose=False)
    classifier = build_classifier(o.model, o.model_weights, mean=o.model_mean, std=o.model_std, execution=o.execution)
    from benchmark.models.features import FeatureExtractor

    with torch.no_grad():
        dim = FeatureExtractor(classifier, namespace.features)(torch.zeros(1, 3, 224, 224)).shape[1]
    module = TargetFeatures(classifier, namespace.features, kinds, chosen, dim)
    trainer = pl.Trainer(
        accelerator=o.accelerator,
        devices=parse_devices(o.devices),
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        default_root_dir=str(output.parent),
        callbacks=[ImageProgressBar(len(datamodule.samples), label=f"targets of {o.model}")],
        enable_progress_bar=not o.quiet,
    )
    print(
        f"targets ({','.join(kinds)}) of {o.model} {namespace.features}: {datamodule.describe()}; "
        f"{trainer.world_size} process(es)",
        file=sys.stderr,
        flush=True,
    )
    trainer.test(module, datamodule=datamodule, verbose=False)
    if trainer.global_rank != 0:
        return None
    result = module.result
    names = imagenet_classes()
    files = [""] * NUM_CLASSES
    for label, sample_id in chosen.items():
        files[label] = next(s.file for s in datamodule.samples if s.sample_id == sample_id)
    content = TargetsFile(
        path=str(output),
        model=o.model,
        features=namespace.features,
        kinds=kinds,
        targets=result["targets"],
        counts=result["counts"],
        files=files,
        data=datamodule.describe(),
        seed=o.seed,
    )
    write_targets_file(output, content)
    for sample_id, reason in result["failures"]:
        file = next((s.file for s in datamodule.samples if s.sample_id == sample_id), sample_id)
        print(f"skipped {file}: {reason}", file=sys.stderr)
    for kind in kinds:
        counts = result["counts"][kind]
        covered = int((counts > 0).sum())
        print(
            f"{kind}: {covered} classes, {int(counts.sum())} images "
            f"(e.g. {names.names[int(counts.argmax())]}: {int(counts.max())})"
        )
    if result["unlabelled"]:
        print(f"left out {result['unlabelled']} unlabelled image(s)")
    if result["failures"]:
        print(f"skipped {len(result['failures'])} unreadable image(s)")
    print(f"targets file: {output}")
    return output
