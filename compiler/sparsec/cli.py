"""Command line: sparsec compile | run | inspect | groups | prune. Exit codes: 0 ok, 1 user error, 2 internal error."""

from __future__ import annotations

import argparse
import json
import sys
import traceback

import numpy as np

from sparsec.errors import InternalError, SparsecError


def _compile(args) -> None:
    from sparsec.compiler import compile_model
    from sparsec.frontend import parse_fixed_inputs, parse_input_shapes

    prune = _prune_options(args) if args.prune is not None else None
    result = compile_model(args.model, target=args.target, output=args.output,
                           input_shapes=parse_input_shapes(args.input_shape), progress=not args.quiet, prune=prune,
                           calib=args.calib, fixed_inputs=parse_fixed_inputs(args.fix_input))
    r = result.report
    if r["prune"]:
        print(f"pruned {args.prune:.0%}: params {r['prune']['params_before']:,} -> {r['prune']['params_after']:,}, "
              f"MACs {r['prune']['macs_before']:,} -> {r['prune']['macs_after']:,}")
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


def _prune_options(args):
    from sparsec.passes.pruning import PruneOptions

    return PruneOptions(ratio=args.prune if args.command == "compile" else args.ratio, criterion=args.criterion,
                        reduction=args.reduction, round_to=args.round_to, max_ratio=args.max_ratio,
                        global_ranking=args.global_ranking, ignore=tuple(args.ignore), seed=args.seed)


def _groups(args) -> None:
    from sparsec.frontend import parse_input_shapes
    from sparsec.pruner import dependency_groups

    groups = dependency_groups(args.model, parse_input_shapes(args.input_shape))
    if args.json:
        print(json.dumps([{"group": g.index, "name": g.name, "units": g.channels, "unit_width": g.unit_width,
                           "prunable": g.prunable, "blocked_by": g.blocked_by, "members": g.members()}
                          for g in groups], indent=2))
        return
    print(f"{'group':<6} {'units':>6} {'width':>5}  {'prunable':<9} members / why not")
    for g in groups:
        members = g.members()
        members = ", ".join(members[:3]) + (f" (+{len(members) - 3} more)" if len(members) > 3 else "")
        print(f"{g.index:<6} {g.channels:>6} {g.unit_width:>5}  {'yes' if g.prunable else 'no':<9} "
              f"{members if g.prunable else g.blocked_by}")
    prunable = [g for g in groups if g.prunable]
    print(f"{len(groups)} groups, {len(prunable)} prunable "
          f"({sum(g.channels for g in prunable):,} of {sum(g.channels for g in groups):,} units)")


def _prune(args) -> None:
    from pathlib import Path

    from sparsec.compiler import _write_atomically, stderr_progress
    from sparsec.frontend import parse_input_shapes
    from sparsec.pruner import prune_with

    proto, report = prune_with(args.model, _prune_options(args), args.calib, parse_input_shapes(args.input_shape),
                               None if args.quiet else stderr_progress)
    if not args.quiet:
        print(file=sys.stderr)
    _write_atomically(Path(args.output), proto.SerializeToString())
    if args.report:
        _write_atomically(Path(args.report), json.dumps(report.to_dict(), indent=2).encode())
    print(report.table())
    print(f"wrote {args.output}")


def _inspect(args) -> None:
    from sparsec.frontend import parse_fixed_inputs, parse_input_shapes
    from sparsec.inspect import inspect_model

    s = inspect_model(args.model, parse_input_shapes(args.input_shape), parse_fixed_inputs(args.fix_input))
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


def _add_prune_options(parser) -> None:
    from sparsec.passes.pruning import CRITERIA
    from sparsec.passes.pruning.importance import REDUCTIONS

    parser.add_argument("--criterion", default="l2", choices=CRITERIA, help="unit importance (default l2)")
    parser.add_argument("--calib", help=".npy (one input) or .npz (per input name) samples, for --criterion taylor")
    parser.add_argument("--reduction", default="mean", choices=list(REDUCTIONS), help="combine over a group's tensors")
    parser.add_argument("--round-to", type=int, default=1, help="keep channel counts a multiple of this (e.g. 8)")
    parser.add_argument("--max-ratio", type=float, default=0.9, help="no group loses more than this fraction")
    parser.add_argument("--global", dest="global_ranking", action="store_true", help="rank units across groups")
    parser.add_argument("--ignore", action="append", default=[], metavar="NAME",
                        help="keep the output channels of nodes/weights whose name contains NAME")
    parser.add_argument("--seed", type=int, default=0, help="for --criterion random")


_FIX_INPUT_HELP = "pin an input to constant values (e.g. sr=16000): branches and shapes that depend on it fold"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sparsec", description="ONNX -> compact artifact + small C++ runtime")
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compile", help="compile an ONNX model into an artifact (.spx)")
    c.add_argument("model")
    c.add_argument("--target", default="host", help="host (default), x86_64, arm64 or wasm32")
    c.add_argument("-o", "--output", help="output directory or .spx file (default: build/)")
    c.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,...", help="static shape for an input")
    c.add_argument("--fix-input", action="append", metavar="NAME=V[,V...]", help=_FIX_INPUT_HELP)
    c.add_argument("-q", "--quiet", action="store_true", help="no progress")
    c.add_argument("--prune", type=float, metavar="RATIO", help="structured pruning before compiling (e.g. 0.5)")
    _add_prune_options(c)
    c.set_defaults(func=_compile)
    g = sub.add_parser("groups", help="dependency groups of coupled channels: members, units, prunable or why not")
    g.add_argument("model")
    g.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,...")
    g.add_argument("--json", action="store_true")
    g.set_defaults(func=_groups)
    p = sub.add_parser("prune", help="structured pruning: a physically smaller, valid ONNX model")
    p.add_argument("model")
    p.add_argument("--ratio", type=float, default=0.5, help="fraction of each group's channels to remove")
    p.add_argument("-o", "--output", required=True, help="pruned .onnx file")
    p.add_argument("--report", help="write the report as JSON here")
    p.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,...")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress")
    _add_prune_options(p)
    p.set_defaults(func=_prune)
    r = sub.add_parser("run", help="run an artifact on .npy inputs")
    r.add_argument("artifact")
    r.add_argument("--input", action="append", default=[], metavar="X.npy", help="one per model input, in order")
    r.add_argument("--output", help="where to save outputs (.npy, or .npz for several)")
    r.set_defaults(func=_run)
    i = sub.add_parser("inspect", help="ops, shapes, parameters, MACs and support of an ONNX model")
    i.add_argument("model")
    i.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,...")
    i.add_argument("--fix-input", action="append", metavar="NAME=V[,V...]", help=_FIX_INPUT_HELP)
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
