"""Sparse inference end to end: sparsec dense vs sparsec sparse vs onnxruntime (host) and onnxruntime-web (Node).

    python benchmarks/bench_sparse.py                       # mobilenet_v2, resnet18, bert_encoder at 0/70/80/90 %
    python benchmarks/bench_sparse.py --models mobilenet_v2 --sparsities 0,0.9 --repeats 10 --no-wasm

Each zoo model is sparsified (unstructured magnitude pruning, `sparsec.sparsify`) to each sparsity and compiled
twice: with sparse kernels where the cost model says they pay (`sparse`) and with `--dense` (`dense`). On the host the
two sparsec sessions and onnxruntime (on the same model with its zeros) are timed interleaved in one loop, 1 thread;
in Node, sparsec's wasm32 build and onnxruntime-web run in one process (benchmarks/bench_wasm.mjs). Writes a table,
JSON (machine, CPU flags, date, commit, repeats, load average) and a PNG of latency vs sparsity.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sparsec
from bench_host import machine_info, ort_session, progress
from bench_wasm import NODE_DRIVER, WARMUP_RUNS

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
import zoo  # noqa: E402

MODELS = ["mobilenet_v2", "resnet18", "bert_encoder"]
SPARSITIES = [0.0, 0.7, 0.8, 0.9]
KINDS = ("dense", "sparse")


def prepare(name: str, sparsity: float, workdir: Path, targets: list[str]) -> dict:
    """The model with its zeros (ONNX), and its dense and sparse artifacts per target."""
    stem = f"{name}-{round(sparsity * 100)}"
    onnx_path = workdir / f"{stem}.onnx"
    source = str(zoo.cached(name))
    if sparsity:
        proto, _ = sparsec.sparsify(source, sparsity=sparsity)
        onnx_path.write_bytes(proto.SerializeToString())
    else:
        shutil.copy(source, onnx_path)
    entry = {"model": name, "sparsity": sparsity, "onnx": onnx_path, "spx": {}, "layers": {}}
    for target in targets:
        for kind in KINDS:
            result = sparsec.compile(onnx_path, target=target, output=workdir / target / f"{stem}-{kind}.spx",
                                     sparse_kernels=kind == "sparse")
            entry["spx"][target, kind] = result.path
            layers = result.report["layers"]
            entry["layers"][target, kind] = sum(r["decision"] == "sparse" for r in layers), len(layers)
    return entry


def time_host(entry: dict, repeats: int) -> dict:
    """Median ms of sparsec dense, sparsec sparse and onnxruntime, interleaved (the order rotates)."""
    feed = zoo.example_inputs(entry["model"])
    sessions = {kind: sparsec.load(entry["spx"]["x86_64", kind]) for kind in KINDS}
    ort = ort_session(entry["onnx"])
    runs = {**{f"sparsec_{kind}": sessions[kind] for kind in KINDS}, "onnxruntime": ort}
    for session in runs.values():
        for _ in range(WARMUP_RUNS):
            session.run(None, feed)
    names = list(runs)
    samples = {name: [] for name in names}
    for i in range(repeats):
        for name in names[i % len(names):] + names[:i % len(names)]:
            start = time.perf_counter()
            runs[name].run(None, feed)
            samples[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(values) for name, values in samples.items()}


def time_wasm(entries: list[dict], repeats: int, workdir: Path) -> dict:
    """(model, sparsity) -> median ms of sparsec_dense, sparsec_sparse and onnxruntime_web, in one Node run."""
    models = []
    for e in entries:
        inputs = []
        for input_name, value in zoo.example_inputs(e["model"]).items():
            path = workdir / f"{e['model']}.{input_name}.bin"
            value.tofile(path)
            inputs.append(str(path))
        for kind in KINDS:
            models.append({"name": f"{e['model']}|{e['sparsity']}|{kind}", "onnx": str(e["onnx"]),
                           "spx": str(e["spx"]["wasm32", kind]), "inputs": inputs})
    spec = {"sparsec_js": str(workdir / "wasm32" / "sparsec.js"), "warmup": WARMUP_RUNS, "repeats": repeats,
            "models": models}
    (workdir / "spec.json").write_text(json.dumps(spec))
    run = subprocess.run([shutil.which("node"), str(NODE_DRIVER), str(workdir / "spec.json")], stdout=subprocess.PIPE,
                         text=True, cwd=REPO)
    if run.returncode != 0:
        raise SystemExit(f"{NODE_DRIVER.name} failed (exit code {run.returncode})")
    times: dict = {}
    for m in json.loads(run.stdout)["models"]:
        name, sparsity, kind = m["model"].split("|")
        row = times.setdefault((name, float(sparsity)), {"onnxruntime_web": []})
        row[f"sparsec_{kind}"] = statistics.median(m["sparsec_samples_ms"])
        row["onnxruntime_web"] += m["ort_samples_ms"]  # timed twice, beside each sparsec artifact
        row[f"max_rel_error_{kind}"] = m["max_rel_error"]
    for row in times.values():
        row["onnxruntime_web"] = statistics.median(row["onnxruntime_web"])
    return times


def goals(rows: list[dict]) -> list[str]:
    """Issue 10's goals, measured on these rows."""
    at = {(r["model"], r["sparsity"]): r for r in rows}
    lines = []
    mnv2 = lambda s: at.get(("mobilenet_v2", s), {})  # noqa: E731
    if "wasm_sparsec_sparse" in mnv2(0.9) and "wasm_onnxruntime_web" in mnv2(0.0):
        ratio = mnv2(0.0)["wasm_onnxruntime_web"] / mnv2(0.9)["wasm_sparsec_sparse"]
        lines.append(f"mobilenet_v2 90% wasm32 sparse vs onnxruntime-web dense: {ratio:.2f}x faster (goal >= 3)")
    if "wasm_sparsec_sparse" in mnv2(0.8):
        ratio = mnv2(0.8)["wasm_sparsec_dense"] / mnv2(0.8)["wasm_sparsec_sparse"]
        lines.append(f"mobilenet_v2 80% wasm32 sparse vs sparsec dense: {ratio:.2f}x faster (goal >= 1.5)")
    if "host_sparsec_sparse" in mnv2(0.9) and "host_onnxruntime" in mnv2(0.0):
        ratio = mnv2(0.0)["host_onnxruntime"] / mnv2(0.9)["host_sparsec_sparse"]
        lines.append(f"mobilenet_v2 90% host sparse vs onnxruntime dense: {ratio:.2f}x faster (goal > 1)")
    return lines


def format_table(rows: list[dict]) -> str:
    columns = [("host_sparsec_dense", "host dense"), ("host_sparsec_sparse", "host sparse"), ("host_onnxruntime", "ort"),
               ("wasm_sparsec_dense", "wasm dense"), ("wasm_sparsec_sparse", "wasm sparse"),
               ("wasm_onnxruntime_web", "ort-web")]
    lines = [f"{'model':<14} {'zeros':>5} {'sparse layers':>13} " + " ".join(f"{title:>11}" for _, title in columns)
             + "   (ms, median)"]
    for r in rows:
        cells = " ".join(f"{r[key]:>11.2f}" if key in r else f"{'-':>11}" for key, _ in columns)
        lines.append(f"{r['model']:<14} {r['sparsity']:>5.0%} {r['sparse_layers']:>13} {cells}")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 4), squeeze=False)
    series = [("host_sparsec_dense", "host sparsec dense", "C0", "--"), ("host_sparsec_sparse", "host sparsec sparse", "C0", "-"),
              ("host_onnxruntime", "onnxruntime", "C0", ":"), ("wasm_sparsec_dense", "wasm32 sparsec dense", "C1", "--"),
              ("wasm_sparsec_sparse", "wasm32 sparsec sparse", "C1", "-"), ("wasm_onnxruntime_web", "onnxruntime-web", "C1", ":")]
    for ax, model in zip(axes[0], models):
        mine = [r for r in rows if r["model"] == model]
        for key, label, color, style in series:
            points = [(r["sparsity"] * 100, r[key]) for r in mine if key in r]
            if points:
                ax.plot(*zip(*points), label=label, color=color, linestyle=style, marker="o")
        ax.set_title(model)
        ax.set_xlabel("weights zero (%)")
        ax.set_ylabel("latency (ms, 1 thread)")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--sparsities", default=",".join(map(str, SPARSITIES)))
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--no-wasm", action="store_true", help="host only")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "sparse"),
                        help="path stem of the .json and .png written")
    args = parser.parse_args()
    names, sparsities = args.models.split(","), [float(s) for s in args.sparsities.split(",")]
    targets = ["x86_64"] + ([] if args.no_wasm else ["wasm32"])
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory(prefix="sparsec-bench-sparse-") as tmp:
        workdir = Path(tmp)
        entries = []
        for name in names:
            for sparsity in sparsities:
                progress(f"{name} at {sparsity:.0%}: sparsify and compile for {', '.join(targets)}")
                entries.append(prepare(name, sparsity, workdir, targets))
        for e in entries:
            progress(f"{e['model']} at {e['sparsity']:.0%}: timing on the host")
            host = time_host(e, args.repeats)
            sparse, total = e["layers"]["x86_64", "sparse"]
            rows.append({"model": e["model"], "sparsity": e["sparsity"], "sparse_layers": f"{sparse}/{total}",
                         **{f"host_{k}": v for k, v in host.items()}})
        if not args.no_wasm:
            progress("timing in Node (wasm32 and onnxruntime-web)")
            wasm = time_wasm(entries, args.repeats, workdir)
            for row, e in zip(rows, entries):
                sparse, total = e["layers"]["wasm32", "sparse"]
                row["wasm_sparse_layers"] = f"{sparse}/{total}"
                row.update({f"wasm_{k}" if not k.startswith("max") else k: v
                            for k, v in wasm[e["model"], e["sparsity"]].items()})
    load_after = os.getloadavg()
    print(format_table(rows))
    for line in goals(rows):
        print(line)
    info = machine_info()
    print(f"{info['cpu_model']} ({', '.join(info['simd_flags'])}), {info['date']}, commit {info['commit']}, "
          f"{args.repeats} repeats, load average {load_before[0]:.2f} before / {load_after[0]:.2f} after")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"machine": info, "repeats": args.repeats, "threads": 1, "pattern": "unstructured",
              "load_average_before": load_before, "load_average_after": load_after, "rows": rows, "goals": goals(rows)}
    out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    plot(rows, out.with_suffix(".png"))
    progress(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
