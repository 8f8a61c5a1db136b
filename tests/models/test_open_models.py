"""Models from outside the registry: ``timm:NAME``, ``torchvision:NAME``, a factory given as
``package.module:build`` (with ``--model.mean``/``--model.std``), the entry point group
``saliency_benchmark.models``; their weights (``--model.weights FILE``, the Hugging Face and
torch hub caches, ``none``), the automatic CAM layer (a vision transformer's tokens reshaped
for both CAM backends) and the refusals (no weights offline, no normalization, a YAML file
naming code)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import timm
import torch
import torchvision
from torch import nn

from benchmark.core.errors import BenchmarkError
from benchmark.models import build_classifier, get_model_spec
from tests.support.cli_runs import run_in_process

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

FAST = ["--limit", "2", "--metrics.n_steps", "4", "--logger", "none", "--overlay-images", "0"]
METHOD_OPTIONS = {"gradcam": [], "lots": ["--method.iterations", "2"]}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: A factory module as a user writes it: a tiny CNN, its last Conv2d at ``body.2``.
FACTORY = '''
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 6, 5, stride=4), nn.ReLU(), nn.Conv2d(6, 8, 3, stride=2), nn.ReLU())
        self.head = nn.Linear(8, 1000)

    def forward(self, x):
        return self.head(self.body(x).mean(dim=(2, 3)))


def build():
    """A tiny CNN for the tests."""
    {marker}
    torch.manual_seed(0)
    return Tiny()
'''


def _factory(tmp_path: Path, monkeypatch, module: str, marker: Path | None = None) -> str:
    """Write the factory module ``module`` into ``tmp_path`` (on sys.path); its import string."""
    line = f"open({str(marker)!r}, 'a').close()" if marker else "pass"
    (tmp_path / f"{module}.py").write_text(FACTORY.replace("{marker}", line))
    monkeypatch.syspath_prepend(str(tmp_path))
    return f"{module}:build"


def _results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def _last_conv(net: nn.Module) -> str:
    return [name for name, module in net.named_modules() if isinstance(module, nn.Conv2d)][-1]


def _note(name: str) -> str:
    return f"note: {name} has random weights (--model.weights none): its numbers mean nothing"


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """No torch hub or Hugging Face files on this machine, whatever it holds."""
    import huggingface_hub.constants

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path


# -- end to end -----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "model,layer,reference",
    [
        ("timm:resnet18", "layer4.1.conv2", lambda: timm.create_model("resnet18")),
        ("timm:deit_small_patch16_224", "blocks.11.norm1", None),
        ("torchvision:resnet18", "layer4.1.conv2", lambda: torchvision.models.resnet18()),
    ],
)
def test_gradcam_and_lots_run_on_a_random_weights_model_and_record_the_layer(model, layer, reference, tmp_path):
    if reference is not None:
        assert _last_conv(reference()) == layer  # the automatic choice is the last Conv2d
    for method in ("gradcam", "lots"):
        run = run_in_process(
            [
                "test",
                "--model",
                model,
                "--model.weights",
                "none",
                "--method",
                method,
                *METHOD_OPTIONS[method],
                *FAST,
                "--output",
                str(tmp_path / method),
            ]
        )
        assert run.code == 0, run.err
        assert [line for line in run.err.splitlines() if line.startswith("note:")] == [_note(model)]
        results = _results(run.run_dir)
        assert results["model"] == model and results["images"] == 2
        assert results["model_weights"] == "none (random)"
        assert results["config"]["model"] == {"name": model, "weights": "none", "mean": None, "std": None}
        # (timm's ResNet starts each block's last BatchNorm at zero: its random Grad-CAM maps are
        # constant, their Coherency undefined; the curves are always defined)
        assert all(math.isfinite(results["metrics"][key]) for key in ("insertion", "deletion", "avg_drop"))
        if method == "gradcam":
            assert results["method_info"]["target_layer"] == layer


@pytest.mark.slow
def test_a_factory_model_runs_with_its_normalization(tmp_path, monkeypatch):
    name = _factory(tmp_path, monkeypatch, "open_models_factory_run")
    run = run_in_process(
        [
            "test",
            "--model",
            name,
            "--model.mean",
            "0.5,0.5,0.5",
            "--model.std",
            "0.25,0.25,0.25",
            "--method",
            "gradcam",
            *FAST,
            "--output",
            str(tmp_path / "runs"),
        ]
    )
    assert run.code == 0, run.err
    results = _results(run.run_dir)
    assert results["method_info"]["target_layer"] == "body.2"
    assert results["model_weights"] == "default"
    assert results["config"]["model"] == {"name": name, "weights": None, "mean": [0.5] * 3, "std": [0.25] * 3}


# -- refusals, one error line each ---------------------------------------------------------------


def test_a_factory_model_without_its_normalization_is_one_error_line(tmp_path, monkeypatch, capsys):
    from benchmark.cli import main

    built = tmp_path / "built"
    name = _factory(tmp_path, monkeypatch, "open_models_factory_no_norm", marker=built)
    for given in ([], ["--model.mean", "0.5,0.5,0.5"]):
        assert main(["test", "--model", name, *given, "--logger", "none", "--output", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: --model {name} needs the normalization"), err
        assert "--model.mean R,G,B" in err[0] and "--model.std R,G,B" in err[0]
    assert not built.exists(), "the model was built before the missing option was reported"
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--model.mean", "0.5,0.5"], "--model.mean must be three finite numbers R,G,B"),
        (["--model.std", "0.2,0,0.2"], "--model.std must be three numbers > 0"),
        (["--model.mean", "a,b,c"], "--model.mean: 'a,b,c' is not a valid"),
        (["--model", "timm:resnet_18"], "unknown timm model 'resnet_18' (did you mean timm:resnet18"),
        (["--model", "torchvision:resnet_18"], "unknown torchvision classifier 'resnet_18' (did you mean"),
        (["--model", "timm:vit_base_patch16_224.mae"], "has 0 output classes, not ImageNet's 1000"),
        (["--model", "timm:vit_base_patch16_384"], "takes only 384x384 images, the benchmark's are 224x224"),
        (["--model", "torchvision:vit_h_14"], "take only 518x518 images, the benchmark's are 224x224"),
        (["--model", "timm:resnet18", "--model.weights", "/no/such.pt"], "--model.weights /no/such.pt: file does not"),
        (["--model", "no_such_package.models:build"], "--model no_such_package.models:build: cannot import"),
        (["--model", "tests.support.helpers:SHARED_SAMPLE"], "not a function that builds the model"),
    ],
)
def test_a_bad_model_option_is_one_error_line_before_any_model_work(args, message, tmp_path, monkeypatch, capsys):
    from benchmark import models
    from benchmark.cli import main

    def refuse(*args, **kwargs):
        raise AssertionError("a classifier was built before the bad option was reported")

    monkeypatch.setattr(models, "build_classifier", refuse)
    assert main(["test", *args, "--logger", "none", "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_offline_without_weights_is_one_error_line_saying_where_to_put_them(empty_caches, capsys):
    from benchmark.cli import main

    tmp_path = empty_caches
    code = main(["test", "--model", "timm:resnet18", "--method", "gradcam", *FAST, "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    hub_file = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18_a1_0-d63eafa0.pth"
    assert err[0].startswith("error: timm:resnet18 needs its pretrained weights")
    assert f"at {hub_file}" in err[0]
    assert "timm/resnet18.a1_in1k" in err[0] and str(tmp_path / "hf") in err[0]
    assert "--model.weights FILE" in err[0] and "--model.weights none" in err[0]


@pytest.mark.parametrize(
    "content",
    [
        "model: planted_model_module:build\n",
        "model:\n  name: planted_model_module:build\n  mean: [0.5, 0.5, 0.5]\n  std: [0.5, 0.5, 0.5]\n",
    ],
)
def test_a_yaml_file_naming_a_model_to_import_is_refused_before_importing_it(content, tmp_path, monkeypatch, capsys):
    from benchmark.cli import main

    marker = tmp_path / "imported"
    (tmp_path / "planted_model_module.py").write_text(f"open({str(marker)!r}, 'w').close()\nbuild = None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = tmp_path / "downloaded.yaml"
    config.write_text(content)
    assert main(["test", "--config", str(config), "--logger", "none"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: --config {config}: names code to import (planted_model_module:build); a settings file cannot run "
        "code, so give it on the command line: --model planted_model_module:build"
    ]
    assert not marker.exists(), "the module named in the file was imported"


def test_a_yaml_file_may_name_timm_and_torchvision_models_and_repeat_the_command_line():
    from benchmark.config import Overrides, refuse_code_from_files

    for name in ("timm:resnet18", "torchvision:resnet18", "efficientnet_lite0"):
        refuse_code_from_files([Overrides(source="--config a.yaml", options={"model": name})])
    stored = Overrides(source="--resume RUN", options={"model": "my_pkg.models:build"})
    refuse_code_from_files([stored, Overrides(source="command line", options={"model": "my_pkg.models:build"})])
    with pytest.raises(BenchmarkError, match="names code to import"):
        refuse_code_from_files([stored, Overrides(source="command line", options={"model": "timm:resnet18"})])


def test_the_model_section_round_trips_mean_std_and_random_weights(tmp_path, monkeypatch):
    import yaml

    from benchmark.cli import build_parser, config_from_args

    name = _factory(tmp_path, monkeypatch, "open_models_factory_yaml")
    args = [
        "test",
        "--model",
        name,
        "--model.weights",
        "none",
        "--model.mean",
        "0.1,0.2,0.3",
        "--model.std",
        "1,2,3",
        "--output",
        str(tmp_path),
    ]
    # a factory cannot have random weights: the check refuses, so use a timm model for "none"
    with pytest.raises(BenchmarkError, match="builds its own weights"):
        config_from_args(build_parser().parse_args(args))
    args[2] = "timm:resnet18"
    config = config_from_args(build_parser().parse_args(args))
    saved = config.to_dict()
    assert saved["model"] == {
        "name": "timm:resnet18",
        "weights": "none",
        "mean": [0.1, 0.2, 0.3],
        "std": [1.0, 2.0, 3.0],
    }
    file = tmp_path / "config.yaml"
    file.write_text(yaml.safe_dump(saved))
    again = config_from_args(build_parser().parse_args(["test", "--config", str(file)]))
    assert again.to_dict() == saved


# -- weights --------------------------------------------------------------------------------------


def _equal_weights(model, reference: dict) -> bool:
    state = model.net.state_dict()
    return set(state) == set(reference) and all(torch.equal(state[k], v) for k, v in reference.items())


def _seeded_state(make) -> dict:
    torch.manual_seed(123)
    net = make()
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.add_(0.01)  # not timm's or torchvision's init: the file must have been read
    return net.state_dict()


def test_timm_weights_come_from_the_hugging_face_cache_then_the_torch_hub_cache(empty_caches):
    from safetensors.torch import save_file

    tmp_path = empty_caches
    reference = _seeded_state(lambda: timm.create_model("resnet18"))
    hub_file = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18_a1_0-d63eafa0.pth"
    hub_file.parent.mkdir(parents=True)
    torch.save({"state_dict": reference}, hub_file)  # a checkpoint dict: unwrapped
    assert _equal_weights(build_classifier("timm:resnet18"), reference)

    # the Hugging Face cache layout: refs/main -> snapshots/<revision>/model.safetensors
    repo = tmp_path / "hf" / "models--timm--resnet18.a1_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    (repo / "snapshots" / "0123abcd").mkdir(parents=True)
    other = {k: v + 1 if v.is_floating_point() else v for k, v in reference.items()}
    save_file({k: v.contiguous() for k, v in other.items()}, str(repo / "snapshots" / "0123abcd" / "model.safetensors"))
    model = build_classifier("timm:resnet18")
    assert _equal_weights(model, other) and model.weights_source == "default"


def test_timm_weights_file_goes_through_timms_checkpoint_filter_and_a_wrong_one_is_refused(tmp_path):
    reference = _seeded_state(lambda: timm.create_model("deit_tiny_patch16_224"))
    # DeiT's published layout: {"model": state dict}
    path = tmp_path / "deit.pth"
    torch.save({"model": reference}, path)
    model = build_classifier("timm:deit_tiny_patch16_224", str(path))
    assert _equal_weights(model, reference) and model.weights_source == str(path)
    wrong = tmp_path / "wrong.pth"
    torch.save(_seeded_state(lambda: timm.create_model("resnet18")), wrong)
    with pytest.raises(BenchmarkError) as error:
        build_classifier("timm:deit_tiny_patch16_224", str(wrong))
    assert "do not fit timm:deit_tiny_patch16_224" in str(error.value) and "\n" not in str(error.value)


def test_torchvision_weights_come_from_the_torch_hub_cache_and_say_where_to_put_them(empty_caches):
    tmp_path = empty_caches
    hub_file = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(BenchmarkError) as error:
        build_classifier("torchvision:resnet18")
    assert (
        f"put resnet18-f37072fd.pth (from https://download.pytorch.org/models/resnet18-f37072fd.pth) at {hub_file}"
        in str(error.value)
    )
    reference = _seeded_state(torchvision.models.resnet18)
    hub_file.parent.mkdir(parents=True)
    torch.save(reference, hub_file)
    assert _equal_weights(build_classifier("torchvision:resnet18"), reference)


@pytest.mark.parametrize("name", ["efficientnet_lite0", "alexnet"])
def test_built_in_models_take_random_weights_too(name, empty_caches, capsys):
    model = build_classifier(name, "none")  # alexnet: no file in the (empty) torch hub cache needed
    assert model.weights_source == "none (random)"
    assert capsys.readouterr().err.strip().splitlines() == [_note(name)]
    if name == "efficientnet_lite0":
        packaged = build_classifier(name)
        assert not torch.equal(model.net.conv_stem.weight, packaged.net.conv_stem.weight)


def test_normalization_comes_from_the_models_own_configuration(tmp_path, monkeypatch):
    assert get_model_spec("timm:resnet18").mean == IMAGENET_MEAN and get_model_spec("timm:resnet18").std == IMAGENET_STD
    vit = get_model_spec("timm:vit_base_patch16_224")  # augreg weights: Inception-style 0.5
    assert vit.mean == vit.std == (0.5, 0.5, 0.5)
    assert get_model_spec("torchvision:resnet18").mean == IMAGENET_MEAN
    assert get_model_spec("torchvision:resnet18").std == IMAGENET_STD
    name = _factory(tmp_path, monkeypatch, "open_models_factory_norm")
    model = build_classifier(name, mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 2.0))
    images = torch.rand(2, 3, 40, 40)
    by_hand = (images - torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)) / torch.tensor([0.5, 0.25, 2.0]).view(
        1, 3, 1, 1
    )
    with torch.no_grad():
        torch.testing.assert_close(model(images), model.net(by_hand))
    assert not any(p.requires_grad for p in model.parameters()) and not model.training


# -- vision transformers --------------------------------------------------------------------------


def test_tokens_become_a_grid_without_the_prefix_tokens():
    from benchmark.models.layers import TokensToGrid

    batch, prefix, height, width, channels = 2, 2, 3, 4, 5
    b, c, i, j = torch.meshgrid(*(torch.arange(n) for n in (batch, channels, height, width)), indexing="ij")
    grid = (1000 * b + 100 * c + 10 * i + j).float()  # every entry says where it belongs
    tokens = torch.full((batch, prefix + height * width, channels), -1.0)
    for y in range(height):
        for x in range(width):
            tokens[:, prefix + y * width + x, :] = grid[:, :, y, x]
    assert torch.equal(TokensToGrid(prefix, (height, width))(tokens), grid)
    square = torch.randn(1, 1 + 9, 4)
    assert torch.equal(TokensToGrid(1)(square), square[:, 1:].reshape(1, 3, 3, 4).permute(0, 3, 1, 2))
    conv = torch.randn(1, 4, 3, 3)
    assert TokensToGrid(1)(conv) is conv


@pytest.fixture(scope="module")
def deit():
    return build_classifier("timm:deit_small_patch16_224", "none")


@pytest.mark.parametrize("name", ["gradcam", "gradcampp", "hirescam", "layercam", "random"])
def test_device_cams_equal_grad_cam_on_deit(name, deit):
    from benchmark.methods.cam import CAM_METHODS, CAMConfig

    torch.manual_seed(7)
    images = torch.rand(2, 3, 224, 224)
    classes = torch.tensor([3, 500])
    maps = {}
    for backend in ("grad-cam", "device"):
        method = CAM_METHODS[name](deit, CAMConfig(backend=backend), seed=1)
        assert method.target_layer_path == "blocks.11.norm1"
        maps[backend] = method.explain(images, classes)
    assert maps["device"].shape == (2, 224, 224)
    assert (maps["device"] - maps["grad-cam"]).abs().max() < 1e-5
    assert maps["grad-cam"].amax() == 1.0 and maps["grad-cam"].std() > 0.05  # a real map, not zeros


def test_deit_gradcam_equals_grad_cam_set_up_as_its_vit_tutorial(deit):
    """grad-cam's ViT tutorial: ``target_layers = [model.blocks[-1].norm1]`` and its own
    ``reshape_transform`` (drop the class token, 14 x 14 grid, channels first)."""
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from benchmark.methods.cam import CAM_METHODS, CAMConfig

    def reshape_transform(tensor, height=14, width=14):
        result = tensor[:, 1:, :].reshape(tensor.size(0), height, width, tensor.size(2))
        return result.transpose(2, 3).transpose(1, 2)

    torch.manual_seed(9)
    images = torch.rand(2, 3, 224, 224)
    classes = [11, 700]
    cam = pytorch_grad_cam.GradCAM(
        model=deit, target_layers=[deit.net.blocks[-1].norm1], reshape_transform=reshape_transform
    )
    cam.compute_input_gradient = True  # frozen weights: the graph must start at the input
    expected = torch.from_numpy(cam(images.clone(), [ClassifierOutputTarget(c) for c in classes]))
    cam.activations_and_grads.release()
    expected = (expected - expected.amin(dim=(1, 2), keepdim=True)) / (
        expected.amax(dim=(1, 2), keepdim=True) - expected.amin(dim=(1, 2), keepdim=True)
    )
    for backend in ("grad-cam", "device"):
        got = CAM_METHODS["gradcam"](deit, CAMConfig(backend=backend)).explain(images, torch.tensor(classes))
        assert (got - expected).abs().max() < 1e-5, backend


def test_vit_base_gets_blocks_norm1_and_equal_maps_on_both_backends():
    from benchmark.methods.cam import CAM_METHODS, CAMConfig

    model = build_classifier("timm:vit_base_patch16_224", "none")
    torch.manual_seed(8)
    images = torch.rand(1, 3, 224, 224)
    maps = [
        CAM_METHODS["gradcam"](model, CAMConfig(backend=b)).explain(images, torch.tensor([9]))
        for b in ("grad-cam", "device")
    ]
    assert CAM_METHODS["gradcam"](model).describe()["target_layer"] == "blocks.11.norm1"
    assert (maps[0] - maps[1]).abs().max() < 1e-5 and maps[0].std() > 0.05


def test_torchvision_vit_gets_its_last_ln_1_and_equal_maps_on_both_backends():
    from benchmark.methods.cam import CAM_METHODS, CAMConfig

    model = build_classifier("torchvision:vit_b_16", "none")
    torch.manual_seed(10)
    with torch.no_grad():  # torchvision starts the head at zero: constant logits, no gradient
        model.net.heads.head.weight.normal_()
    images = torch.rand(1, 3, 224, 224)
    methods = [CAM_METHODS["gradcam"](model, CAMConfig(backend=b)) for b in ("grad-cam", "device")]
    assert methods[0].target_layer_path == "encoder.layers.encoder_layer_11.ln_1"
    assert methods[0].reshape_transform.prefix_tokens == 1  # the class token
    maps = [method.explain(images, torch.tensor([2])) for method in methods]
    assert (maps[0] - maps[1]).abs().max() < 1e-5 and maps[0].std() > 0.05


def test_penultimate_features_are_the_classifiers_input(deit):
    from benchmark.models.features import FeatureExtractor

    images = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        pooled = deit.net.forward_head(deit.net.forward_features(deit_input(deit, images)), pre_logits=True)
        features = FeatureExtractor(deit, "penultimate")(images)
    torch.testing.assert_close(features, pooled)
    resnet = build_classifier("torchvision:resnet18", "none")
    with torch.no_grad():
        net, x = resnet.net, deit_input(resnet, images)
        trunk = net.layer4(net.layer3(net.layer2(net.layer1(net.maxpool(net.relu(net.bn1(net.conv1(x))))))))
        torch.testing.assert_close(FeatureExtractor(resnet, "penultimate")(images), trunk.mean(dim=(2, 3)))


def deit_input(model, images):
    """What the backbone sees: the images normalized with the model's mean and std."""
    return (images - model.mean) / model.std


# -- plugins --------------------------------------------------------------------------------------

PLUGIN = """
import torch
from torch import nn

from benchmark.models import ModelSpec


def _net():
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=8), nn.ReLU(), nn.Flatten(), nn.Linear(64, 1000))  # 32x32 inputs


SPEC = ModelSpec(name="", build=lambda weights: _net(), mean=(0.1, 0.2, 0.3), std=(0.3, 0.2, 0.1),
                 cam_layer="0", classifier_layer=None, description="Tiny plugin model for the tests")


def build():
    return _net()
"""


@pytest.fixture
def model_plugin(tmp_path, monkeypatch):
    """An installed distribution (a dist-info folder on sys.path) with three model entry points."""
    (tmp_path / "open_models_plugin.py").write_text(PLUGIN)
    info = tmp_path / "open_models_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: open-models-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[saliency_benchmark.models]\n"
        "tiny_plugin = open_models_plugin:SPEC\n"
        "tiny_factory = open_models_plugin:build\n"
        "broken_model = open_models_plugin_not_there:build\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_an_entry_point_model_resolves_by_name_and_is_listed_in_help(model_plugin, capsys):
    from benchmark.cli import main
    from benchmark.models import model_names

    assert {"tiny_plugin", "tiny_factory", "broken_model"} <= set(model_names())
    spec = get_model_spec("tiny_plugin")
    assert spec.name == "tiny_plugin" and spec.mean == (0.1, 0.2, 0.3) and spec.cam_layer == "0"
    model = build_classifier("tiny_plugin")
    images = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        expected = model.net(
            (images - torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)) / torch.tensor([0.3, 0.2, 0.1]).view(1, 3, 1, 1)
        )
        torch.testing.assert_close(model(images), expected)
    assert get_model_spec("tiny_factory").mean is None  # a factory: the user gives the normalization
    with pytest.raises(SystemExit):
        main(["test", "--help"])
    out = capsys.readouterr().out
    assert "tiny_plugin" in out and "Tiny plugin model for the tests" in out
    assert "broken_model" in out and "[plugin does not load:" in out
    assert "timm:NAME" in out and "torchvision:NAME" in out and "package.module:build" in out
    assert "--model.mean" in out and "--model.std" in out


def test_a_model_entry_point_that_does_not_resolve_is_one_line_naming_its_package(model_plugin, capsys):
    from benchmark.cli import main

    assert main(["test", "--model", "broken_model", "--logger", "none"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: model 'broken_model': the entry point"), err
    assert "open_models_plugin_not_there:build" in err[0] and "package open-models-plugin" in err[0]
