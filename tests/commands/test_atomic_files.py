"""A run killed while it writes its final files never leaves a torn one: each file is written
under a temporary name and renamed over the final one."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

import benchmark.files
from benchmark import outputs, table
from benchmark.files import atomic_open, partial_path, write_text_atomic


def test_a_failed_write_leaves_the_old_file_whole_and_no_partial_file(tmp_path):
    target = tmp_path / "results.json"
    target.write_text('{"complete": true}\n')
    with pytest.raises(RuntimeError):
        with atomic_open(target) as handle:
            handle.write('{"half": ')
            raise RuntimeError("killed in the middle of the write")
    assert target.read_text() == '{"complete": true}\n'
    assert list(tmp_path.iterdir()) == [target]


def test_the_partial_name_keeps_the_extension_for_writers_that_read_it(tmp_path):
    assert partial_path(tmp_path / "overlays.png") == tmp_path / ".overlays.partial.png"
    write_text_atomic(tmp_path / "a.txt", "x")
    assert (tmp_path / "a.txt").read_text() == "x" and not partial_path(tmp_path / "a.txt").exists()


class _Results:
    """Run results whose fourth row cannot be formatted: the write fails half way."""

    sample_ids = [0, 1, 2, 3]
    metrics = {"avg_drop": 0.0}
    columns = {
        "label": [1, 2, 3, 4],
        "pred_class": [1, 2, 3, 4],
        "pred_prob": [0.5] * 4,
        "avg_drop": [1.0, 2.0, 3.0, "x"],
        "ms_per_map": [1.0] * 4,
        "map_problem": [0] * 4,
    }


def test_per_sample_csv_killed_half_way_keeps_the_previous_file(tmp_path):
    path = tmp_path / "per_sample.csv"
    path.write_text("the previous, complete file\n")
    run = SimpleNamespace(extra_columns=(), samples=[SimpleNamespace(file=f"img{i}.JPEG") for i in range(4)])
    with pytest.raises(TypeError):
        outputs.write_per_sample_csv(path, run, _Results())
    assert path.read_text() == "the previous, complete file\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["per_sample.csv"]


def test_results_per_sample_and_table_files_are_renamed_into_place(tmp_path, monkeypatch):
    renamed = []
    real_replace = os.replace

    def recording_replace(source, target):
        renamed.append(os.path.basename(target))
        real_replace(source, target)

    monkeypatch.setattr(benchmark.files.os, "replace", recording_replace)
    outputs.write_results_json(tmp_path / "results.json", {"metrics": {}})
    content = {
        "method": "gradcam",
        "images": 1,
        "data": "d",
        "metrics": {"avg_drop": 1.0, "avg_increase": 0.0, "coherency": 90.0, "insertion": 50.0, "deletion": 10.0},
        "ci95": {},
        "ms_per_map": 2.0,
        "undefined": {},
    }
    table.write_table(tmp_path, [content], "efficientnet_lite0")
    assert renamed == ["results.json", "table.md", "table.csv", "significance.csv", "table.json"]
