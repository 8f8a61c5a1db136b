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


def test_a_batch_s_maps_are_on_disk_before_its_records(tmp_path):
    """A kill between writing a batch's records and its maps resumed images whose maps were
    lost (maps.pt then lacked them: seen in CI on 2026-12-01). The recorder saves maps first."""
    from types import SimpleNamespace

    from benchmark.methods.base import BatchOutcome
    from benchmark.records import RunRecorder

    recorder = RunRecorder(tmp_path)
    recorder.setup(
        SimpleNamespace(global_rank=0, world_size=1, strategy=SimpleNamespace(broadcast=lambda x, src: x)), None, "test"
    )
    maps_when_records_written = []
    write = recorder._writer.write

    def write_checking(records):
        for record in records:
            maps_when_records_written.append((tmp_path / "records" / "maps" / f"{record.sample_id}.pt").is_file())
        write(records)

    recorder._writer.write = write_checking
    outcome = BatchOutcome(
        sample_ids=[4, 5],
        columns={"label": [1.0, 2.0]},
        metrics={},
        curves={},
        kept={4: (torch.rand(8, 8), None), 5: (torch.rand(8, 8), None)},
    )
    recorder.on_test_batch_end(None, None, outcome, None, 0)
    recorder.teardown(None, None, "test")
    assert maps_when_records_written == [True, True]
