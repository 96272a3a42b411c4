"""sparsec vs onnxruntime on this machine: 1 thread, batch 1 (or 8), latency, memory and artifact size.

    python benchmarks/bench_host.py                          # mobilenet_v2, resnet18
    python benchmarks/bench_host.py --all --repeats 10       # every model in tests/zoo.py
    python benchmarks/bench_host.py --models squeezenet1_1,bert_encoder --json out.json --plot out.png
    python benchmarks/bench_host.py --baseline ../old/.venv/bin/python   # + another sparsec build, same run
    python benchmarks/bench_host.py --models mobilenet_v2 --batch 8 --layers 10   # + the 10 convs furthest behind

Models come from the test zoo (exported with torch on first use, then cached). Latency is timed
interleaved, sparsec and onnxruntime alternating in one loop, so machine noise hits both alike.
Peak RSS growth is measured per engine in a fresh spawned process, so neither engine's allocations
(nor the compiler's) leak into the other's number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

import sparsec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import zoo  # noqa: E402
from bench_train import BATCH, batch_model  # noqa: E402

DEFAULT_MODELS = ["mobilenet_v2", "resnet18"]
WARMUP_RUNS = 3
RSS_RUNS = 5
MB = 1024 * 1024


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def ort_session(onnx_path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def max_rel_error(actual: np.ndarray, expected: np.ndarray) -> float:
    scale = max(float(np.max(np.abs(expected))), 1e-12)
    return float(np.max(np.abs(actual.astype(np.float64) - expected))) / scale


def peak_rss_bytes() -> int:
    """This process's peak RSS. On Linux ru_maxrss survives fork+exec, so a fresh child would start
    at the parent's peak and show no growth; /proc's VmHWM belongs to this process alone."""
    status = Path("/proc/self/status")
    if status.exists():
        hwm_line = next(line for line in status.read_text().splitlines() if line.startswith("VmHWM:"))
        return int(hwm_line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS


def peak_rss_growth(engine: str, model_name: str, path: str, batch: int) -> float:
    """Runs in a spawned child: MB of peak RSS added by creating one session and running it."""
    feed = model_and_feed(model_name, batch, Path(path).parent)[1]
    before = peak_rss_bytes()
    session = sparsec.load(path) if engine == "sparsec" else ort_session(Path(path))
    for _ in range(RSS_RUNS):
        session.run(None, feed)
    return (peak_rss_bytes() - before) / MB


def measure_in_fresh_process(engine: str, model_name: str, path: Path, batch: int) -> float:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(peak_rss_growth, engine, model_name, str(path), batch).result()


# Runs in the baseline's interpreter (another sparsec build): compiles with that sparsec, then times one run per
# line read from stdin and prints its milliseconds.
BASELINE_WORKER = """
import sys, time, numpy as np, sparsec
session = sparsec.load(sparsec.compile(sys.argv[1], output=sys.argv[2]).path)
feed = dict(np.load(sys.argv[3]))
print("ready", flush=True)
for _ in sys.stdin:
    start = time.perf_counter()
    session.run(None, feed)
    print((time.perf_counter() - start) * 1e3, flush=True)
"""


class Baseline:
    """Another sparsec (e.g. the previous commit's build, in its own virtualenv), timed in this run's loop."""

    def __init__(self, python: str, onnx_path: Path, feed: dict, workdir: Path) -> None:
        np.savez(workdir / "baseline_feed.npz", **feed)
        self.proc = subprocess.Popen([python, "-c", BASELINE_WORKER, str(onnx_path), str(workdir / "baseline"),
                                      str(workdir / "baseline_feed.npz")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the baseline worker failed to start (see its stderr)")

    def run_ms(self) -> float:
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def time_interleaved(ours: sparsec.Session, theirs: ort.InferenceSession, feed: dict, repeats: int,
                     baseline: Baseline | None = None) -> dict[str, float]:
    """Median ms of each engine; the order rotates every iteration so none always gets the caches another just
    warmed."""
    def timed(run):
        start = time.perf_counter()
        run()
        return (time.perf_counter() - start) * 1e3

    runs = {"sparsec": lambda: timed(lambda: ours.run(None, feed)), "ort": lambda: timed(lambda: theirs.run(None, feed))}
    if baseline:
        runs["baseline"] = baseline.run_ms
    names = list(runs)
    samples = {name: [] for name in runs}
    for i in range(repeats):
        for name in names[i % len(names):] + names[:i % len(names)]:
            samples[name].append(runs[name]())
    return {name: statistics.median(values) for name, values in samples.items()}


def model_and_feed(name: str, batch: int, workdir: Path) -> tuple[Path, dict]:
    """The zoo model and its inputs at batch 1 or BATCH (images of different seeds)."""
    if batch == 1:
        return zoo.cached(name), zoo.example_inputs(name)
    feeds = [zoo.example_inputs(name, seed) for seed in range(batch)]
    return batch_model(name, workdir), {k: np.concatenate([f[k] for f in feeds]) for k in feeds[0]}


def conv_layers(ours: sparsec.Session, onnx_path: Path, feed: dict, repeats: int) -> list[dict]:
    """Per-Conv fastest ms of each engine, paired in graph order (onnxruntime fuses the activations
    and batch norms into its Convs and renames them), sorted by how far sparsec is behind."""
    runs = [ours.profile(feed, repeats=1) for _ in range(repeats)]
    ours_ms = [(name, min(run[i][2] for run in runs) * 1e3)
               for i, (name, kind, _) in enumerate(runs[0]) if kind == "Conv"]
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.enable_profiling = True
    options.profile_file_prefix = str(onnx_path.parent / "ort-profile")
    theirs = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    for _ in range(repeats + 1):
        theirs.run(None, feed)
    events = json.loads(Path(theirs.end_profiling()).read_text())
    theirs_ms: dict[str, list[float]] = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["args"].get("op_name") == "Conv":
            theirs_ms.setdefault(e["name"], []).append(e["dur"] / 1e3)
    theirs_min = [min(times[1:]) for times in theirs_ms.values()]  # the first run warms up
    if len(theirs_min) != len(ours_ms):
        progress(f"Conv counts differ (sparsec {len(ours_ms)}, onnxruntime {len(theirs_min)}): no per-layer table")
        return []
    graph = onnx.load(onnx_path)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in (*graph.graph.value_info, *graph.graph.input)}
    weights = {t.name: list(t.dims) for t in graph.graph.initializer}
    described = {n.name: f"x{shapes.get(n.input[0])} w{weights.get(n.input[1])}" for n in graph.graph.node
                 if n.op_type == "Conv"}
    rows = [{"node": name, "shape": described.get(name, "?"), "sparsec_ms": ms, "ort_ms": theirs}
            for (name, ms), theirs in zip(ours_ms, theirs_min)]
    return sorted(rows, key=lambda r: r["ort_ms"] - r["sparsec_ms"])


def bench_model(name: str, workdir: Path, repeats: int, baseline_python: str | None = None, batch: int = 1,
                layers: int = 0) -> dict:
    progress(f"{name}: preparing ONNX (exported with torch on first use)")
    onnx_path, feed = model_and_feed(name, batch, workdir)
    progress(f"{name}: compiling")
    result = sparsec.compile(onnx_path, output=workdir)
    ours, theirs = sparsec.load(result.path), ort_session(onnx_path)

    progress(f"{name}: timing ({WARMUP_RUNS} warm-up + {repeats} interleaved runs each)")
    error = max(max_rel_error(a, b) for a, b in zip(ours.run(None, feed), theirs.run(None, feed)))
    baseline = Baseline(baseline_python, onnx_path, feed, workdir) if baseline_python else None
    for _ in range(WARMUP_RUNS):
        ours.run(None, feed)
        theirs.run(None, feed)
        if baseline:
            baseline.run_ms()
    medians = time_interleaved(ours, theirs, feed, repeats, baseline)
    if baseline:
        baseline.close()
    sparsec_ms, ort_ms = medians["sparsec"], medians["ort"]

    conv_rows = []
    if layers:
        progress(f"{name}: per-layer profiles ({repeats} runs each, fastest kept)")
        conv_rows = conv_layers(ours, onnx_path, feed, repeats)
    progress(f"{name}: peak RSS, one fresh process per engine")
    return {
        "model": name,
        "batch": batch,
        **({"conv_layers": conv_rows} if layers else {}),
        "sparsec_ms": sparsec_ms,
        "ort_ms": ort_ms,
        "ratio": sparsec_ms / ort_ms,
        **({"baseline_ms": medians["baseline"], "vs_baseline": sparsec_ms / medians["baseline"]} if baseline else {}),
        "max_rel_error": error,
        "arena_bytes": ours.arena_bytes,
        "planned_activation_bytes": result.report["peak_activation_bytes"],
        "naive_activation_bytes": result.report["naive_activation_bytes"],
        "sparsec_rss_mb": measure_in_fresh_process("sparsec", name, result.path, batch),
        "ort_rss_mb": measure_in_fresh_process("ort", name, onnx_path, batch),
        "artifact_bytes": result.path.stat().st_size,
        "onnx_bytes": onnx_path.stat().st_size,
    }


# (header, row key, format); byte counts are shown in MB.
COLUMNS = [
    ("model", "model", "{:<18}"),
    ("sparsec ms", "sparsec_ms", "{:>10.2f}"),
    ("ort ms", "ort_ms", "{:>8.2f}"),
    ("ratio", "ratio", "{:>6.2f}"),
    ("rel err", "max_rel_error", "{:>8.1e}"),
    ("arena MB", "arena_bytes", "{:>8.2f}"),
    ("plan MB", "planned_activation_bytes", "{:>8.2f}"),
    ("naive MB", "naive_activation_bytes", "{:>8.2f}"),
    ("RSS spx MB", "sparsec_rss_mb", "{:>10.1f}"),
    ("RSS ort MB", "ort_rss_mb", "{:>10.1f}"),
    ("spx MB", "artifact_bytes", "{:>8.2f}"),
    ("onnx MB", "onnx_bytes", "{:>8.2f}"),
]


BASELINE_COLUMNS = [("base ms", "baseline_ms", "{:>8.2f}"), ("vs base", "vs_baseline", "{:>7.2f}")]


def format_table(rows: list[dict]) -> str:
    columns = COLUMNS[:4] + BASELINE_COLUMNS + COLUMNS[4:] if rows and "baseline_ms" in rows[0] else COLUMNS
    # Every format is at least as wide as its header, so headers line up with their cells.
    header_cells = [header.ljust(18) if key == "model" else header.rjust(len(fmt.format(0.0)))
                    for header, key, fmt in columns]
    lines = ["  ".join(header_cells)]
    for row in rows:
        cells = [row[key] / MB if key.endswith("_bytes") else row[key] for _, key, _ in columns]
        lines.append("  ".join(fmt.format(cell) for (_, _, fmt), cell in zip(columns, cells)))
    return "\n".join(lines)


SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
              "avx512_fp16", "asimd", "sve")


def cpu_info() -> dict:
    """CPU model and SIMD flags (lscpu): host ratios against onnxruntime move with AVX2 vs AVX-512."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"cpu_model": platform.processor(), "simd_flags": []}
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    flags = fields.get("Flags", "").split()
    return {"cpu_model": fields.get("Model name", "?").strip(), "simd_flags": [f for f in SIMD_FLAGS if f in flags]}


def git_commit() -> str:
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty"], capture_output=True, text=True)
    return proc.stdout.strip() or "unknown"


def machine_info() -> dict:
    return {
        **cpu_info(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "commit": git_commit(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
        "sparsec": sparsec.__version__,
        "runtime_target": sparsec.runtime_target(),
    }


def plot_ratios(rows: list[dict], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        progress(f"matplotlib is not installed; skipping the plot {path}")
        return
    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(rows)), 3.5))
    ax.bar([r["model"] for r in rows], [r["ratio"] for r in rows])
    ax.axhline(1.0, color="black", linewidth=0.8)  # below the line: sparsec is faster
    ax.set_ylabel("latency sparsec / onnxruntime")
    ax.set_title("1 thread, batch 1: lower is better")
    ax.tick_params(axis="x", labelrotation=45)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    progress(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--all", action="store_true", help="every model in tests/zoo.py")
    choice.add_argument("--models", help=f"comma-separated zoo names (default {','.join(DEFAULT_MODELS)})")
    parser.add_argument("--repeats", type=int, default=30, help="timed runs per engine (default 30)")
    parser.add_argument("--json", help="write rows and machine info to this file")
    parser.add_argument("--plot", help="write a bar chart of latency ratios to this PNG")
    parser.add_argument("--batch", type=int, choices=(1, BATCH), default=1, help="images per run (default 1)")
    parser.add_argument("--layers", type=int, default=0, metavar="N",
                        help="also profile both engines per Conv and print the N furthest behind")
    parser.add_argument("--baseline", metavar="PYTHON",
                        help="an interpreter with another sparsec installed (e.g. the previous commit's): timed in "
                             "the same interleaved loop, reported as base ms and our/base ratio")
    args = parser.parse_args()

    names = list(zoo.ZOO) if args.all else args.models.split(",") if args.models else DEFAULT_MODELS
    unknown = [n for n in names if n not in zoo.ZOO]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; the zoo has {', '.join(zoo.ZOO)}")

    rows, failures = [], {}
    with tempfile.TemporaryDirectory(prefix="sparsec-bench-") as workdir:
        for name in names:
            try:
                rows.append(bench_model(name, Path(workdir), args.repeats, args.baseline, args.batch, args.layers))
            except sparsec.SparsecError as e:  # one unsupported model should not sink an --all run
                progress(f"{name}: FAILED: {e}")
                failures[name] = str(e)

    info = machine_info()
    print(f"{info['cpu_model']} ({', '.join(info['simd_flags'])}), {info['date']}, commit {info['commit']}, "
          f"{args.repeats} repeats, batch {args.batch}, load average {os.getloadavg()[0]:.2f}")
    print(format_table(rows))
    for row in rows:
        for layer in row.get("conv_layers", [])[:args.layers]:
            print(f"  {row['model']:<14} {layer['sparsec_ms']:7.3f} ms vs {layer['ort_ms']:7.3f} ms  "
                  f"{layer['shape']:<36} {layer['node']}")
    for name, message in failures.items():
        print(f"{name}: failed: {message}")
    if args.json:
        report = {"machine": info, "repeats": args.repeats, "batch": args.batch, "load_average": os.getloadavg(),
                  "rows": rows, "failures": failures}
        Path(args.json).write_text(json.dumps(report, indent=2))
        progress(f"wrote {args.json}")
    if args.plot:
        plot_ratios(rows, args.plot)


if __name__ == "__main__":
    main()
