"""``explanations``: the x * M images of saved maps, for another tool to explain (Coherency).

    python -m benchmark explanations --data DIR --maps FILE --output OUT [--per-class N --limit N ...]

For every image of DIR that has a map in FILE (any format ``--method maps`` reads), OUT gets
``<image stem>.png``: the 224x224 crop the benchmark scores, times the map (black = 0), as an
8-bit RGB PNG. Explain those images with the tool that made the maps, **at that size and without
resizing or cropping them again**, and pass the result as ``--method.coherency_maps``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.core.errors import BenchmarkError


def run_explanations(namespace: argparse.Namespace) -> Path:
    from benchmark.datamodules import ImageNetDataModule
    from benchmark.methods.saved_maps import SavedMapsConfig, match_maps
    from benchmark.pictures import save_png, to_uint8
    from benchmark.run_options import check_output_folder

    SavedMapsConfig(path=namespace.maps, channels=namespace.channels).validate()
    check_output_folder(namespace.output)
    datamodule = ImageNetDataModule(data=namespace.data, per_class=namespace.per_class, limit=namespace.limit)
    crop = datamodule.dataset.crop
    matched = match_maps(
        namespace.maps, "path", datamodule.samples, (crop, crop), namespace.channels, namespace.allow_missing
    )
    for note in matched.notes("path"):
        print(f"note: {note}", file=sys.stderr)
    output = Path(namespace.output)
    output.mkdir(parents=True, exist_ok=True)
    for position, sample in enumerate(datamodule.samples):
        if sample.sample_id not in matched.maps:
            continue
        item = datamodule.dataset[position]
        if item["error"] is not None:
            raise BenchmarkError(f"{sample.file}: {item['error']}")
        explanation = item["image"] * matched.maps[sample.sample_id][None]
        save_png(to_uint8(explanation), output / f"{Path(sample.file).stem}.png")
    print(f"explanations: {output} ({len(matched.maps)} images, {crop}x{crop}, 8-bit x * M)")
    return output
