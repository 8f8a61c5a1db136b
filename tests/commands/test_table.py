"""``table``: several methods on the same images, one table whose numbers are theirs."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from benchmark.cli import build_parser, config_from_args, main
from benchmark.metrics.functional.bootstrap import bootstrap_ci
from benchmark.metrics.selection import METRIC_KEYS


@pytest.mark.slow
def test_table_of_three_methods_matches_their_results(tmp_path, capsys):
    code = main(
        [
            "table",
            "--methods",
            "lots,gradcam,random",
            "--limit",
            "3",
            "--output",
            str(tmp_path),
            "--method.iterations",
            "2",
            "--method.kernel_size",
            "9",
            "--metrics.n_steps",
            "6",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    table_dir = Path([line for line in captured.out.splitlines() if line.startswith("table folder: ")][-1][14:])
    for name in ("table.md", "table.csv", "comparison.png", "config.yaml", "significance.csv", "table.json"):
        assert (table_dir / name).is_file(), name
    markdown = (table_dir / "table.md").read_text()
    assert "Avg Drop ↓" in markdown and "Insertion ↑" in markdown
    rows = list(csv.reader((table_dir / "table.csv").open()))
    header, body = rows[0], rows[1:]
    assert header[0] == "method" and "Coherency ↑" in header
    assert [r[0] for r in body] == ["lots", "gradcam", "random"]
    for row in body:  # every cell recomputed from the method's per-sample values
        samples = list(csv.DictReader((table_dir / row[0] / "per_sample.csv").open()))
        assert int(row[1]) == len(samples) == 3
        for i, key in enumerate(METRIC_KEYS):
            values = [float(r[key]) for r in samples if r[key] != ""]
            assert float(row[2 + i]) == pytest.approx(sum(values) / len(values), abs=1e-9), (row[0], key)
            # the interval bounds follow, two per metric: the percentile bootstrap of those values
            low, high = row[8 + 2 * i : 10 + 2 * i]
            expected = bootstrap_ci([float(r[key]) if r[key] != "" else math.nan for r in samples], seed=0)
            assert [float(low), float(high)] == pytest.approx(expected, abs=1e-9), (row[0], key)
            assert min(values) - 1e-9 <= float(low) <= float(row[2 + i]) <= float(high) <= max(values) + 1e-9
        ms = [float(r["ms_per_map"]) for r in samples]
        assert float(row[7]) == pytest.approx(sum(ms) / len(ms), rel=1e-9)
        assert row[0] in markdown
    # --method.iterations reached LOTS only
    lots = json.loads((table_dir / "lots" / "results.json").read_text())
    assert lots["config"]["method"]["iterations"] == 2
    gradcam = json.loads((table_dir / "gradcam" / "results.json").read_text())
    assert "iterations" not in gradcam["config"]["method"]
    assert gradcam["method_info"]["target_layer"] == "conv_head"
    # the same images for every method
    ids = {
        m: [r["sample_id"] for r in csv.DictReader((table_dir / m / "per_sample.csv").open())]
        for m in ("lots", "gradcam", "random")
    }
    assert ids["lots"] == ids["gradcam"] == ids["random"] == ["0", "1", "2"]

    # the metric agreement: tau-b of the method rankings from the per-sample values, as scipy has it
    from scipy.stats import kendalltau

    from benchmark.metrics.selection import HIGHER_IS_BETTER

    agreement = json.loads((table_dir / "table.json").read_text())["agreement"]
    assert (table_dir / "agreement.png").stat().st_size > 0 and "Metric agreement" in markdown
    assert agreement["methods"] == ["lots", "gradcam", "random"] and agreement["images"] == 3

    def oriented_means(key):
        means = []
        for method in agreement["methods"]:
            values = [float(r[key]) for r in csv.DictReader((table_dir / method / "per_sample.csv").open()) if r[key]]
            means.append((1 if HIGHER_IS_BETTER[key] else -1) * sum(values) / len(values))
        return means

    assert agreement["pairs"], "some pair of metrics is compared"
    for pair in agreement["pairs"]:
        expected = kendalltau(oriented_means(pair["metric_a"]), oriented_means(pair["metric_b"])).statistic
        if math.isnan(expected):
            assert pair["kendall_tau_b"] is None
        else:
            assert pair["kendall_tau_b"] == pytest.approx(expected, abs=1e-6), pair


def test_a_method_option_must_reach_one_listed_method(capsys):
    assert main(["table", "--methods", "gradcam,random", "--method.iterations", "5"]) == 2
    assert "does not apply" in capsys.readouterr().err


def test_table_needs_methods(capsys):
    assert main(["table"]) == 2
    assert "--methods" in capsys.readouterr().err


def test_thesis_table_config_lists_the_thesis_methods():
    root = Path(__file__).resolve().parents[2]
    config = config_from_args(
        build_parser().parse_args(["table", "--config", str(root / "configs/thesis_table_5_2.yaml")])
    )
    assert config.options.methods == [
        "random",
        "gradcam",
        "gradcampp",
        "smoothgradcampp",
        "layercam",
        "hirescam",
        "lots",
    ]
    assert config.method_configs["lots"].iterations == 500
    assert config.method_configs["gradcam"].target_class == "top1"
    assert config.metrics == {**config.metrics, "n_steps": 224, "score": "max_class"}


@pytest.mark.slow
def test_the_same_method_twice_is_never_significantly_different(tmp_path, capsys):
    code = main(
        [
            "table",
            "--methods",
            "gradcam,gradcam:target_class=top1",
            "--limit",
            "3",
            "--output",
            str(tmp_path),
            "--metrics.n_steps",
            "4",
            "--metrics.bootstrap",
            "500",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    table_dir = Path([line for line in captured.out.splitlines() if line.startswith("table folder: ")][-1][14:])
    pairs = list(csv.DictReader((table_dir / "significance.csv").open()))
    assert [p["metric"] for p in pairs] == list(METRIC_KEYS)
    assert all(p["significant"] == "False" and float(p["difference"]) == 0.0 for p in pairs)
    summary = json.loads((table_dir / "table.json").read_text())
    assert [m["method"] for m in summary["methods"]] == ["gradcam", "gradcam:target_class=top1"]
    assert summary["methods"][0]["ci95"] == summary["methods"][1]["ci95"]
    markdown = (table_dir / "table.md").read_text()
    assert "Not significantly different" in markdown and "gradcam ~ gradcam:target_class=top1" in markdown
    assert (table_dir / "gradcam_target_class-top1" / "results.json").is_file()
