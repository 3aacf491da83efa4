"""Tests for benchmarks/bench.py: the FLOP count, how a run is summarised, its flags, and one tiny run.

No test asserts a time: timings depend on the machine; the benchmark reports ratios instead.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tflab.paths import REPO_ROOT

BENCH = REPO_ROOT / "benchmarks" / "bench.py"


@pytest.fixture(scope="module")
def bench():
    """benchmarks/bench.py as a module (importing it loads neither tflab nor TensorFlow)."""
    spec = importlib.util.spec_from_file_location("bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_bench(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TFLAB_LOGDIR": str(tmp_path / "logs")}
    return subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=900)


# --- the FLOP count -------------------------------------------------------------------------------

def test_flops_match_a_hand_count_of_the_lesson_layers(bench):
    flops = bench.model_flops()
    # Conv2D(10, 3x3) on 28x28x1: 26*26 positions x 10 filters x 9 multiply-adds.
    assert flops["forward"]["conv"] == 26 * 26 * 10 * 9 * 2 == 121_680
    # Dense(128) on the 6,760 flattened features, Dense(10) on 128.
    assert flops["forward"]["dense"] == 6760 * 128 * 2 == 1_730_560
    assert flops["forward"]["output"] == 128 * 10 * 2 == 2_560
    assert flops["forward_per_example"] == 1_854_800
    # Backward: the conv needs only its filter gradient; the dense layers need weight and input gradients.
    assert flops["backward"] == {"conv": 121_680, "dense": 3_461_120, "output": 5_120}
    assert flops["train_per_example"] == 1_854_800 + 3_587_920 == 5_442_720


def test_an_epoch_counts_training_and_one_validation_pass(bench):
    assert bench.epoch_flops(60_000, 10_000) == 60_000 * 5_442_720 + 10_000 * 1_854_800 == 345_111_200_000


def test_flop_count_uses_the_layer_shapes_of_the_exercise_model(bench):
    pytest.importorskip("tensorflow")
    model = bench.load_exercise().build_model()
    assert model.count_params() == bench.model_flops()["parameters"] == 866_798
    conv, _, dense, _, output = model.layers
    assert (conv.filters, conv.kernel_size, conv.input.shape[1:]) == (bench.FILTERS, (bench.KERNEL,) * 2, (28, 28, 1))
    assert (dense.units, output.units) == (bench.HIDDEN, bench.CLASSES)


# --- summarising a run ----------------------------------------------------------------------------

def epochs(*rows: tuple[float, float, float]) -> list[dict[str, float]]:
    return [{"elapsed": wall, "cpu_elapsed": cpu, "val_accuracy": accuracy} for wall, cpu, accuracy in rows]


def test_each_epoch_is_timed_from_the_end_of_the_one_before(bench):
    summary = bench.summarize(epochs((10, 19, 0.95), (16, 30, 0.969), (21, 40, 0.9701), (27, 51, 0.98)))
    assert summary["epoch_seconds"] == [10, 6, 5, 6]
    assert summary["first_epoch_seconds"] == 10
    assert summary["seconds_per_epoch"] == 6  # median of the epochs after the first
    assert summary["cpu_seconds_per_epoch"] == 11
    assert (summary["time_to_target_s"], summary["epoch_reaching_target"]) == (21, 3)
    assert summary["cpu_time_to_target_s"] == 40
    assert summary["final_accuracy"] == 0.98


def test_a_target_never_reached_has_no_time(bench):
    summary = bench.summarize(epochs((10, 20, 0.95), (20, 40, 0.9699)))
    assert summary["time_to_target_s"] is None and summary["epoch_reaching_target"] is None
    assert summary["cpu_time_to_target_s"] is None
    assert bench.speedup(60.0, summary["time_to_target_s"]) is None


def test_a_single_epoch_is_its_own_typical_epoch(bench):
    summary = bench.summarize(epochs((12, 20, 0.9)))
    assert summary["seconds_per_epoch"] == 12


def test_the_limit_is_the_epoch_at_the_dense_layers_own_matmul_rate(bench):
    rates = [{"name": name, "flops": 4e9, "seconds": 0.04, "cpu_seconds": 0.08, "gflops": 100.0}
             for name in ("dense forward", "dense weight gradient", "dense input gradient")]
    rates.append({"name": "square", "flops": 2e10, "seconds": 0.1, "cpu_seconds": 0.2, "gflops": 200.0})
    limit = bench.compute_limit(rates, 345e9)
    assert limit["gflops"] == pytest.approx(100.0)  # the dense matmuls, not the faster square one
    assert limit["seconds_per_epoch"] == pytest.approx(3.45)
    assert limit["cpu_seconds_per_epoch"] == pytest.approx(6.9)  # two busy cores
    assert (limit["peak_name"], limit["peak_seconds_per_epoch"]) == ("square", pytest.approx(1.725))


def test_of_repeated_runs_the_one_first_at_the_target_is_kept(bench):
    slow = {"time_to_target_s": 40.0, "seconds_per_epoch": 9.0}
    fast = {"time_to_target_s": 30.0, "seconds_per_epoch": 12.0}
    short = {"time_to_target_s": None, "seconds_per_epoch": 5.0}
    failed = {"error": "exit 1: boom"}
    assert bench.best_run([slow, failed, fast, short]) is fast
    assert bench.best_run([short, {"time_to_target_s": None, "seconds_per_epoch": 4.0}])["seconds_per_epoch"] == 4.0
    assert bench.best_run([failed]) is failed


def test_speedup_divides_the_baseline_time_by_the_row_time(bench):
    assert bench.speedup(60.0, 20.0) == 3.0
    assert bench.speedup(None, 20.0) is None


# --- the configurations and flags -----------------------------------------------------------------

def test_the_default_row_uses_the_exercise_constants(bench):
    mnist = bench.load_exercise()
    configs = bench.configurations({"batch_size": mnist.BATCH_SIZE, "learning_rate": mnist.LEARNING_RATE})
    default, lesson = configs["b"], configs["a"]
    assert (default["batch_size"], default["learning_rate"]) == (mnist.BATCH_SIZE, mnist.LEARNING_RATE)
    assert (default["input"], default["histograms"], default["backup"]) == ("tfdata", True, True)
    assert (default["setup"], default["runner"], default["env"]) == ("project", "exercise", {})  # mnist.py's own train
    assert (lesson["input"], lesson["batch_size"], lesson["learning_rate"]) == ("numpy", 32, 0.001)
    assert lesson["histograms"] and not lesson["backup"]
    assert set(bench.FULL + bench.QUICK) - set(configs) <= {f"bs{mnist.BATCH_SIZE}"}


def test_the_lesson_rows_load_tensorflow_with_its_own_defaults(bench):
    configs = bench.configurations({"batch_size": 256, "learning_rate": 0.002, "onednn": "1"})
    assert configs["a"]["setup"] == "lesson"
    assert configs["a"]["env"] == {"TF_ENABLE_ONEDNN_OPTS": None, "TFLAB_THREADS": None}  # None: removed


@pytest.mark.parametrize(("default", "flipped"), [("1", "0"), ("0", "1"), (None, "1")])
def test_the_onednn_row_switches_the_other_way_from_the_default(bench, default, flipped):
    configs = bench.configurations({"batch_size": 256, "learning_rate": 0.002, "onednn": default})
    assert configs["onednn"]["env"] == {"TF_ENABLE_ONEDNN_OPTS": flipped}


def test_batch_rows_scale_the_learning_rate_with_the_square_root_of_the_batch(bench):
    configs = bench.configurations({"batch_size": 256, "learning_rate": 0.002, "onednn": None})
    assert "bs256" not in configs
    assert configs["bs1024"]["learning_rate"] == 0.004 and configs["bs64"]["learning_rate"] == 0.001


def test_quick_runs_the_short_list_and_full_runs_a_and_b_again_at_the_end(bench):
    known = list(bench.configurations({"batch_size": 256, "learning_rate": 0.002, "onednn": "1"}))
    assert bench.parse_args(["--quick"], known).keys == bench.QUICK
    full = bench.parse_args([], known).keys
    assert full[:2] == ["a", "b"] and full.count("a") == full.count("b") == 2 and "bs256" not in full


def test_an_unknown_config_is_refused_in_one_line(tmp_path):
    result = run_bench("--configs", "a,zz", tmp_path=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--configs" in result.stderr and "'a,zz'" in result.stderr
    assert not (tmp_path / "out").exists()


# --- one tiny run, end to end ---------------------------------------------------------------------

@pytest.mark.slow
def test_a_quick_run_writes_the_table_and_the_json(tmp_path):
    out = tmp_path / "out"
    result = run_bench("--configs", "a,b", "--epochs", "1", "--train-samples", "600", "--test-samples", "500",
                       "--out", str(out), tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    rows = {row["key"]: row for row in results["rows"]}
    assert list(rows) == ["a", "b"]
    for row in rows.values():
        assert "error" not in row, row.get("error")
        assert len(row["epochs"]) == 1 and 0 <= row["final_accuracy"] <= 1
        assert row["seconds_per_epoch"] > 0 and row["peak_rss_mib"] > 0
    assert rows["a"]["epoch_speedup"] == pytest.approx(1.0)
    assert results["train_examples"] == 600 and results["test_examples"] == 500
    assert results["limit"]["epoch_flops"] == 600 * 5_442_720 + 500 * 1_854_800
    assert results["limit"]["default_percent"] > 0 and results["limit"]["default_cpu_percent"] > 0
    if results["gpu"].startswith("no GPU"):
        assert "no GPU: GPU variants skipped" in result.stdout
    table = (out / "results.md").read_text()
    header = next(line for line in table.splitlines() if line.startswith("| config"))
    assert [cell.strip() for cell in header.strip("|").split("|")] == [
        "config", "what", "batch", "lr", "input", "s/epoch", "CPU s/epoch", "time to 97% (epoch)", "CPU s to 97%",
        "vs (a): epoch", "vs (a): to 97%", "vs (a): CPU to 97%", "final test acc", "peak RSS MiB"]
    assert sum(line.startswith(("| a ", "| b ")) for line in table.splitlines()) == 2
    assert "## The compute limit" in table
    assert "[a]   epoch 1/1" in result.stdout  # progress, a line per epoch


@pytest.mark.parametrize("speedup, factor, verdicts", [
    (3.4, 1.5, ["met", "met"]),
    (2.9, 2.6, ["not met", "not met"]),
    (3.0, 2.5, ["met", "met"]),  # the goals are inclusive
])
def test_the_goals_section_states_each_goal_met_or_not(bench, speedup, factor, verdicts):
    results = {"rows": [{"key": "a", "target_speedup": 1.0}, {"key": "b", "target_speedup": speedup}],
               "limit": {"default_factor": factor}}
    lines = bench.goals(results)
    assert lines[0] == "## Goals for the default (b)"
    assert [line.rsplit("**", 2)[1] for line in lines[2:]] == verdicts
    assert f"{speedup:.2f}x sooner" in lines[2] and f"{factor:.2f}x the compute limit" in lines[3]


def test_no_goals_without_a_default_row(bench):
    assert bench.goals({"rows": [{"key": "a"}, {"key": "b", "error": "exit 1: boom"}], "limit": {}}) == []
