"""LOTS class/mean/image targets: the targets command, the checks, and that LOTS uses them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmark.cli import build_parser, config_from_args, main
from benchmark.core.errors import BenchmarkError
from benchmark.datamodules import load_rgb, make_transform
from benchmark.methods.lots import lots_map
from benchmark.methods.lots_explainer import LOTS, LOTSConfig
from benchmark.methods.lots_targets import read_targets_file
from tests.support.helpers import LinearModel, write_random_jpeg

WNIDS = ("n01440764", "n01443537")  # classes 0 and 1


@pytest.fixture(scope="module")
def labelled_folder(tmp_path_factory):
    """Two classes x two small images (ImageFolder layout), and their targets file."""
    root = tmp_path_factory.mktemp("train")
    for c, wnid in enumerate(WNIDS):
        (root / wnid).mkdir()
        for j in range(2):
            write_random_jpeg(root / wnid / f"img{j}.JPEG", 10 * c + j, size=(64, 48))
    output = root.parent / "targets.pt"
    assert (
        main(
            [
                "targets",
                "--data",
                str(root),
                "--kind",
                "class,mean",
                "--output",
                str(output),
                "--seed",
                "3",
                "--batch-size",
                "3",
            ]
        )
        == 0
    )
    return root, output


@pytest.fixture(scope="module")
def classifier():
    from benchmark.models import build_classifier

    return build_classifier("efficientnet_lite0")


def _features(classifier, files):
    images = torch.stack([make_transform()(load_rgb(str(f))) for f in files])
    with torch.no_grad():
        return classifier(images)


@pytest.mark.slow
def test_mean_and_class_targets_equal_features_computed_by_hand(labelled_folder, classifier):
    root, output = labelled_folder
    targets = read_targets_file(output)
    assert targets.kinds == ["class", "mean"] and targets.model == "efficientnet_lite0"
    assert targets.features == "logits" and targets.seed == 3
    for c, wnid in enumerate(WNIDS):
        files = sorted((root / wnid).iterdir())
        by_hand = _features(classifier, files)
        torch.testing.assert_close(targets.targets["mean"][c], by_hand.mean(dim=0), rtol=0, atol=1e-5)
        chosen = Path(targets.files[c])
        assert chosen in files
        torch.testing.assert_close(targets.targets["class"][c], by_hand[files.index(chosen)], rtol=0, atol=1e-5)
    assert targets.counts["mean"][:3].tolist() == [2, 2, 0] and targets.counts["class"][:3].tolist() == [1, 1, 0]
    assert float(targets.targets["mean"][2:].abs().sum()) == 0.0  # classes without images: zero rows


@pytest.mark.slow
def test_lots_towards_the_own_class_mean_moves_the_features_there(labelled_folder, classifier):
    root, output = labelled_folder
    lots = LOTS(
        classifier,
        LOTSConfig(target="mean", targets_file=str(output), iterations=4, kernel_size=9),
        show_progress=False,
    )
    image = make_transform()(load_rgb(str(root / WNIDS[1] / "img0.JPEG")))[None]
    # the label (class 1) decides the target, whatever the model predicts
    classes = lots.choose_classes({"label": torch.tensor([1])}, torch.tensor([7]))
    assert classes.tolist() == [1]
    target = read_targets_file(output).targets["mean"][1]
    with torch.no_grad():
        before = float((classifier(image)[0] - target).norm())
    result = lots.attack(image, classes)
    assert int(result.iterations[0]) == 4
    assert float(result.final_distance[0]) < 0.9 * before
    # the unlabelled case falls back to the top-1 class
    assert lots.choose_classes({"label": torch.tensor([-1])}, torch.tensor([7])).tolist() == [7]


def test_targets_file_checks_name_the_fix(tmp_path, capsys):
    def error(args):
        assert main(["test", "--output", str(tmp_path / "runs"), *args]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ")
        return lines[0]

    assert "needs --method.targets_file" in error(["--method.target", "mean"])
    assert "does not exist" in error(["--method.target", "class", "--method.targets_file", str(tmp_path / "no.pt")])
    (tmp_path / "bad.pt").write_bytes(b"not a torch file")
    assert "not a readable targets file" in error(
        ["--method.target", "mean", "--method.targets_file", str(tmp_path / "bad.pt")]
    )
    assert "needs --method.target_image" in error(["--method.target", "image"])
    assert "does not exist" in error(["--method.target", "image", "--method.target_image", str(tmp_path / "x.jpg")])
    assert "threshold" in error(["--method.threshold", "1.5"])
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_targets_made_for_another_model_or_layer_are_refused(labelled_folder, classifier):
    _, output = labelled_folder
    model = LinearModel(torch.zeros(1000, 12))
    model.name = "efficientnet_lite1"
    with pytest.raises(BenchmarkError, match="made with model efficientnet_lite0"):
        LOTS(model, LOTSConfig(target="class", targets_file=str(output)))
    with pytest.raises(BenchmarkError, match="penultimate"):
        LOTS(classifier, LOTSConfig(target="class", targets_file=str(output), features="penultimate"))


def test_image_target_is_the_features_of_that_image(tmp_path):
    picture = write_random_jpeg(tmp_path / "other.jpg", 5, size=(256, 256))
    torch.manual_seed(0)
    weight = torch.randn(3, 3 * 224 * 224) / 300
    lots = LOTS(LinearModel(weight), LOTSConfig(target="image", target_image=str(picture)), show_progress=False)
    images = torch.rand(2, 3, 224, 224)
    expected = LinearModel(weight)(make_transform()(load_rgb(str(picture)))[None])
    torch.testing.assert_close(lots.targets_for(images, torch.tensor([0, 1])), expected.expand(2, -1))


def test_threshold_zeroes_values_below_it_after_the_last_normalization():
    torch.manual_seed(1)
    images = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    adversarial = (images + 0.05 * torch.randn_like(images)).clamp(0, 1)
    plain = lots_map(images, adversarial, 7)
    cleaned = lots_map(images, adversarial, 7, threshold=0.4)
    torch.testing.assert_close(cleaned, torch.where(plain < 0.4, 0.0, plain))
    assert bool((cleaned == 0).sum() > (plain == 0).sum())


def test_variants_fix_parameters_per_table_row(tmp_path):
    targets = tmp_path / "t.pt"
    from benchmark.methods.lots_targets import TargetsFile, write_targets_file

    write_targets_file(
        targets,
        TargetsFile(
            str(targets),
            "efficientnet_lite0",
            "logits",
            ["class", "mean"],
            {"class": torch.ones(1000, 4), "mean": torch.ones(1000, 4)},
            {"class": torch.ones(1000), "mean": torch.ones(1000)},
            [""] * 1000,
        ),
    )
    root = Path(__file__).resolve().parents[2]
    args = ["table", "--config", str(root / "configs/thesis_table_5_1.yaml"), "--method.targets_file", str(targets)]
    config = config_from_args(build_parser().parse_args(args))
    assert list(config.method_configs) == ["lots:target=zero", "lots:target=class", "lots:target=mean"]
    assert [c.target for c in config.method_configs.values()] == ["zero", "class", "mean"]
    assert all(c.iterations == 500 for c in config.method_configs.values())
    assert config.to_dict("lots:target=mean")["method"]["name"] == "lots"
    with pytest.raises(BenchmarkError, match="needs --method.targets_file"):
        config_from_args(build_parser().parse_args(args[:3]))
    with pytest.raises(BenchmarkError, match="no parameter colour"):
        config_from_args(build_parser().parse_args(["table", "--methods", "lots:colour=red"]))
