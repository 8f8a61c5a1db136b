"""A disk that fills up mid-run: one ``error:`` line naming the file, the space left and the
command that finishes the run; the records written so far are kept whole and resume.

The disk is made full by a file whose writes raise ``OSError(ENOSPC)`` once its bytes run out,
so ``torch.save`` fails as it does on a full disk (a ``RuntimeError`` whose context is that
``OSError``); where this process may mount a small tmpfs, a real full disk is tried too."""

from __future__ import annotations

import errno
import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from benchmark.cli import main
from benchmark.files import DiskFull, is_disk_full, write_text_atomic
from benchmark.records import RecordWriter, SampleRecord, read_records

NO_SPACE = os.strerror(errno.ENOSPC)


class _FullDisk(io.RawIOBase):
    """``handle`` on a disk with ``left`` bytes free, written as the operating system writes:
    what fits, then ENOSPC."""

    def __init__(self, handle, left: int) -> None:
        super().__init__()
        self.handle, self.left = handle, left

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if not self.left:
            raise OSError(errno.ENOSPC, NO_SPACE)
        fits = memoryview(data)[: self.left]
        self.left -= len(fits)
        return self.handle.write(fits)


def test_torch_saves_error_on_a_full_disk_is_told_apart():
    """``torch.save`` into a Python file on a full disk raises the C++ writer's RuntimeError,
    the file's OSError as its context; other errors are not a full disk."""
    with pytest.raises(RuntimeError) as caught, open(os.devnull, "wb") as handle:
        torch.save({"map": torch.rand(1000)}, _FullDisk(handle, 100))
    assert "No space left" not in str(caught.value)  # only the context says so
    assert is_disk_full(caught.value)
    assert is_disk_full(OSError(errno.ENOSPC, NO_SPACE))
    assert is_disk_full(RuntimeError(f"write failed: {NO_SPACE}"))
    assert not is_disk_full(RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))


def test_a_batch_the_disk_refuses_leaves_the_records_before_it_whole(tmp_path):
    writer = RecordWriter(tmp_path, rank=0)
    writer.write([SampleRecord(0, failed="unreadable"), SampleRecord(1, failed="unreadable")])
    real = writer._handle
    writer._handle = _FullDisk(real, left=30)  # half of the next batch fits
    writer._handle.seek, writer._handle.truncate, writer._handle.fileno = real.seek, real.truncate, real.fileno
    with pytest.raises(DiskFull) as caught:
        writer.write([SampleRecord(2, failed="unreadable"), SampleRecord(3, failed="unreadable")])
    writer._handle = real
    writer.close()
    assert caught.value.path == writer.path and str(caught.value).startswith(
        f"no space left on the disk writing {writer.path}"
    )
    assert writer.path.read_text().endswith("\n") and sorted(read_records(tmp_path)) == [0, 1]


ARGS = ["--method", "gradcam", "--limit", "4", "--batch-size", "2", "--metrics.n_steps", "4"]
ARGS += ["--logger", "none", "--quiet", "--save-maps"]


@pytest.mark.slow
def test_a_disk_full_of_maps_is_one_error_line_and_the_run_resumes(tmp_path, monkeypatch, capsys):
    """The disk fills up at the second batch's first map: one error line, the first batch's
    records kept; once there is space, ``--resume`` finishes the run."""
    real_save, maps_saved = torch.save, []

    def save(obj, f, *args, **kwargs):
        if Path(getattr(f, "name", "")).parent.name == "maps":
            maps_saved.append(f.name)
            if len(maps_saved) > 2:  # the disk is full from the third map on
                return real_save(obj, _FullDisk(f, 1000), *args, **kwargs)
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    assert main(["test", *ARGS, "--output", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    run_dir = next((tmp_path / "runs").iterdir())
    assert not any("Traceback" in line for line in err), err
    err = [line for line in err if line.startswith("error:")]  # the run's own lines before it aside
    assert len(err) == 1, err
    assert err[0].startswith(f"error: no space left on the disk writing {run_dir / 'records' / 'maps' / '2.pt'} (")
    assert "free on that disk now); 2 of 4 images are recorded in" in err[0]
    assert err[0].endswith(f"free some space and resume with: python -m benchmark test --resume {run_dir}")
    assert sorted(read_records(run_dir)) == [0, 1]
    assert not list((run_dir / "records" / "maps").glob(".*"))  # no partial file left
    monkeypatch.setattr(torch, "save", real_save)
    assert main(["test", "--resume", str(run_dir)]) == 0
    assert (run_dir / "results.json").is_file() and sorted(read_records(run_dir)) == [0, 1, 2, 3]


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 64 kB tmpfs, where this process may mount one (root, outside most containers)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("needs root and mount")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_real_full_disk_is_disk_full_for_every_writer(tiny_tmpfs):
    """On a real full disk: an atomic text file keeps its old content, and a kept map's
    ``torch.save`` (the C++ writer's error) is told apart too; no partial file is left."""
    target = write_text_atomic(tiny_tmpfs / "results.json", "old\n")
    with pytest.raises(DiskFull) as caught:
        write_text_atomic(target, "x" * 200_000)
    assert caught.value.path == target and target.read_text() == "old\n"
    writer = RecordWriter(tiny_tmpfs / "run", rank=0)
    with pytest.raises(DiskFull) as caught:
        writer.save_map(7, torch.rand(224, 224), torch.rand(3, 224, 224))
    writer.close()
    assert caught.value.path == writer.folder / "maps" / "7.pt"
    assert sorted(p.name for p in tiny_tmpfs.rglob("*") if p.is_file()) == ["rank0.jsonl", "results.json"]
