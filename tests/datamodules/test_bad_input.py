"""Bad data and bad options: every problem is named with its file and fix; a run goes on past
bad files and counts them; options out of range fail before any model work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.core.errors import BenchmarkError
from benchmark.datamodules import ImageNetDataModule
from benchmark.datamodules.loading import ImageLoadError, load_rgb
from tests.support.bad_inputs import make_bad_folder, write_huge_jpeg
from tests.support.cli_runs import REPO, run_in_process

FAST_GRADCAM = ["--method", "gradcam", "--metrics.n_steps", "4", "--logger", "none", "--overlay-images", "2"]


def _run_folder(out: str) -> Path:
    return Path([line for line in out.splitlines() if line.startswith("run folder: ")][-1][len("run folder: ") :])


@pytest.mark.slow
def test_a_run_goes_on_past_every_bad_file_and_names_each(tmp_path):
    expected = make_bad_folder(tmp_path / "data")
    run = run_in_process(["test", "--data", str(tmp_path / "data"), "--output", str(tmp_path / "runs"), *FAST_GRADCAM])
    assert run.code == 0, run.err
    results = json.loads((_run_folder(run.out) / "results.json").read_text())
    bad = {name: reason for name, reason in expected.items() if reason}
    good = [name for name, reason in expected.items() if reason is None]
    for name, reason in bad.items():
        assert f"skipped {tmp_path / 'data' / name}: {reason}" in run.err, (name, run.err)
    assert results["skipped"] == len(bad)
    assert {Path(f["file"]).name: f["reason"] for f in results["skipped_files"]}.keys() == bad.keys()
    assert results["images"] == len(good)  # alpha, CMYK, 16-bit, palette, grayscale are converted
    assert all(value is not None for value in results["metrics"].values())


def test_an_unreadable_file_is_named(tmp_path, monkeypatch):
    # The tests run as root, for whom chmod 000 still reads: make the open itself refuse.
    expected = make_bad_folder(tmp_path)
    good = next(name for name, reason in expected.items() if reason is None)
    import benchmark.datamodules.loading as loading

    real_open = loading.Image.open

    def refusing_open(path, *args, **kwargs):
        if str(path).endswith(good):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(loading.Image, "open", refusing_open)
    with pytest.raises(ImageLoadError, match="permission denied"):
        load_rgb(str(tmp_path / good))


def test_a_huge_jpeg_is_decoded_downscaled_without_a_memory_blow_up(tmp_path):
    path = write_huge_jpeg(tmp_path / "n01440764_huge.JPEG")
    script = (
        "import resource, sys\n"
        "from datamodules.loading import load_rgb, make_transform\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "image = load_rgb(sys.argv[1], min_size=256)\n"
        "tensor = make_transform()(image)\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(image.size[0], image.size[1], tuple(tensor.shape), (after - before) // 1024)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    parts = done.stdout.split()
    width, height, grown_mib = int(parts[0]), int(parts[1]), int(parts[-1])
    # JPEG draft mode decodes at 1/8 scale: 1250 x 1250, not 10000 x 10000 (300 MB as RGB).
    assert (width, height) == (1250, 1250)
    assert "(3, 224, 224)" in done.stdout
    assert grown_mib < 60, f"loading grew the process by {grown_mib} MiB"


def test_non_imagenet_folder_names_are_a_clear_error(tmp_path, capsys):
    for folder in ("cats", "dogs"):
        (tmp_path / folder).mkdir()
        make_bad_folder(tmp_path / folder)
    assert main(["test", "--data", str(tmp_path), "--output", str(tmp_path / "out")]) == 2
    message = capsys.readouterr().err
    assert "cats, dogs" in message and "not named by ImageNet wnids" in message and "rename" in message


def test_wnids_outside_imagenet_are_evaluated_unlabelled_with_a_note(tmp_path):
    make_bad_folder(tmp_path / "n01440764")
    (tmp_path / "n99999999").mkdir()
    from tests.support.helpers import write_random_jpeg

    write_random_jpeg(tmp_path / "n99999999" / "a.JPEG", 1)
    dm = ImageNetDataModule(str(tmp_path), per_class=None)
    assert dm.discovery.notes == ("n99999999: not an ImageNet-1k class; its 1 image(s) are evaluated unlabelled",)
    assert [s.label for s in dm.samples if s.file.endswith("a.JPEG")] == [-1]


def test_ground_truth_with_a_missing_and_a_malformed_line(tmp_path):
    from tests.support.helpers import write_random_jpeg

    for i in (1, 2, 3, 4):
        write_random_jpeg(tmp_path / f"ILSVRC2012_val_{i:08d}.JPEG", i)
    (tmp_path / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\n"
        "ILSVRC2012_val_00000001,n01440764 1 2 30 40\n"
        "ILSVRC2012_val_00000002,n01443537 1 2 x 40\n"  # malformed: a coordinate is not a number
        "ILSVRC2012_val_00000003,n01484850 1 2 30 40\n"
    )  # image 4 has no line at all
    dm = ImageNetDataModule(str(tmp_path), per_class=None)
    assert dm.discovery.notes == (
        "LOC_val_solution.csv line 3: box coordinates are not integers; the line is skipped",
        "2 image(s) have no line in LOC_val_solution.csv (first: ILSVRC2012_val_00000002.JPEG); "
        "they are evaluated unlabelled",
    )
    labels = {Path(s.file).name: s.label for s in dm.samples}
    assert labels == {
        "ILSVRC2012_val_00000001.JPEG": 0,
        "ILSVRC2012_val_00000003.JPEG": 2,
        "ILSVRC2012_val_00000002.JPEG": -1,
        "ILSVRC2012_val_00000004.JPEG": -1,
    }
    (tmp_path / "LOC_val_solution.csv").write_text("Image,Prediction\nfoo,bar\n")
    with pytest.raises(BenchmarkError, match="line 1: header is not ImageId,PredictionString"):
        ImageNetDataModule(str(tmp_path), per_class=None)


def test_a_config_file_key_that_does_not_exist(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("method:\n  name: lots\n  iteration: 5\n")
    assert main(["test", "--config", str(config), "--output", str(tmp_path / "o")]) == 2
    assert "no method has a parameter 'iteration'" in capsys.readouterr().err
