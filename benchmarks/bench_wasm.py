"""sparsec's wasm32 build vs onnxruntime-web (wasm backend), both in one Node process: 1 thread, SIMD, batch 1.

    python benchmarks/bench_wasm.py                                  # mobilenet_v2, resnet18
    python benchmarks/bench_wasm.py --models squeezenet1_1 --repeats 30 --json out.json

Needs node (>= 20) and the repo's Node packages (`npm ci` in the repo root installs onnxruntime-web).
Models come from the test zoo (exported with torch on first use, then cached) and are compiled with
--target wasm32; benchmarks/bench_wasm.mjs then times both engines interleaved in a single Node run.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import sparsec

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
import zoo  # noqa: E402

DEFAULT_MODELS = ["mobilenet_v2", "resnet18"]
NODE_DRIVER = REPO / "benchmarks" / "bench_wasm.mjs"
WARMUP_RUNS = 3


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def prepare(names: list[str], workdir: Path) -> list[dict]:
    """Compiles each model for wasm32 and writes its inputs: the Node driver's model entries."""
    models = []
    for name in names:
        progress(f"{name}: preparing ONNX (exported with torch on first use) and compiling for wasm32")
        onnx_path = zoo.cached(name)
        # All artifacts share workdir: each compile writes the same runtime files there, so one sparsec.js serves all.
        spx = sparsec.compile(onnx_path, target="wasm32", output=workdir / f"{name}.spx").path
        inputs = []
        for input_name, value in zoo.example_inputs(name).items():
            path = workdir / f"{name}.{input_name}.bin"
            value.tofile(path)
            inputs.append(str(path))
        models.append({"name": name, "onnx": str(onnx_path), "spx": str(spx), "inputs": inputs})
    return models


def summarise(result: dict) -> dict:
    sparsec_ms = statistics.median(result["sparsec_samples_ms"])
    ort_ms = statistics.median(result["ort_samples_ms"])
    return {"model": result["model"], "sparsec_ms": sparsec_ms, "ort_web_ms": ort_ms, "ratio": sparsec_ms / ort_ms,
            "max_rel_error": result["max_rel_error"], **{k: result[k] for k in ("sparsec_samples_ms", "ort_samples_ms")}}


def format_table(rows: list[dict]) -> str:
    lines = [f"{'model':<18}  {'sparsec ms':>10}  {'ort-web ms':>10}  {'ratio':>6}  {'rel err':>8}"]
    for r in rows:
        lines.append(f"{r['model']:<18}  {r['sparsec_ms']:>10.2f}  {r['ort_web_ms']:>10.2f}  {r['ratio']:>6.2f}"
                     f"  {r['max_rel_error']:>8.1e}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help=f"comma-separated zoo names (default {','.join(DEFAULT_MODELS)})")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per engine (default 20)")
    parser.add_argument("--json", help="write rows, samples and versions to this file")
    args = parser.parse_args()

    names = args.models.split(",") if args.models else DEFAULT_MODELS
    unknown = [n for n in names if n not in zoo.ZOO]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; the zoo has {', '.join(zoo.ZOO)}")
    node = shutil.which("node")
    if not node:
        raise SystemExit("node not found: apt-get install nodejs (Node >= 20)")
    if not (REPO / "node_modules" / "onnxruntime-web").is_dir():
        raise SystemExit("onnxruntime-web not found: run `npm ci` in the repo root")

    with tempfile.TemporaryDirectory(prefix="sparsec-bench-wasm-") as tmp:
        workdir = Path(tmp)
        spec = {"sparsec_js": str(workdir / "sparsec.js"), "warmup": WARMUP_RUNS, "repeats": args.repeats,
                "models": prepare(names, workdir)}
        (workdir / "spec.json").write_text(json.dumps(spec))
        progress("timing in one Node process")
        run = subprocess.run([node, str(NODE_DRIVER), str(workdir / "spec.json")], stdout=subprocess.PIPE, text=True)
    if run.returncode != 0:
        raise SystemExit(f"{NODE_DRIVER.name} failed (exit code {run.returncode})")
    result = json.loads(run.stdout)
    rows = [summarise(m) for m in result["models"]]

    print(format_table(rows))
    if args.json:
        report = {"machine": {"platform": platform.platform(), "node": result["node"],
                              "onnxruntime_web": result["onnxruntime_web"], "sparsec": sparsec.__version__},
                  "repeats": args.repeats, "rows": rows}
        Path(args.json).write_text(json.dumps(report, indent=2))
        progress(f"wrote {args.json}")


if __name__ == "__main__":
    main()
