"""Executed aarch64 instructions per call of each depthwise, pooling and element-wise variant (qemu).

No ARM hardware is reachable and timing under qemu means nothing, so this counts instructions:
benchmarks/kernels_bench.cpp is built for aarch64 with zig (PyPI `ziglang`), each variant runs
alone (--only) under `qemu-aarch64 -singlestep -d nochain,exec`, which logs one line per executed
instruction, and a run of no variant (start-up, input generation) is subtracted. The driver calls a
kernel 4 times (warm-up + 3) when given 0 seconds.

    python benchmarks/icount_arm64.py [--json out.json]
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_kernels import KERNEL_FLAGS, build

CALLS = 4
# (kernel, args, outputs per call): small versions of bench_kernels.py's shapes.
CASES = [
    ("dwconv", (16, 28, 3, 1), 16 * 28 * 28),
    ("dwconv", (16, 28, 3, 2), 16 * 14 * 14),
    ("maxpool", (16, 56, 3, 2), 16 * 28 * 28),
    ("avgpool", (32, 14, 3, 1), 32 * 14 * 14),
    ("gavgpool", (256, 49), 256),
    ("vbinary", (0, 0, 16, 784, 1), 16 * 784),
    ("vbinary", (2, 1, 16, 784, 0), 16 * 784),
]
VARIANTS = ["scalar", "portable", "neon"]


def executed(qemu, binary, only, kernel, args):
    """Instructions qemu executed for one driver run."""
    command = [qemu, "-singlestep", "-d", "nochain,exec", str(binary), "0", "--only", only, kernel, *map(str, args)]
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as run:
        count = subprocess.run(["grep", "-c", "^Trace"], stdin=run.stderr, capture_output=True, text=True).stdout
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({run.returncode})")
    return int(count)


def executed_by_blocks(qemu, binary, only, kernel, args):
    """executed() without single-stepping (about 15x faster, within a few instructions of it): qemu logs each
    translated block's instructions once (in_asm) and every block it runs (exec, unchained); the sum of the
    run blocks' sizes."""
    command = [qemu, "-d", "nochain,exec,in_asm", str(binary), "0", "--only", only, kernel, *map(str, args)]
    sizes, total, translating, size = {}, 0, False, 0
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as run:
        for line in run.stderr:
            if line.startswith("Trace"):  # "Trace 0: host [flags/pc/...]": a block runs, just after its translation
                pc = int(line.split("/", 2)[1], 16)
                if translating:
                    sizes[pc], translating = size, False
                total += sizes[pc]
            elif line.startswith("IN:"):
                translating, size = True, 0
            elif translating and line.startswith("0x"):
                size += 1
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({run.returncode})")
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args()
    qemu = shutil.which("qemu-aarch64") or sys.exit("qemu-aarch64 not found: apt-get install qemu-user")
    zig = [sys.executable, "-m", "ziglang", "c++", "-target", "aarch64-linux-musl", "-mcpu=generic"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        binary = Path(tmp) / "kernels_bench_arm64"
        error = build(zig, ["-O3", *KERNEL_FLAGS], binary, ["neon"])
        if error:
            raise SystemExit(f"aarch64 build failed: {error[0]}")
        for kernel, case_args, outputs in CASES:
            base = executed(qemu, binary, "none", kernel, case_args)
            per_call = {v: (executed(qemu, binary, v, kernel, case_args) - base) / CALLS for v in VARIANTS}
            for variant, instructions in per_call.items():
                rows.append({"kernel": kernel, "shape": ",".join(map(str, case_args)), "variant": variant,
                             "instructions": instructions, "per_output": instructions / outputs,
                             "scalar_over_variant": per_call["scalar"] / instructions})
    header = f"{'kernel':9} {'args':16} {'variant':9} {'instr/call':>11} {'instr/output':>12} {'scalar/this':>11}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['kernel']:9} {r['shape']:16} {r['variant']:9} {r['instructions']:11.0f} {r['per_output']:12.2f} "
              f"{r['scalar_over_variant']:11.1f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
