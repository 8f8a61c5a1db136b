"""Peak memory of the Insertion/Deletion curves for several ``n_steps``: it must not grow
with the number of steps (only with ``chunk_size``). Each measurement runs in a fresh
process and reads its peak resident set (CPU) or ``torch.cuda.max_memory_allocated``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

_CHILD = r"""
import json, resource, sys, torch
from benchmark.models import build_classifier
from benchmark.datamodules import ImageNetDataModule
from benchmark.metrics.functional.insertion_deletion import insertion_deletion_curves
n_steps, chunk, device = int(sys.argv[1]), int(sys.argv[2]), torch.device(sys.argv[3])
model = build_classifier("efficientnet_lite0").to(device)
images = next(iter(ImageNetDataModule(limit=2, batch_size=2).test_dataloader()))["image"].to(device)
maps = torch.rand(2, 224, 224, device=device)
classes = torch.zeros(2, dtype=torch.long, device=device)
score = lambda x: model(x).softmax(-1)
with torch.no_grad():
    model(images[:1].repeat(chunk, 1, 1, 1))  # the model's own working set at this chunk
if device.type == "cuda":
    torch.cuda.reset_peak_memory_stats(device)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
insertion_deletion_curves(score, images, maps, classes, n_steps=n_steps, chunk_size=chunk)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else (after - before) * 1024
print(json.dumps({"n_steps": n_steps, "chunk_size": chunk, "peak_bytes": peak, "process_peak_bytes": after * 1024}))
"""


def curve_memory(n_steps: int, chunk_size: int, device: str = "cpu") -> dict:
    # Fixed mmap threshold: glibc otherwise raises it after each free of a large block and
    # keeps later ones in a fragmenting heap, so the peak RSS would measure the allocator.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1 << 20)}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(n_steps), str(chunk_size), device],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    device = sys.argv[1] if len(sys.argv) > 1 else "cpu"
    for chunk in (8, 32):
        for n_steps in (28, 112, 224):
            row = curve_memory(n_steps, chunk, device)
            print(
                f"chunk {chunk:>3}  n_steps {n_steps:>3}: peak growth {row['peak_bytes'] / 2**20:8.1f} MiB, "
                f"process peak {row['process_peak_bytes'] / 2**20:8.1f} MiB"
            )


if __name__ == "__main__":
    main()
