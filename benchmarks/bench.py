"""The training benchmark: the lesson's code as written, the project default, and variants, side by side.

    make bench                                  (= .venv/bin/python benchmarks/bench.py)
    .venv/bin/python benchmarks/bench.py --quick
    .venv/bin/python benchmarks/bench.py --configs a,b,bs128 --epochs 5

Every configuration trains the lesson's network (``build_model`` of Exercise1.02/mnist.py) on the
full MNIST data, with the test set as validation data, in a fresh subprocess: peak memory and
thread settings are per configuration and no TensorFlow state leaks from one to the next.
Ratios are measured in the same run, so they stay meaningful on a busy machine. Output:
benchmarks/results/results.md and results.json (git-ignored), and the table on stdout.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the lab's own files, when run without the editable install
from tflab import atomic, params  # noqa: E402

EXERCISE = REPO / "Exercise1.02" / "mnist.py"
RESULTS = REPO / "benchmarks" / "results"
TARGET = 0.97  # the lesson's promise: more than 97% of the test images right
RESULT_TAG = "BENCH_RESULT "

# The lesson's network, layer by layer: (28, 28, 1) -> Conv2D(10, 3x3) -> Flatten -> Dense(128) -> Dense(10).
IMAGE, KERNEL, FILTERS, HIDDEN, CLASSES = 28, 3, 10, 128, 10


def load_exercise():
    """Exercise1.02/mnist.py as a module (it is a script in a folder, not a package)."""
    spec = importlib.util.spec_from_file_location("mnist_exercise", EXERCISE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- what the model costs -------------------------------------------------------------------------

def model_flops(image: int = IMAGE, kernel: int = KERNEL, filters: int = FILTERS,
                hidden: int = HIDDEN, classes: int = CLASSES) -> dict[str, Any]:
    """Floating-point operations per example, counted from the layer shapes (1 multiply-add = 2 FLOPs).

    forward:  conv 2*(image-kernel+1)^2*filters*kernel^2, dense 2*inputs*units for each Dense;
    backward: each layer's weight gradient costs as much as its forward pass, and each layer
    except the first (whose input is the data) also pays as much again for its input gradient.
    Biases, ReLU, dropout, softmax and the Adam update are left out: they are O(units) or
    O(parameters) per step, under 2% of the total at the batch sizes benchmarked here.
    """
    side = image - kernel + 1
    features = side * side * filters
    forward = {
        "conv": 2 * features * kernel * kernel,
        "dense": 2 * features * hidden,
        "output": 2 * hidden * classes,
    }
    backward = {
        "conv": forward["conv"],              # filter gradient only
        "dense": 2 * forward["dense"],        # weight gradient + input gradient
        "output": 2 * forward["output"],
    }
    parameters = (kernel * kernel * filters + filters) + (features * hidden + hidden) + (hidden * classes + classes)
    return {
        "forward": forward, "backward": backward, "parameters": parameters,
        "forward_per_example": sum(forward.values()),
        "train_per_example": sum(forward.values()) + sum(backward.values()),
    }


def epoch_flops(train_examples: int, test_examples: int) -> float:
    """One epoch: forward + backward over the training set, then a forward pass over the validation set."""
    flops = model_flops()
    return train_examples * flops["train_per_example"] + test_examples * flops["forward_per_example"]


# --- summarising one run --------------------------------------------------------------------------

def summarize(epochs: list[dict[str, float]], target: float = TARGET) -> dict[str, Any]:
    """Seconds per epoch, time to the first epoch at ``target`` validation accuracy, final accuracy.

    ``epochs`` holds one ``{"elapsed": s since fit started, "val_accuracy": …}`` per epoch. Each
    epoch's time runs from the end of the one before (the first from the start of ``fit``), so it
    includes validation and every callback. The first epoch also pays for tracing the graph,
    so the typical epoch is the median of the later ones (the first when there is only one).
    """
    times = [record["elapsed"] - (epochs[i - 1]["elapsed"] if i else 0.0) for i, record in enumerate(epochs)]
    reached = next((i for i, record in enumerate(epochs) if record["val_accuracy"] >= target), None)
    return {
        "epoch_seconds": [round(t, 3) for t in times],
        "seconds_per_epoch": statistics.median(times[1:] or times),
        "first_epoch_seconds": times[0],
        "epoch_reaching_target": None if reached is None else reached + 1,
        "time_to_target_s": None if reached is None else epochs[reached]["elapsed"],
        "final_accuracy": epochs[-1]["val_accuracy"],
        "val_accuracy": [round(record["val_accuracy"], 4) for record in epochs],
    }


# --- the configurations ---------------------------------------------------------------------------

def configurations(default: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every benchmarked configuration, by key. ``default`` holds mnist.py's batch size and learning rate.

    Each is a plain dict (it travels to the subprocess as JSON): ``input`` is "numpy" (arrays
    straight into ``fit``, as the lesson does) or "tfdata" (tflab.pipeline.make_datasets, as
    mnist.py does); ``threads`` is [intra_op, inter_op] or None for TensorFlow's choice.
    """
    batch, rate = default["batch_size"], default["learning_rate"]
    lesson = {"input": "numpy", "batch_size": 32, "learning_rate": 0.001, "histograms": True,
              "backup": False, "jit": False, "threads": None, "env": {}, "device": "cpu", "mixed": False}
    project = {**lesson, "input": "tfdata", "batch_size": batch, "learning_rate": rate, "backup": True}

    def scaled(size: int) -> dict[str, Any]:  # Adam: scale the step with the square root of the batch
        return {**project, "batch_size": size, "learning_rate": float(f"{rate * math.sqrt(size / batch):.2g}")}

    configs = {
        "a": {**lesson, "label": "lesson as written: NumPy arrays, batch 32, Keras defaults"},
        "b": {**project, "label": "project default (Exercise1.02/mnist.py)"},
        "numpy": {**project, "input": "numpy", "backup": False,
                  "label": "default batch + lr, NumPy arrays instead of tf.data"},
        "a-tfdata": {**lesson, "input": "tfdata", "label": "lesson's batch 32 + lr, through tf.data"},
        "nohist": {**project, "histograms": False, "label": "default without weight histograms"},
        "threads-1x1": {**project, "threads": [1, 1], "label": "default, 1 intra-op x 1 inter-op thread"},
        "threads-4x2": {**project, "threads": [4, 2], "label": "default, 4 intra-op x 2 inter-op threads"},
        "jit": {**project, "jit": True, "label": "default with XLA (jit_compile=True)"},
        "no-onednn": {**project, "env": {"TF_ENABLE_ONEDNN_OPTS": "0"}, "label": "default with oneDNN off"},
    }
    for size in (64, 128, 256, 512, 1024):
        if size != batch:
            configs[f"bs{size}"] = {**scaled(size), "label": f"default pipeline, batch {size}, lr x sqrt(batch ratio)"}
    configs["gpu-b"] = {**project, "device": "gpu", "label": "project default on the GPU"}
    configs["gpu-a"] = {**lesson, "device": "gpu", "label": "lesson as written on the GPU"}
    configs["gpu-mixed"] = {**project, "device": "gpu", "mixed": True, "label": "default on the GPU, mixed_float16"}
    return configs


FULL = ["a", "b", "numpy", "a-tfdata", "nohist", "threads-1x1", "jit", "bs64", "bs128", "bs512", "bs1024",
        "gpu-b", "gpu-a", "gpu-mixed"]
QUICK = ["a", "b", "numpy", "bs1024"]


# --- the subprocess that trains one configuration -------------------------------------------------

def train_one(spec: dict[str, Any], epochs: int, train_samples: int | None, test_samples: int | None) -> dict[str, Any]:
    """Train one configuration in this process and return its measurements (runs in the child)."""
    import resource

    import tensorflow as tf

    if spec["device"] == "cpu":
        tf.config.set_visible_devices([], "GPU")
    import keras

    import tflab
    from tflab import pipeline

    mnist = load_exercise()
    seed = spec["seed"]
    pipeline.configure(seed)  # exactly as mnist.py does: seeds, and $TFLAB_THREADS if set
    if spec["threads"]:
        tf.config.threading.set_intra_op_parallelism_threads(spec["threads"][0])
        tf.config.threading.set_inter_op_parallelism_threads(spec["threads"][1])
    if spec["mixed"]:
        keras.mixed_precision.set_global_policy("mixed_float16")

    (x_train, y_train), (x_test, y_test) = tflab.load_mnist()
    x_train, y_train = pipeline.subset(x_train, y_train, train_samples)
    x_test, y_test = pipeline.subset(x_test, y_test, test_samples)
    if spec["input"] == "tfdata":  # mnist.py's pipeline
        train_ds, test_ds = pipeline.make_datasets(
            x_train, y_train, x_test, y_test, batch_size=spec["batch_size"], seed=seed)
        data = {"x": train_ds, "validation_data": test_ds}
    else:  # the lesson: scale the pixels in NumPy and hand the arrays to fit
        x_train, x_test = x_train / 255.0, x_test / 255.0
        data = {"x": x_train.reshape(-1, IMAGE, IMAGE, 1), "y": y_train,
                "validation_data": (x_test.reshape(-1, IMAGE, IMAGE, 1), y_test),
                "batch_size": spec["batch_size"]}

    model = mnist.build_model()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=spec["learning_rate"]),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=spec["jit"],
    )
    records: list[dict[str, float]] = []

    class EpochClock(keras.callbacks.Callback):
        """Goes last, so each epoch's time includes validation and the other callbacks."""

        def on_epoch_end(self, epoch, logs=None):
            records.append({"elapsed": time.perf_counter() - started, "val_accuracy": float(logs["val_accuracy"]),
                            "cpu_elapsed": time.process_time() - cpu_started})
            print(f"  epoch {epoch + 1}/{epochs}: {records[-1]['elapsed']:7.1f} s since fit started, "
                  f"val_accuracy {records[-1]['val_accuracy']:.4f}", flush=True)

    with tempfile.TemporaryDirectory(prefix="tflab-bench-") as run_dir:
        callbacks = []
        if spec["backup"]:
            callbacks.append(keras.callbacks.BackupAndRestore(backup_dir=str(Path(run_dir) / "backup")))
        callbacks.append(keras.callbacks.TensorBoard(log_dir=run_dir, histogram_freq=1 if spec["histograms"] else 0))
        callbacks.append(EpochClock())
        started, cpu_started = time.perf_counter(), time.process_time()
        model.fit(**data, epochs=epochs, callbacks=callbacks, verbose=0)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "epochs": records, **summarize(records),
        "peak_rss_mib": usage.ru_maxrss / 1024,  # Linux reports KiB
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "tensorflow_version": tf.__version__, "keras_version": keras.__version__,
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
    }


def matmul_rate(device: str, shapes: list[tuple[int, int, int]], repeats: int = 5) -> dict[str, Any]:
    """Best-of-``repeats`` float32 GFLOP/s of TensorFlow matmuls (m, k) x (k, n), and the GPU count (in the child)."""
    import tensorflow as tf

    gpus = len(tf.config.list_physical_devices("GPU"))
    if device == "cpu":
        tf.config.set_visible_devices([], "GPU")
    out = []
    with tf.device("/GPU:0" if device == "gpu" else "/CPU:0"):
        for m, k, n in shapes:
            a, b = tf.random.normal((m, k)), tf.random.normal((k, n))
            matmul = tf.function(lambda a, b: tf.matmul(a, b))
            calls = max(1, int(2e10 // (2 * m * k * n)))  # about 20 GFLOP per timing
            matmul(a, b).numpy()
            best = math.inf
            for _ in range(repeats):
                start = time.perf_counter()
                for _ in range(calls):
                    result = matmul(a, b)
                result.numpy()
                best = min(best, (time.perf_counter() - start) / calls)
            out.append({"shape": [m, k, n], "seconds": best, "gflops": 2 * m * k * n / best / 1e9})
    return {"rates": out, "gpus": gpus}


def child_main(payload: str) -> int:
    job = json.loads(payload)
    if job["kind"] == "matmul":
        result = matmul_rate(job["device"], [tuple(shape) for shape in job["shapes"]])
    else:
        result = train_one(job["spec"], job["epochs"], job["train_samples"], job["test_samples"])
    print(RESULT_TAG + json.dumps(result), flush=True)
    return 0


def run_child(job: dict[str, Any], prefix: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one job in a fresh Python; echo its progress lines; return its result (or the error)."""
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", **(env or {})}
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(job)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment, cwd=REPO,
    )
    result = None
    try:
        for line in process.stdout:
            if line.startswith(RESULT_TAG):
                result = json.loads(line[len(RESULT_TAG):])
            elif line.strip():
                print(f"{prefix}{line.rstrip()}", flush=True)
        stderr = process.stderr.read()
        process.wait()
    except BaseException:  # Ctrl-C: stop the child too
        process.kill()
        process.wait()
        raise
    if process.returncode != 0 or result is None:
        tail = [line for line in stderr.strip().splitlines() if line.strip()][-1:] or ["no output"]
        return {"error": f"exit {process.returncode}: {tail[0][:300]}"}
    return result


# --- the report -----------------------------------------------------------------------------------

def _fmt(value: float | None, pattern: str, missing: str = "-") -> str:
    return missing if value is None else format(value, pattern)


def ratio(base: float | None, value: float | None) -> float | None:
    """How many times faster ``value`` is than ``base`` (both times), or None."""
    return None if not base or not value else base / value


COLUMNS = ["config", "description", "batch", "lr", "input", "s/epoch", "epoch speed-up vs (a)",
           "time to 97% (epoch)", "time-to-97% speed-up vs (a)", "final test acc", "peak RSS MiB"]


def table(rows: list[dict[str, Any]]) -> str:
    """The Markdown table of every configuration that ran."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        spec = row["spec"]
        if "error" in row:
            cells = [row["key"], spec["label"], str(spec["batch_size"]), f"{spec['learning_rate']:g}", spec["input"],
                     f"failed: {row['error']}"] + [""] * (len(COLUMNS) - 6)
        else:
            reached = ("not reached" if row["time_to_target_s"] is None
                       else f"{row['time_to_target_s']:.1f} s ({row['epoch_reaching_target']})")
            cells = [
                row["key"], spec["label"], str(spec["batch_size"]), f"{spec['learning_rate']:g}", spec["input"],
                f"{row['seconds_per_epoch']:.2f}", _fmt(row["epoch_speedup"], ".2f") + "x" * (row["epoch_speedup"] is not None),
                reached, _fmt(row["target_speedup"], ".2f") + "x" * (row["target_speedup"] is not None),
                f"{row['final_accuracy']:.4f}", f"{row['peak_rss_mib']:.0f}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(results: dict[str, Any]) -> str:
    """results.md: the setting, the compute limit, the table and the notes."""
    limit = results["limit"]
    lines = [
        "# Training benchmark: Exercise 1.02 on MNIST",
        "",
        f"{results['machine']['cpus']} CPUs ({results['machine']['processor']}), TensorFlow "
        f"{results['tensorflow_version']}, {results['epochs']} epochs, {results['train_examples']:,} training and "
        f"{results['test_examples']:,} test images (the test set is the validation data), seed {results['seed']}. "
        f"Started {results['started']}, took {results['bench_seconds'] / 60:.1f} min.",
        "",
        f"*Time to 97%*: from the start of `fit` to the end of the first epoch whose test accuracy "
        f"is >= {TARGET:.0%}, validation and callbacks included. *s/epoch*: median of the epochs after "
        "the first (the first also builds the graph). Speed-ups are (a)'s time divided by this row's; "
        "every row ran in its own fresh process in this one run. Learning rates of the bs* rows scale "
        "the default's with the square root of the batch-size ratio.",
        "",
        table(results["rows"]),
        "",
        "## The compute limit",
        "",
    ]
    for probe in results["matmul"]:
        m, k, n = probe["shape"]
        lines.append(f"- float32 matmul ({m}, {k}) x ({k}, {n}) [{probe['what']}]: {probe['gflops']:.1f} GFLOP/s")
    lines += [
        f"- the model: {results['flops']['train_per_example'] / 1e6:.3f} MFLOP per training example "
        f"(forward {results['flops']['forward_per_example'] / 1e6:.3f}), "
        f"{limit['epoch_flops'] / 1e9:.1f} GFLOP per epoch with validation",
        f"- limit: {limit['epoch_flops'] / 1e9:.1f} GFLOP / {limit['gflops']:.1f} GFLOP/s "
        f"= {limit['seconds_per_epoch']:.2f} s per epoch ({limit['defined_by']})",
    ]
    if limit.get("default_percent") is not None:
        lines.append(f"- the default (b) runs at {limit['default_percent']:.0f}% of that limit "
                     f"({limit['seconds_per_epoch']:.2f} s / {limit['default_seconds_per_epoch']:.2f} s per epoch, "
                     f"{limit['default_factor']:.2f}x the limit)")
    lines += ["", *[f"- {note}" for note in results["notes"]], ""]
    return "\n".join(lines)


# --- the driver -----------------------------------------------------------------------------------

def parse_args(argv: list[str] | None, known: list[str]):
    parser = params.LabArgumentParser(prog="bench.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)} (about a third of the time)")
    parser.add_argument("--configs", default=None,
                        help=f"comma-separated keys to run, in order (default: {','.join(FULL)}); known: {','.join(known)}")
    parser.add_argument("--epochs", type=params.arg_type(lambda v, n: params.int_in_range(v, n, 1, 100), "--epochs"),
                        default=5, help="epochs per configuration (default 5)")
    parser.add_argument("--seed", type=params.arg_type(lambda v, n: params.int_in_range(v, n, 0, 2**31 - 1), "--seed"),
                        default=None, help="random seed (default: mnist.py's SEED)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for results.md and results.json")
    # For the test suite: train and validate on the first N images only.
    parser.add_argument("--train-samples", type=params.arg_type(params.train_samples, "--train-samples"),
                        default=None, help=argparse.SUPPRESS)
    parser.add_argument("--test-samples", type=params.arg_type(lambda v, n: params.int_in_range(v, n, 1, 10000),
                                                               "--test-samples"), default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    keys = QUICK if args.quick else FULL
    if args.configs is not None:
        keys = [key.strip() for key in args.configs.split(",") if key.strip()]
        unknown = [key for key in keys if key not in known]
        if unknown or not keys:
            parser.error(f"--configs must be comma-separated keys from {','.join(known)}, got {args.configs!r}")
    args.keys = keys
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child_main(argv[1])
    mnist = load_exercise()  # TensorFlow-free at import: only its constants and functions
    default = {"batch_size": mnist.BATCH_SIZE, "learning_rate": mnist.LEARNING_RATE}
    configs = configurations(default)
    args = parse_args(argv, list(configs))
    seed = mnist.SEED if args.seed is None else args.seed
    bench_start = time.perf_counter()

    batch = default["batch_size"]
    shapes = [(batch, FILTERS * (IMAGE - KERNEL + 1) ** 2, HIDDEN), (2048, 2048, 2048)]
    what = [f"the dense layer's forward pass at the default batch {batch}", "a large square matmul"]

    def probe(device: str) -> tuple[list[dict[str, Any]], int]:
        print(f"[matmul/{device}] measuring float32 matmul GFLOP/s", flush=True)
        found = run_child({"kind": "matmul", "device": device, "shapes": shapes}, f"[matmul/{device}] ")
        if "error" in found:
            params.fail(f"the matmul probe failed: {found['error']}")
        for item, label in zip(found["rates"], what):
            item.update(what=label, device=device)
        return found["rates"], found["gpus"]

    matmul, gpus = probe("cpu")
    has_gpu = gpus > 0
    notes = []
    keys = [key for key in args.keys if has_gpu or configs[key]["device"] != "gpu"]
    if not has_gpu:
        print("no GPU: GPU variants skipped", flush=True)
        notes.append("no GPU: GPU variants skipped")

    train_examples = args.train_samples or 60_000
    test_examples = args.test_samples or 10_000
    rows = []
    for number, key in enumerate(keys, 1):
        spec = {**configs[key], "seed": seed}
        print(f"[{number}/{len(keys)}] {key}: {spec['label']} (batch {spec['batch_size']}, "
              f"lr {spec['learning_rate']:g}, {spec['input']})", flush=True)
        job = {"kind": "train", "spec": spec, "epochs": args.epochs,
               "train_samples": args.train_samples, "test_samples": args.test_samples}
        found = run_child(job, f"[{key}] ", env=spec["env"])
        rows.append({"key": key, "spec": spec, **found})
        if "error" in found:
            print(f"[{key}] failed: {found['error']}", flush=True)
        else:
            print(f"[{key}] {found['seconds_per_epoch']:.2f} s/epoch, time to 97%: "
                  f"{_fmt(found['time_to_target_s'], '.1f', 'not reached')}, final {found['final_accuracy']:.4f}, "
                  f"peak RSS {found['peak_rss_mib']:.0f} MiB", flush=True)
    # Probe again at the end: on a shared machine the best of the two is the fairer ceiling.
    for before, after in zip(matmul, probe("cpu")[0]):
        before["gflops_start"], before["gflops_end"] = before["gflops"], after["gflops"]
        before["gflops"] = max(before["gflops"], after["gflops"])

    baseline = next((row for row in rows if row["key"] == "a" and "error" not in row), None)
    for row in rows:
        if "error" not in row:
            row["epoch_speedup"] = ratio(baseline and baseline["seconds_per_epoch"], row["seconds_per_epoch"])
            row["target_speedup"] = ratio(baseline and baseline["time_to_target_s"], row["time_to_target_s"])

    flops = model_flops()
    peak = max(matmul, key=lambda item: item["gflops"])
    limit = {
        "epoch_flops": epoch_flops(train_examples, test_examples),
        "gflops": peak["gflops"],
        "defined_by": f"the fastest measured matmul, {peak['what']}: no part of the model can run faster "
                      "than the best the machine does on its own",
    }
    limit["seconds_per_epoch"] = limit["epoch_flops"] / (limit["gflops"] * 1e9)
    default_row = next((row for row in rows if row["key"] == "b" and "error" not in row), None)
    if default_row:
        limit["default_seconds_per_epoch"] = default_row["seconds_per_epoch"]
        limit["default_percent"] = 100 * limit["seconds_per_epoch"] / default_row["seconds_per_epoch"]
        limit["default_factor"] = default_row["seconds_per_epoch"] / limit["seconds_per_epoch"]
    results = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() - (time.perf_counter() - bench_start))),
        "bench_seconds": time.perf_counter() - bench_start,
        "epochs": args.epochs, "seed": seed, "target": TARGET,
        "train_examples": train_examples, "test_examples": test_examples,
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version(), "gpu": has_gpu},
        "tensorflow_version": next((row.get("tensorflow_version") for row in rows if "error" not in row), None),
        "gpu": "present" if has_gpu else "no GPU: GPU variants skipped",
        "default": default, "flops": flops, "matmul": matmul, "limit": limit, "rows": rows, "notes": notes,
    }
    markdown = report(results)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic.write_json(args.out / "results.json", results)
    atomic.write_text(args.out / "results.md", markdown)
    print()
    print(markdown)
    print(f"wrote {args.out / 'results.md'} and {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
