"""A kept map's file (records/maps/<id>.pt) holds that sample's map and image only: a row of a
batch is a view, and torch.save writes a view's whole storage (before 2026-12-01 every file held
the whole batch: 6.4 MB per image at batch 8 instead of 0.8 MB)."""

from __future__ import annotations

import torch

from benchmark.records import RecordWriter, read_saved_maps


def test_a_saved_map_file_holds_one_sample_not_its_batch(tmp_path):
    images = torch.rand(8, 3, 64, 64)
    maps = torch.rand(8, 64, 64)
    writer = RecordWriter(tmp_path, rank=0)
    try:
        for i in range(8):
            writer.save_map(i, maps[i], images[i])
    finally:
        writer.close()
    one_sample = (3 * 64 * 64 + 64 * 64) * 4
    for i in range(8):
        assert (tmp_path / "records" / "maps" / f"{i}.pt").stat().st_size < 1.5 * one_sample
    saved = read_saved_maps(tmp_path, [3])
    assert torch.equal(saved[3]["map"], maps[3]) and torch.equal(saved[3]["image"], images[3])
