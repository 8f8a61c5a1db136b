"""Scoring maps computed elsewhere (``--method maps --method.path FILE``).

FILE is one of

- this benchmark's own ``maps.pt`` (``sample_ids``, ``maps``, and ``files`` since 2026-12);
- a ``.pt`` or ``.npz`` holding ``files`` (image file names) and ``maps`` (``[N, H, W]``,
  ``[N, 1, H, W]`` or ``[N, C, H, W]``);
- a folder of ``<image stem>.npy`` / ``.pt`` / ``.png`` files, one map each.

Maps are matched to the images by file stem. Each map is reduced to one channel
(``--method.channels sum_abs|mean|max``; required for a multi-channel map: no guessing),
resized bilinearly to the input crop when its size differs, and min-max normalized per image
as the built-in methods' maps are. Coherency needs the method itself on x * M: it is reported as
not computable unless ``--method.coherency_maps FILE`` gives the maps of x * M (same formats;
``python -m benchmark explanations`` writes the x * M images to compute them from).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from benchmark.core.errors import BenchmarkError
from benchmark.methods.base import Explainer, MethodConfig
from benchmark.methods.registry import register_method
from benchmark.metrics.functional.image import minmax_normalize

CHANNEL_REDUCTIONS = ("sum_abs", "mean", "max")
MAP_SUFFIXES = (".npy", ".pt", ".png")
COHERENCY_REASON = (
    "saved maps: Coherency needs the method's map of x * M, which a file cannot give; pass "
    "--method.coherency_maps FILE (make the x * M images with: python -m benchmark explanations)"
)


@dataclass
class SavedMapsConfig(MethodConfig):
    """Where the maps are and how to read them (``--method.<name>``)."""

    path: str | None = field(
        default=None,
        metadata={
            "help": "maps to score: maps.pt, a .pt/.npz with files and maps, or a folder of <image stem>.npy/.pt/.png"
        },
    )
    channels: str | None = field(
        default=None,
        metadata={"help": "how a multi-channel map becomes one: sum_abs, mean or max (no default)"},
    )
    coherency_maps: str | None = field(
        default=None,
        metadata={"help": "the maps of the x * M images (same formats), for Coherency"},
    )
    allow_missing: bool = field(
        default=False,
        metadata={
            "help": "score the images that have a map when some have none (or maps have no "
            "image); without it that is an error"
        },
    )

    def validate(self) -> None:
        if not self.path:
            raise BenchmarkError("--method maps needs --method.path FILE (maps.pt, a .pt/.npz or a folder of maps)")
        if self.channels is not None and self.channels not in CHANNEL_REDUCTIONS:
            raise BenchmarkError(
                f"--method.channels {self.channels!r} is unknown; choose one of: {', '.join(CHANNEL_REDUCTIONS)}"
            )
        for option, path in (("path", self.path), ("coherency_maps", self.coherency_maps)):
            if path is not None and not Path(path).expanduser().exists():
                raise BenchmarkError(f"--method.{option} {path}: no such file or folder")


# -- reading -----------------------------------------------------------------------------------


def _stem(name: str) -> str:
    """The key maps and images are matched by: the file name without its extension."""
    path = Path(str(name))
    return path.stem if path.suffix else path.name


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def _as_array(value: Any, where: str) -> np.ndarray:
    if isinstance(value, Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value
    raise BenchmarkError(f"{where}: 'maps' is a {type(value).__name__}, not an array or tensor")


def read_map_file(path: Path, option: str) -> dict[str, np.ndarray]:
    """``{image stem: map array}`` from one ``.pt``/``.npz`` file (see the module doc)."""
    where = f"--method.{option} {path}"
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                content = {key: data[key] for key in data.files}
        else:
            content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise BenchmarkError(f"{where}: cannot be read ({_first_line(error)})") from None
    if not isinstance(content, dict) or "maps" not in content:
        raise BenchmarkError(f"{where}: expected a mapping with 'maps' and 'files' (or this benchmark's maps.pt)")
    maps = _as_array(content["maps"], where)
    files = content.get("files")
    if files is None:
        raise BenchmarkError(
            f"{where}: holds no 'files' (the image file name of each map); a maps.pt written before 2026-12 has "
            "only sample ids: write it again with --save-maps, or save files and maps together"
        )
    files = [str(f) for f in (files.tolist() if isinstance(files, np.ndarray) else files)]
    if maps.ndim not in (3, 4) or len(files) != maps.shape[0]:
        raise BenchmarkError(
            f"{where}: maps of shape {tuple(maps.shape)} for {len(files)} file names; expected [N, H, W], "
            "[N, 1, H, W] or [N, C, H, W] with one name per map"
        )
    return {_stem(name): maps[i] for i, name in enumerate(files)}


def read_map_folder(folder: Path, option: str) -> dict[str, Path]:
    """``{image stem: file}`` of a folder of maps (read lazily)."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in MAP_SUFFIXES)
    if not files:
        raise BenchmarkError(f"--method.{option} {folder}: no .npy, .pt or .png maps in this folder")
    return {p.stem: p for p in files}


def load_one(value: np.ndarray | Path, where: str) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    try:
        if value.suffix.lower() == ".npy":
            return np.load(value, allow_pickle=False)
        if value.suffix.lower() == ".pt":
            return _as_array(torch.load(value, map_location="cpu", weights_only=True), where)
        from PIL import Image

        with Image.open(value) as picture:
            array = np.asarray(picture.convert("L") if picture.mode not in ("L", "I", "I;16", "F") else picture)
        return array.astype(np.float32)
    except BenchmarkError:
        raise
    except Exception as error:
        raise BenchmarkError(f"{where}: cannot be read ({_first_line(error)})") from None


def to_map(array: np.ndarray, size: tuple[int, int], channels: str | None, where: str) -> Tensor:
    """One map ``[H, W]`` in [0, 1] at ``size``: channels reduced, resized, min-max normalized."""
    tensor = torch.from_numpy(np.array(array, dtype=np.float64))
    if tensor.ndim == 3:
        if tensor.shape[0] == 1:
            tensor = tensor[0]
        elif channels is None:
            raise BenchmarkError(
                f"{where}: a map with {tensor.shape[0]} channels; say how to make one of them with "
                f"--method.channels {'|'.join(CHANNEL_REDUCTIONS)}"
            )
        else:
            tensor = {"sum_abs": lambda t: t.abs().sum(0), "mean": lambda t: t.mean(0), "max": lambda t: t.amax(0)}[
                channels
            ](tensor)
    if tensor.ndim != 2 or min(tensor.shape) < 1:
        raise BenchmarkError(f"{where}: a map of shape {tuple(array.shape)}; expected [H, W], [1, H, W] or [C, H, W]")
    if not torch.isfinite(tensor).all():
        raise BenchmarkError(f"{where}: the map holds NaN or infinite values")
    if tuple(tensor.shape) != tuple(size):
        tensor = F.interpolate(tensor[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
    return minmax_normalize(tensor.float())


@dataclass
class MatchedMaps:
    """The maps of the run's images, by sample id, and what did not match."""

    maps: dict[int, Tensor]
    images_without_map: list[str]
    maps_without_image: list[str]

    def notes(self, option: str) -> list[str]:
        notes = []
        if self.images_without_map:
            notes.append(
                f"{len(self.images_without_map)} image(s) have no map in --method.{option} "
                f"(first: {self.images_without_map[0]}); they are skipped"
            )
        if self.maps_without_image:
            notes.append(
                f"{len(self.maps_without_image)} map(s) in --method.{option} have no image "
                f"(first: {self.maps_without_image[0]}); they are ignored"
            )
        return notes


def match_maps(
    path: str, option: str, samples, size: tuple[int, int], channels: str | None, allow_missing: bool
) -> MatchedMaps:
    """Read the maps at ``path`` and pair them with ``samples`` by file stem; every map is read and
    checked here, before any model work."""
    source = Path(path).expanduser()
    index = read_map_folder(source, option) if source.is_dir() else read_map_file(source, option)
    by_stem = {_stem(Path(s.file).name): s for s in samples}
    without_map = [Path(s.file).name for stem, s in by_stem.items() if stem not in index]
    without_image = [stem for stem in index if stem not in by_stem]
    if (without_map or without_image) and not allow_missing:
        problems = []
        if without_map:
            problems.append(f"{len(without_map)} image(s) have no map (first: {without_map[0]})")
        if without_image:
            problems.append(f"{len(without_image)} map(s) have no image (first: {without_image[0]})")
        raise BenchmarkError(
            f"--method.{option} {path}: {'; '.join(problems)}; match them by file stem, or pass "
            "--method.allow_missing true to score only the images that have a map"
        )
    maps = {
        s.sample_id: to_map(
            load_one(index[stem], f"--method.{option} {path}: map of {stem}"),
            size,
            channels,
            f"--method.{option} {path}: map of {stem}",
        )
        for stem, s in by_stem.items()
        if stem in index
    }
    return MatchedMaps(maps, without_map, without_image)


# -- the method --------------------------------------------------------------------------------


@register_method("maps")
class SavedMaps(Explainer):
    """Saved maps: scores maps computed elsewhere, ``M = minmax(reduce_channels(resize(saved map)))``.

    No formula of its own: whatever method made the maps (Captum, grad-cam, torchcam, a paper's
    release); the benchmark's metrics are those of Petsiuk et al. 2018 and Chattopadhyay et al.
    2018 as for every method. Coherency (Poppi et al. 2021) needs ``--method.coherency_maps``.
    """

    config_class = SavedMapsConfig

    def __init__(self, classifier, config: SavedMapsConfig | None = None, **kwargs) -> None:
        super().__init__(classifier, config, **kwargs)
        self._maps: dict[int, Tensor] = {}
        self._coherency_maps: dict[int, Tensor] = {}
        if self.config.coherency_maps is None:
            self.scorer.mark_unavailable("explain", COHERENCY_REASON)
        self.scorer.mark_unavailable(
            "method_for_inputs", "maps computed elsewhere: the method cannot be asked about other images or classes"
        )

    @classmethod
    def check_data(cls, config: SavedMapsConfig, samples, size: tuple[int, int]) -> list[str]:
        """Read and check every map against the run's images before any model work."""
        notes = match_maps(config.path, "path", samples, size, config.channels, config.allow_missing).notes("path")
        if config.coherency_maps is not None:
            match_maps(config.coherency_maps, "coherency_maps", samples, size, config.channels, config.allow_missing)
        return notes

    def on_test_start(self) -> None:
        super().on_test_start()
        samples = self.trainer.datamodule.samples
        size = tuple(self.trainer.datamodule.dataset.crop for _ in range(2))
        config = self.config
        self._maps = match_maps(config.path, "path", samples, size, config.channels, config.allow_missing).maps
        if config.coherency_maps is not None:
            self._coherency_maps = match_maps(
                config.coherency_maps, "coherency_maps", samples, size, config.channels, config.allow_missing
            ).maps

    def skip_sample(self, sample_id: int) -> str | None:
        return None if sample_id in self._maps else "no saved map for this image"

    def _lookup(self, table: dict[int, Tensor], images: Tensor) -> Tensor:
        ids = self.current_sample_ids.tolist()
        return torch.stack([table[i] for i in ids]).to(device=images.device, dtype=images.dtype)

    def worst_case_passes(self) -> tuple[int, int]:
        """Reading maps passes nothing through the model (``--estimate``)."""
        return 0, 0

    def explain(self, images: Tensor, classes: Tensor) -> Tensor:
        return self._lookup(self._maps, images)

    def explain_maps(self, images: Tensor, classes: Tensor) -> Tensor:
        """For Coherency: the saved maps of x * M."""
        return self._lookup(self._coherency_maps, images)
