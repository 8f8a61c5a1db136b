"""Metrics from outside the benchmark: one class declaring what it needs and its direction,
picked up by ``--metrics.extra`` as an import string; the scorer computes each shared input
once per batch (one forward of x * M, one call of the method on x * M) for every metric."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch
from torch import nn

from benchmark.core.errors import BenchmarkError
from benchmark.metrics import MetricOptions, PerSampleMetric, SaliencyScorer
from benchmark.metrics.selection import check_extra


class KeptConfidence(PerSampleMetric):
    """Kept confidence in percent: 100 * O / Y (a test metric of the probabilities of x * M)."""

    higher_is_better = True
    needs = ("base_prob", "explanation_prob")

    def update(self, sample_ids, base_prob, explanation_prob):
        self._store(sample_ids, 100 * explanation_prob / base_prob)


class DropComplement(PerSampleMetric):
    """100 - Average Drop of the same image (a test metric built on another metric)."""

    higher_is_better = True
    needs = {"drop": "avg_drop"}

    def update(self, sample_ids, drop):
        self._store(sample_ids, 100 - drop)


class SelfAgreement(PerSampleMetric):
    """Mean |M - M'| of the map and the method's map of x * M (a test metric of the method again)."""

    higher_is_better = False
    needs = ("maps", "maps_of_explanation")

    def update(self, sample_ids, maps, maps_of_explanation):
        self._store(sample_ids, (maps - maps_of_explanation).abs().flatten(1).mean(1))


@dataclass
class ShareOptions(MetricOptions):
    share_threshold: float = field(default=0.5, metadata={"help": "a pixel counts above this value"})

    def validate(self) -> None:
        if not 0 <= self.share_threshold <= 1:
            raise BenchmarkError(f"--metrics.share_threshold must be in [0, 1], got {self.share_threshold}")


class BrightShare(PerSampleMetric):
    """Percent of the map's pixels above ``--metrics.share_threshold`` (a test metric with an option)."""

    higher_is_better = False
    needs = ("maps",)
    options_class = ShareOptions

    def __init__(self, share_threshold: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.threshold = share_threshold

    def update(self, sample_ids, maps):
        self._store(sample_ids, 100 * (maps > self.threshold).flatten(1).float().mean(1))


NotAMetric = object


class Counting(nn.Module):
    """A classifier that counts the images it sees: 4 pixels -> 3 logits."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(12, 3)
        nn.init.normal_(self.linear.weight)
        self.images = 0

    def forward(self, x):
        self.images += x.shape[0]
        return self.linear(x.flatten(1))


HERE = "tests.metrics.test_metric_plugins"


def _score(extra):
    classifier = Counting()
    calls = []

    def explain(images, classes):
        calls.append(images.shape[0])
        return images.mean(dim=1)

    images = torch.rand(2, 3, 2, 2, generator=torch.Generator().manual_seed(1))
    maps = images.mean(dim=1)
    with torch.no_grad():
        probs = classifier(images).softmax(-1)
    classifier.images = 0
    base_prob, classes = probs.max(-1)
    scorer = SaliencyScorer(n_steps=2, extra=extra, blur_kernel=1, blur_sigma=0.0)
    values = scorer.update(classifier, explain, torch.arange(2), images, maps, classes, base_prob)
    return scorer, values, classifier.images, calls, (images, maps, classes, base_prob, classifier)


def test_a_metric_gets_the_inputs_it_declares_and_the_shared_ones_are_computed_once():
    _, plain, forwarded, calls, _ = _score([])
    names = [f"{HERE}:KeptConfidence", f"{HERE}:DropComplement", f"{HERE}:SelfAgreement"]
    scorer, values, forwarded_with, calls_with, (images, maps, classes, base_prob, classifier) = _score(names)
    assert scorer.keys[5:] == tuple(names)
    # no extra forward of x * M, no extra call of the method, for three more metrics
    assert forwarded_with == forwarded and calls_with == calls == [2]
    for key in plain:
        assert torch.equal(values[key], plain[key]), key
    with torch.no_grad():
        kept = classifier(images * maps.unsqueeze(1)).softmax(-1).gather(1, classes[:, None])[:, 0]
    assert torch.allclose(values[names[0]], 100 * kept / base_prob)
    assert torch.allclose(values[names[1]], 100 - values["avg_drop"])
    assert torch.allclose(values[names[2]], (maps - (images * maps.unsqueeze(1)).mean(1)).abs().flatten(1).mean(1))
    assert scorer.info()[names[2]] == {"title": names[2], "higher_is_better": False}


def test_a_metric_needing_the_method_again_is_not_computable_without_it():
    scorer = SaliencyScorer(extra=[f"{HERE}:SelfAgreement", "adcc"])
    scorer.mark_unavailable("explain", "the maps were computed elsewhere")
    assert scorer.not_computable == {
        "coherency": "the maps were computed elsewhere",
        "adcc": "ADCC combines Coherency, which is not computable: the maps were computed elsewhere",
        f"{HERE}:SelfAgreement": "the maps were computed elsewhere",
    }


@pytest.mark.parametrize(
    "name,message",
    [
        ("nosuch", "--metrics.extra: unknown metric 'nosuch'"),
        (f"{HERE}:NotAMetric", "not a subclass of benchmark.metrics.PerSampleMetric"),
        ("no_such_package.m:Metric", "cannot import no_such_package.m"),
        ("coherency", "coherency is always computed"),
    ],
)
def test_a_bad_metric_is_one_error_naming_it(name, message):
    with pytest.raises(BenchmarkError, match=message):
        check_extra([name])


def test_adcc_brings_complexity_and_extras_keep_their_order():
    assert check_extra(["adcc"]) == ("complexity", "adcc")
    assert check_extra([f"{HERE}:DropComplement", "pointing_game", "complexity"]) == (
        "complexity",
        "pointing_game",
        f"{HERE}:DropComplement",
    )


def test_a_yaml_file_naming_a_metric_to_import_is_refused(tmp_path, capsys):
    from benchmark.cli import main

    config = tmp_path / "downloaded.yaml"
    config.write_text("metrics:\n  extra: [complexity, planted_module:Thing]\n")
    assert main(["test", "--config", str(config), "--logger", "none"]) == 2
    err = capsys.readouterr().err.strip()
    assert "names code to import (planted_module:Thing)" in err and "--metrics.extra planted_module:Thing" in err


def test_a_metric_receives_its_own_options_and_the_scorer_checks_them():
    name = f"{HERE}:BrightShare"
    maps = torch.tensor([[[0.1, 0.3], [0.6, 0.9]]])
    scorer = SaliencyScorer(extra=[name], share_threshold=0.2)
    assert scorer.metrics[name].threshold == 0.2
    scorer.metrics[name].update([0], maps)
    assert scorer.metrics[name].compute().item() == pytest.approx(75.0)
    assert SaliencyScorer(extra=[name]).metrics[name].threshold == 0.5  # the declared default
    with pytest.raises(BenchmarkError, match=r"--metrics.share_threshold must be in \[0, 1\], got 2"):
        SaliencyScorer(extra=[name], share_threshold=2)
    with pytest.raises(BenchmarkError, match="--metrics.share_threshold: no metric has this option"):
        SaliencyScorer(share_threshold=0.2)  # the metric is not known to this scorer


def test_a_config_file_sets_the_option_of_a_metric_the_command_line_names(tmp_path):
    from benchmark.config import Overrides, resolve

    name = f"{HERE}:BrightShare"
    stored = Overrides(source="--config f.yaml", metrics={"share_threshold": "0.25"})
    typed = Overrides(source="command line", options={"logger": "none"}, metrics={"extra": name})
    config = resolve([stored, typed])
    assert config.metrics["share_threshold"] == 0.25 and config.metrics["extra"] == [name]
    assert resolve([typed]).metrics["share_threshold"] == 0.5  # the metric computed: its options' defaults
    plain = Overrides(source="command line", options={"logger": "none"})
    assert "share_threshold" not in resolve([plain]).metrics  # nor a metric not named
    with pytest.raises(BenchmarkError, match="unknown metrics parameter 'share_threshold'"):
        resolve([stored])  # no metric named declares it


def test_the_command_line_takes_the_option_of_a_metric_it_names_by_import_string(capsys):
    from benchmark.cli import build_parser, config_from_args
    from benchmark.commands.run_arguments import named_metric_import_strings

    name = f"{HERE}:BrightShare"
    argv = ["test", "--method", "gradcam", "--metrics.extra", f"complexity,{name}", "--metrics.share_threshold", "0.3"]
    assert named_metric_import_strings(argv) == [name]
    parser = build_parser((), named_metric_import_strings(argv))
    config = config_from_args(parser.parse_args([*argv, "--logger", "none"]))
    assert config.metrics["share_threshold"] == 0.3 and config.metrics["extra"] == ["complexity", name]
    with pytest.raises(SystemExit):
        parser.parse_args(["test", "--help"])
    assert "--metrics.share_threshold" in capsys.readouterr().out  # with its help text
    with pytest.raises(SystemExit):  # without the metric named, the option is unknown
        build_parser().parse_args(["test", "--method", "gradcam", "--metrics.share_threshold", "0.3"])
