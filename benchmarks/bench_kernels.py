"""Single-thread GFLOP/s of the C++ kernels, built with and without -march=native, beside numpy.

Builds benchmarks/kernels_bench.cpp with the system C++ compiler ($CXX or c++), runs it on
conv- and linear-shaped GEMMs and MobileNet-style depthwise convolutions, and prints one row
per kernel, variant, build and shape, with its speed-up over the scalar reference; pooling,
global average pooling and element-wise binary rows follow. numpy's float32 matmul (OpenBLAS,
pinned to one thread) is the scale for the GEMM rows.

    python benchmarks/bench_kernels.py [--min-seconds 0.3] [--json out.json] [--wasm]
"""

import os

# Pin BLAS to one thread before numpy loads it: the kernels are single-threaded.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
KERNELS = REPO / "kernels_arm"

# (M, N, K): 1x1 conv C[Cout, HW] = W[Cout, Cin] X[Cin, HW], an im2col 3x3 conv, a Linear layer
# with batch 1 (M=1) and a 1x1 conv on a pooled 1x1 map (N=1), a Linear over a sequence.
GEMM_SHAPES = [
    (96, 3136, 24),
    (64, 3136, 576),
    (1, 1000, 1280),
    (1000, 1, 1280),
    (128, 768, 768),
]
# (channels, height = width, kernel, stride) with "same" padding.
DWCONV_SHAPES = [
    (32, 112, 3, 1),
    (96, 112, 3, 2),
    (144, 56, 3, 1),
    (384, 14, 3, 1),
    (240, 28, 5, 2),
    (960, 7, 5, 1),
]
# (channels, height = width, kernel, stride): ResNet's stem max pool, Inception-style 3x3/1
# average pool, DenseNet's 2x2/2 transition.
MAXPOOL_SHAPES = [(64, 112, 3, 2), (192, 28, 3, 1)]
AVGPOOL_SHAPES = [(256, 14, 3, 1), (128, 56, 2, 2)]
# (channels, H*W): MobileNet's and ResNet's last feature maps.
GAVGPOOL_SHAPES = [(1280, 49), (2048, 49), (64, 3136)]
# (op 0 add/2 mul, shape 0 same/1 per-channel [C,1,1], channels, H*W, activation 0 none/1 relu/6 silu):
# a residual Add(+Relu), an SE-block channel Mul, an Add with a SiLU epilogue.
VBINARY_SHAPES = [(0, 0, 64, 3136, 1), (2, 1, 96, 3136, 0), (0, 0, 256, 196, 6), (0, 0, 64, 3136, 0)]
BUILDS = {"native": ["-O3", "-march=native"], "generic": ["-O3"]}
# Every build also gets the kernels' flags from CMakeLists.txt (without them GCC calls libm's expf
# one value at a time and the activation epilogues look 5x slower than in the runtime).
KERNEL_FLAGS = ["-fno-math-errno", "-fno-trapping-math"]
# The wasm32 build runs in Node (real timings there, unlike qemu): zig from PyPI `ziglang`.
WASM_FLAGS = ["-O3", "-msimd128", "-fno-exceptions"]
WASI_RUNNER = REPO / "tests" / "wasm" / "run_wasi.mjs"


def compiler():
    cxx = os.environ.get("CXX") or shutil.which("c++")
    if not cxx:
        raise SystemExit("no C++ compiler: set CXX or install c++")
    return cxx


def build(cxx, flags, out, isa_dirs=()):
    """Builds the driver with cxx (a path or a command list); isa_dirs adds e.g. "neon" kernels."""
    dirs = ("ref", "portable", "dispatch", *isa_dirs)
    sources = [p for d in dirs for p in sorted(KERNELS.glob(f"{d}/*.cpp"))]
    cmd = [*([cxx] if isinstance(cxx, str) else cxx), "-std=c++17", *flags, "-I", str(KERNELS / "include"),
           str(REPO / "benchmarks" / "kernels_bench.cpp"), *map(str, sources), "-o", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        return result.stderr.strip().splitlines()[-1:] or ["failed"]
    return None


def run_driver(command, min_seconds):
    """Rows of the driver run as command (the binary, or a runner and the binary)."""
    args = [*map(str, command), str(min_seconds)]
    for m, n, k in GEMM_SHAPES:
        args += ["gemm", str(m), str(n), str(k)]
    for c, h, k, s in DWCONV_SHAPES:
        args += ["dwconv", str(c), str(h), str(k), str(s)]
    for kernel, shapes in (("maxpool", MAXPOOL_SHAPES), ("avgpool", AVGPOOL_SHAPES),
                           ("gavgpool", GAVGPOOL_SHAPES), ("vbinary", VBINARY_SHAPES)):
        for shape in shapes:
            args += [kernel, *map(str, shape)]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        kernel, variant, shape, gflops = line.split()
        yield kernel, variant, shape, float(gflops)


def numpy_gemm_gflops(m, n, k, min_seconds):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    c = np.empty((m, n), dtype=np.float32)
    np.matmul(a, b, out=c)
    best, spent, runs = float("inf"), 0.0, 0
    while spent < min_seconds or runs < 3:
        start = time.perf_counter()
        np.matmul(a, b, out=c)
        elapsed = time.perf_counter() - start
        best, spent, runs = min(best, elapsed), spent + elapsed, runs + 1
    return 2.0 * m * n * k / best * 1e-9


def gemm_shape_name(m, n, k):
    return f"M={m},N={n},K={k}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--min-seconds", type=float, default=0.3,
                        help="time spent per measurement (best run is kept)")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    parser.add_argument("--wasm", action="store_true",
                        help="also build for wasm32 + SIMD128 with ziglang and run in Node")
    args = parser.parse_args()

    numpy_gflops = {gemm_shape_name(*s): numpy_gemm_gflops(*s, args.min_seconds)
                    for s in GEMM_SHAPES}
    cxx = compiler()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # (name, compiler, flags, ISA folders, command prefix that runs the binary)
        builds = [(name, cxx, flags, (), []) for name, flags in BUILDS.items()]
        if args.wasm:
            zig = [sys.executable, "-m", "ziglang", "c++", "-target", "wasm32-wasi"]
            builds.append(("wasm32", zig, WASM_FLAGS, ("wasmsimd",), ["node", "--no-warnings", WASI_RUNNER]))
        for build_name, build_cxx, flags, isa_dirs, runner in builds:
            binary = Path(tmp) / f"kernels_bench_{build_name}"
            error = build(build_cxx, [*flags, *KERNEL_FLAGS], binary, isa_dirs)
            if error:
                print(f"skipping {build_name} build ({' '.join(flags)}): {error[0]}")
                continue
            label = " ".join(flags) + (" (node)" if runner else "")
            for kernel, variant, shape, gflops in run_driver([*runner, binary], args.min_seconds):
                rows.append({"kernel": kernel, "variant": variant, "build": label,
                             "shape": shape, "gflops": gflops,
                             "numpy_gflops": numpy_gflops.get(shape) if kernel == "gemm" and not runner else None})

    # Speed-up of each row over the scalar reference of the same kernel, build and shape.
    scalar = {(r["kernel"], r["build"], r["shape"]): r["gflops"] for r in rows if r["variant"] == "scalar"}
    for r in rows:
        r["vs_scalar"] = r["gflops"] / scalar[(r["kernel"], r["build"], r["shape"])]
    width = max([len("build"), *(len(r["build"]) for r in rows)])
    header = (f"{'kernel':8} {'variant':9} {'build':{width}} {'shape':28} "
              f"{'GFLOP/s':>8} {'x scalar':>8} {'numpy':>8} {'% numpy':>8}")
    print("GFLOP/s counts a pooling tap, a binary op or a GAP add as one operation.")
    print(header)
    print("-" * len(header))
    for r in rows:
        ref = r["numpy_gflops"]
        ref_text = f"{ref:.1f}" if ref else "-"
        pct_text = f"{100 * r['gflops'] / ref:.0f}%" if ref else "-"
        print(f"{r['kernel']:8} {r['variant']:9} {r['build']:{width}} {r['shape']:28} "
              f"{r['gflops']:8.2f} {r['vs_scalar']:8.1f} {ref_text:>8} {pct_text:>8}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
