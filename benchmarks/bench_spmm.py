"""Sparse 1x1-conv kernels (SpMM) vs sparsec's own dense GEMM on MobileNet shapes, host, wasm32 and arm64.

    python benchmarks/bench_spmm.py [--targets host,wasm32,arm64] [--min-seconds 0.05] [--json out.json]

The 19 MobileNetV2 and 9 MobileNetV1 pointwise shapes (224x224 input) at 0/50/70/80/90/95% sparsity, W pruned in
whole blocks of MB = 1, 2, 4 output channels (the BLOCKED variants) and 2:4 at 50%; every sparse run is timed right
after the dense f32_gemm on the same shape in one driver run (benchmarks/kernels_bench.cpp `spmm`); the speed-up is
over the best of a shape's dense runs. GFLOP/s count the nonzeros (2 * nonzeros * N). host and wasm32 (Node, 1
thread) are timed; arm64 counts executed instructions under qemu (benchmarks/icount_arm64.py) on two shapes. Per
target and MB: the break-even density (where the mean sparse/dense time crosses 1) and a least-squares fit relative
time = c0 + c1 * density, for a cost model to read from the JSON:
{"machine": {...}, "targets": [{"target", "measure", "rows": [{"shape", "sparsity", "variant", "speedup", ...}],
"fits": [{"mb", "variant", "c0", "c1", "break_even_density"}]}]}.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_kernels import KERNEL_FLAGS, WASI_RUNNER, WASM_FLAGS, build, compiler
from icount_arm64 import CALLS, executed_by_blocks

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "compiler"))
from sparsec.contract.schema import KERNEL_BY_JOB  # noqa: E402

# (M, K, N) = (output channels, input channels, pixels) of every distinct 1x1 conv.
MOBILENET_V2 = [
    (16, 32, 12544), (96, 16, 12544), (24, 96, 3136), (144, 24, 3136), (24, 144, 3136), (32, 144, 784),
    (192, 32, 784), (32, 192, 784), (64, 192, 196), (384, 64, 196), (64, 384, 196), (96, 384, 196),
    (576, 96, 196), (96, 576, 196), (160, 576, 49), (960, 160, 49), (160, 960, 49), (320, 960, 49),
    (1280, 320, 49),
]
MOBILENET_V1 = [
    (64, 32, 12544), (128, 64, 3136), (128, 128, 3136), (256, 128, 784), (256, 256, 784), (512, 256, 196),
    (512, 512, 196), (1024, 512, 49), (1024, 1024, 49),
]
SPARSITIES = [0, 50, 70, 80, 90, 95]
# Instructions are counted under qemu (minutes per shape and sparsity on a loaded machine): two MobileNetV2 stages.
ARM64_SHAPES = [(96, 576, 196), (160, 960, 49)]
# XNNPACK's wasm 32x1 SpMM over its own dense GEMM on these shapes (issue 10: Node 20, 1 thread, this machine).
XNNPACK_WASM = {50: 1.20, 60: 1.56, 70: 1.98, 80: 2.72, 90: 5.33, 95: 9.18}
ISA = {"host": "portable", "wasm32": "wasmsimd", "arm64": "neon"}


def kernel_name(isa: str, block: str) -> str:
    """The kernel of an ISA variant for MB 1/2/4 or 2:4, from the contract (its tile is in its name)."""
    kernel = KERNEL_BY_JOB[f"f32_spmm_{block}"]
    return getattr(kernel, isa) or kernel.portable


def variant_label(name: str) -> str:
    """'f32_spmm_16x1__wasmsimd' -> '16x1'."""
    return name.split("__")[0].removeprefix("f32_spmm_")


def parse_rows(out: str):
    for line in out.splitlines():
        _, variant, shape, gflops = line.split()
        m, k, n, percent, nonzeros = map(int, shape.split(","))
        yield variant, (m, k, n), percent, nonzeros, float(gflops)


def timed_rows(target: str, command: list, min_seconds: float, shapes) -> list[dict]:
    """Rows of the timed driver runs: a process per shape and sparsity, the dense GEMM timed first in each."""
    out = ""
    for m, k, n in shapes:
        for percent in SPARSITIES:
            args = [*map(str, command), str(min_seconds), "spmm", str(m), str(k), str(n), str(percent)]
            run = subprocess.run(args, capture_output=True, text=True)
            # Node 20 here may die of SIGSEGV while exiting, after the driver printed every row: keep complete output.
            last = f"spmm {ISA[target]}:{'2of4' if percent == 50 and k % 4 == 0 else 'mb4'} "
            if run.returncode != 0 and not any(line.startswith(last) for line in run.stdout.splitlines()):
                raise SystemExit(f"{' '.join(args)} failed ({run.returncode}): {run.stderr[-500:]}")
            out += run.stdout
    # The dense GEMM ran before each sparsity: its best time of those (the machine is shared) is the reference.
    parsed = list(parse_rows(out))
    dense = {}
    for variant, shape, _, _, gflops in parsed:
        if variant == "dense" and gflops > dense.get(shape, 0.0):
            dense[shape] = gflops
    rows = []
    for variant, shape, percent, nonzeros, gflops in parsed:
        if variant == "dense":
            continue
        isa, block = variant.split(":")
        speedup = (2.0 * math.prod(shape) / dense[shape]) / (2.0 * nonzeros * shape[2] / gflops)
        rows.append({"shape": list(shape), "sparsity": percent / 100, "isa": isa, "mb": block,
                     "variant": variant_label(kernel_name(isa, block)), "nonzeros": nonzeros,
                     "gflops_nonzero": gflops, "dense_gflops": dense[shape], "speedup": round(speedup, 4)})
    return rows


def arm64_rows(binary: Path, qemu: str) -> list[dict]:
    """Executed instructions per call of the NEON variants and the dense GEMM (start-up subtracted)."""
    rows = []
    for m, k, n in ARM64_SHAPES:
        dense = None
        for percent in SPARSITIES:
            case = (m, k, n, percent)
            base = executed_by_blocks(qemu, binary, "none", "spmm", case)
            if dense is None:
                dense = (executed_by_blocks(qemu, binary, "dense", "spmm", case) - base) / CALLS
            blocks = ["mb1", "mb2", "mb4"] + (["2of4"] if percent == 50 else [])
            for block in blocks:
                count = (executed_by_blocks(qemu, binary, f"neon:{block}", "spmm", case) - base) / CALLS
                rows.append({"shape": [m, k, n], "sparsity": percent / 100, "isa": "neon", "mb": block,
                             "variant": variant_label(kernel_name("neon", block)), "instructions": count,
                             "dense_instructions": dense, "speedup": round(dense / count, 4)})
            print(f"  arm64 {m}x{k}x{n} at {percent}%: " + ", ".join(f"{r['variant']} {r['speedup']:.2f}x"
                  for r in rows if r["shape"] == [m, k, n] and r["sparsity"] == percent / 100),
                  file=sys.stderr, flush=True)
    return rows


def geomean(values) -> float:
    values = list(values)
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


def fit_break_even(rows: list[dict]) -> dict:
    """Relative time (sparse / dense) = c0 + c1 * density by least squares over the rows of one target and block
    size; the break-even density where the geometric mean relative time per sparsity, interpolated linearly in
    density, crosses 1 (1.0: sparse is faster at every measured density, 0.0: at none)."""
    points = [(1 - r["sparsity"], 1 / r["speedup"]) for r in rows]
    n = len(points)
    mean_d = sum(d for d, _ in points) / n
    mean_t = sum(t for _, t in points) / n
    var = sum((d - mean_d) ** 2 for d, _ in points)
    c1 = sum((d - mean_d) * (t - mean_t) for d, t in points) / var if var else 0.0
    c0 = mean_t - c1 * mean_d
    curve = sorted((d, geomean(t for dd, t in points if dd == d)) for d in {d for d, _ in points})
    density = 1.0 if curve[-1][1] < 1 else 0.0
    for (d0, t0), (d1, t1) in zip(curve, curve[1:]):
        if t0 < 1 <= t1:
            density = d0 + (1 - t0) * (d1 - d0) / (t1 - t0)
    return {"c0": c0, "c1": c1, "break_even_density": density}


def summary(target: str, rows: list[dict]) -> tuple[list[str], list[dict]]:
    """Table lines (geometric mean speed-up per variant and sparsity over the shapes) and the fits."""
    order = ["mb1", "mb2", "mb4", "2of4"]
    variants = sorted({(r["isa"], r["mb"], r["variant"]) for r in rows},
                      key=lambda v: (v[0] != ISA[target], order.index(v[1])))
    sparsities = sorted({r["sparsity"] for r in rows})
    measure = "in executed instructions" if target == "arm64" else "(GFLOP/s on nonzeros in brackets)"
    lines = [f"{target}: geometric mean speed-up over the dense f32_gemm {measure}",
             f"{'variant':24}" + "".join(f"{f'{s:.0%}':>16}" for s in sparsities)]
    fits = []
    for isa, block, variant in variants:
        cells = []
        for s in sparsities:
            sel = [r for r in rows if (r["isa"], r["mb"], r["sparsity"]) == (isa, block, s)]
            if not sel:
                cells.append(f"{'-':>16}")
                continue
            gf = geomean(r["gflops_nonzero"] for r in sel) if "gflops_nonzero" in sel[0] else None
            cells.append(f"{geomean(r['speedup'] for r in sel):9.2f}x" + (f" ({gf:4.1f})" if gf else " " * 7))
        lines.append(f"{isa + ' ' + variant + ' (' + block + ')':24}" + "".join(cells))
        sel = [r for r in rows if (r["isa"], r["mb"]) == (isa, block)]
        if block != "2of4":
            fits.append({"target": target, "isa": isa, "mb": int(block[2:]), "variant": variant, **fit_break_even(sel)})
    if target == "wasm32":
        lines.append(f"{'XNNPACK wasm 32x1':24}" + "".join(
            f"{XNNPACK_WASM[round(s * 100)]:9.2f}x{'':7}" if round(s * 100) in XNNPACK_WASM else f"{'-':>16}"
            for s in sparsities))
    dense = {tuple(r["shape"]): r.get("dense_gflops") for r in rows}
    if all(dense.values()):
        lines.append(f"dense f32_gemm: {geomean(dense.values()):.1f} GFLOP/s (geometric mean over the shapes)")
    lines.append("break-even density (where the mean relative time crosses 1; fit: relative time = c0 + c1 * density):")
    for f in fits:
        d = f["break_even_density"]
        lines.append(f"  {f['isa']} {f['variant']:5} MB{f['mb']}: c0={f['c0']:.3f} c1={f['c1']:.3f}; sparse pays "
                     + ("at every measured density" if d >= 1 else "at no measured density" if d <= 0 else
                        f"below density {d:.2f} (sparsity > {1 - d:.0%})"))
    return lines, fits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", default="host,wasm32,arm64")
    parser.add_argument("--min-seconds", type=float, default=0.05, help="time per measurement (best run kept)")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" /
                        f"spmm-{time.strftime('%Y-%m-%d', time.gmtime())}.json")
    args = parser.parse_args()
    targets = args.targets.split(",")
    unknown = set(targets) - {"host", "wasm32", "arm64"}
    if unknown:
        parser.error(f"unknown target(s) {sorted(unknown)}: choose from host, wasm32, arm64")
    from bench_host import machine_info  # onnxruntime and sparsec: only for the record

    load = open("/proc/loadavg").read().split()[:3]
    shapes = MOBILENET_V2 + MOBILENET_V1
    zig = [sys.executable, "-m", "ziglang", "c++"]
    report = {"machine": {**machine_info(), "load_average": load}, "min_seconds": args.min_seconds,
              "repeats": "best of >= 3 runs (after a warm-up) and >= min_seconds; arm64: instructions of 1 call "
                         f"(mean of {CALLS})", "targets": []}
    with tempfile.TemporaryDirectory() as tmp:
        for target in targets:
            binary = Path(tmp) / f"kernels_bench_{target}"
            if target == "host":
                error = build(compiler(), ["-O3", "-march=native", *KERNEL_FLAGS], binary)
                rows = None if error else timed_rows(target, [binary], args.min_seconds, shapes)
            elif target == "wasm32":
                error = build([*zig, "-target", "wasm32-wasi"], [*WASM_FLAGS, *KERNEL_FLAGS], binary, ("wasmsimd",))
                command = ["node", "--no-warnings", WASI_RUNNER, binary]
                rows = None if error else timed_rows(target, command, args.min_seconds, shapes)
            else:
                qemu = shutil.which("qemu-aarch64") or sys.exit("qemu-aarch64 not found: apt-get install qemu-user")
                error = build([*zig, "-target", "aarch64-linux-musl", "-mcpu=generic"], ["-O3", *KERNEL_FLAGS],
                              binary, ("neon",))
                rows = None if error else arm64_rows(binary, qemu)
            if error:
                raise SystemExit(f"{target} build failed: {error[0]}")
            lines, fits = summary(target, rows)
            print("\n".join(lines) + "\n", flush=True)
            report["targets"].append({"target": target, "measure": "instructions" if target == "arm64" else "time",
                                      "rows": rows, "fits": fits})
    report["machine"]["load_average_after"] = open("/proc/loadavg").read().split()[:3]
    print(f"load average before {' '.join(load)}, after {' '.join(report['machine']['load_average_after'])} "
          f"({report['machine']['cpu_count']} CPUs)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
