"""Command line: sparsec compile | run | inspect. Exit codes: 0 ok, 1 user error, 2 internal error."""

from __future__ import annotations

import argparse
import json
import sys
import traceback

import numpy as np

from sparsec.errors import InternalError, SparsecError


def _compile(args) -> None:
    from sparsec.compiler import compile_model
    from sparsec.frontend import parse_input_shapes

    result = compile_model(args.model, target=args.target, output=args.output,
                           input_shapes=parse_input_shapes(args.input_shape), progress=not args.quiet)
    r = result.report
    print(f"compiled {r['model']} for {r['target']} -> {r['artifact']} ({r['artifact_bytes']:,} bytes) in {r['seconds']} s")
    print(f"{'pass':<20} {'nodes before':>12} {'after':>7}  changes")
    for row in r["passes"]:
        changes = ", ".join(f"{op} {d:+d}" for op, d in row["changes"].items()) or "-"
        print(f"{row['pass']:<20} {row['nodes_before']:>12} {row['nodes_after']:>7}  {changes}")
    print(f"runtime ops: {r['runtime_ops']}, constants: {r['constant_bytes']:,} bytes")
    print(f"activation memory: {r['peak_activation_bytes']:,} bytes planned vs {r['naive_activation_bytes']:,} "
          f"naive ({r['peak_activation_bytes'] / max(r['naive_activation_bytes'], 1):.0%})")
    if r["runtime_files_bytes"]:
        print("runtime files: " + ", ".join(f"{name} ({size:,} bytes)" for name, size in r["runtime_files_bytes"].items()))


def _run(args) -> None:
    from sparsec.errors import InputError
    from sparsec.runtime import load

    session = load(args.artifact)
    inputs = session.get_inputs()
    if len(args.input) != len(inputs):
        raise InputError(f"the artifact takes {len(inputs)} input(s) {[i.name for i in inputs]}, got {len(args.input)} --input")
    feed = {}
    for info, path in zip(inputs, args.input):
        try:
            feed[info.name] = np.load(path)
        except (OSError, ValueError) as e:
            raise InputError(f"cannot read input file {path}: {e}") from None
    outputs = session.run(None, feed)
    if args.output:
        if len(outputs) == 1:
            np.save(args.output, outputs[0])
        else:
            np.savez(args.output, **{o.name: v for o, v in zip(session.get_outputs(), outputs)})
    for info, value in zip(session.get_outputs(), outputs):
        print(f"{info.name}: shape {list(value.shape)} {value.dtype}, mean {float(np.mean(value)):.6g}")


def _inspect(args) -> None:
    from sparsec.frontend import parse_input_shapes
    from sparsec.inspect import inspect_model

    s = inspect_model(args.model, parse_input_shapes(args.input_shape))
    if args.json:
        print(json.dumps(s, indent=2, default=str))
        return
    print(f"opset {s['opset']}, {s['nodes']} nodes (after constant folding), {s['params']:,} parameters, {s['macs']:,} MACs")
    for name, shape, dtype in s["inputs"]:
        print(f"  input  {name}: {list(shape) if shape else '?'} {dtype}")
    for name, shape, dtype in s["outputs"]:
        print(f"  output {name}: {list(shape) if shape else '?'} {dtype}")
    for op, count in s["ops"].items():
        mark = "  UNSUPPORTED" if op in s["unsupported"] else ""
        print(f"  {op:<24} {count:>5}{mark}")
    print("all ops supported" if not s["unsupported"] else f"unsupported ops: {', '.join(s['unsupported'])}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sparsec", description="ONNX -> compact artifact + small C++ runtime")
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compile", help="compile an ONNX model into an artifact (.spx)")
    c.add_argument("model")
    c.add_argument("--target", default="host", help="host (default), x86_64, arm64 or wasm32")
    c.add_argument("-o", "--output", help="output directory or .spx file (default: build/)")
    c.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,...", help="static shape for an input")
    c.add_argument("-q", "--quiet", action="store_true", help="no progress")
    c.set_defaults(func=_compile)
    r = sub.add_parser("run", help="run an artifact on .npy inputs")
    r.add_argument("artifact")
    r.add_argument("--input", action="append", default=[], metavar="X.npy", help="one per model input, in order")
    r.add_argument("--output", help="where to save outputs (.npy, or .npz for several)")
    r.set_defaults(func=_run)
    i = sub.add_parser("inspect", help="ops, shapes, parameters, MACs and support of an ONNX model")
    i.add_argument("model")
    i.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,...")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=_inspect)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except SparsecError as e:
        print(f"sparsec: error: {e}", file=sys.stderr)
        return e.exit_code
    except Exception:
        traceback.print_exc()
        print("sparsec: internal error (a bug in sparsec; please report it with the model)", file=sys.stderr)
        return InternalError.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
