"""Command line: sparsec compile | run | inspect | groups | prune | sparsify.
Exit codes: 0 ok, 1 user error, 2 internal error."""

from __future__ import annotations

import argparse
import io
import json
import sys
import traceback
from collections import Counter
from pathlib import Path

import numpy as np

from sparsec.errors import InternalError, SparsecError


def _compile(args) -> None:
    from sparsec.compiler import compile_model
    from sparsec.frontend import parse_fixed_inputs, parse_input_shapes

    train = _train_options(args)
    prune = _prune_options(args) if args.prune is not None else None
    sparsify = _sparsify_options(args) if args.sparsity is not None or args.pattern is not None else None
    result = compile_model(args.model, target=args.target, output=args.output,
                           input_shapes=parse_input_shapes(args.input_shape), progress=not args.quiet, prune=prune,
                           calib=args.calib, sparsify=sparsify, fixed_inputs=parse_fixed_inputs(args.fix_input),
                           sparse_kernels=not args.dense, train=train)
    r = result.report
    if r["prune"]:
        print(f"pruned {args.prune:.0%}: params {r['prune']['params_before']:,} -> {r['prune']['params_after']:,}, "
              f"MACs {r['prune']['macs_before']:,} -> {r['prune']['macs_after']:,}")
    if r["sparsify"]:
        s = r["sparsify"]
        layers = sum(row["skipped"] is None for row in s["layers"])
        print(f"sparsified {layers} of {len(s['layers'])} layers ({sparsify.pattern}, {sparsify.target:.0%}): zeros "
              f"{s['zeros_before']:,} -> {s['zeros_after']:,} of {s['weights']:,} layer weights")
    print(f"compiled {r['model']} for {r['target']} -> {r['artifact']} ({r['artifact_bytes']:,} bytes) in {r['seconds']} s")
    print(f"{'pass':<20} {'nodes before':>12} {'after':>7}  changes")
    for row in r["passes"]:
        changes = ", ".join(f"{op} {d:+d}" for op, d in row["changes"].items()) or "-"
        print(f"{row['pass']:<20} {row['nodes_before']:>12} {row['nodes_after']:>7}  {changes}")
    print(f"runtime ops: {r['runtime_ops']}, constants: {r['constant_bytes']:,} bytes")
    sparse = [row for row in r["layers"] if row["decision"] == "sparse"]
    reasons = Counter("density above break-even" if row["reason"].startswith("density") else row["reason"]
                      for row in r["layers"] if row["decision"] == "dense")
    dense = ", ".join(f"{count} x {why}" for why, count in reasons.most_common())
    print(f"sparse kernels: {len(sparse)} of {len(r['layers'])} layers" + (f"; dense: {dense}" if dense else ""))
    print(f"activation memory: {r['peak_activation_bytes']:,} bytes planned vs {r['naive_activation_bytes']:,} "
          f"naive ({r['peak_activation_bytes'] / max(r['naive_activation_bytes'], 1):.0%})")
    if r.get("training"):
        t = r["training"]
        print(f"training step: {t['updated_parameters']} parameters ({t['updated_values']:,} values) updated, "
              f"{t['backward_nodes']} backward nodes, peak memory {t['peak_step_bytes']:,} bytes, saved activations "
              f"{t['saved_activation_bytes']:,} bytes, optimizer state {t['optimizer_state_bytes']:,} bytes")
    if r["runtime_files_bytes"]:
        print("runtime files: " + ", ".join(f"{name} ({size:,} bytes)" for name, size in r["runtime_files_bytes"].items()))


def _train_options(args):
    """TrainOptions from --train, --loss, --optimizer, --update and --update-file (flags win over the file)."""
    from sparsec.train.spec import TrainOptions, read_spec_file

    given = [flag for flag, value in (("--loss", args.loss), ("--optimizer", args.optimizer), ("--update", args.update),
                                      ("--update-file", args.update_file)) if value]
    if not args.train:
        if given:
            raise SparsecError(f"{', '.join(given)} only apply with --train")
        return None
    spec = read_spec_file(args.update_file) if args.update_file else {}
    return TrainOptions(args.loss or spec.get("loss", "cross_entropy"),
                        args.optimizer or spec.get("optimizer", "sgd:lr=0.01"),
                        tuple(spec.get("update", [])) + tuple(args.update or ()))


def _run(args) -> None:
    from sparsec.errors import InputError
    from sparsec.outputs import write_outputs
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
        buffer = io.BytesIO()
        if len(outputs) == 1:
            np.save(buffer, outputs[0])
        else:
            np.savez(buffer, **{o.name: v for o, v in zip(session.get_outputs(), outputs)})
        extension = ".npy" if len(outputs) == 1 else ".npz"  # appended like numpy does
        write_outputs({Path(args.output if args.output.endswith(extension) else args.output + extension):
                       buffer.getvalue()})
    for info, value in zip(session.get_outputs(), outputs):
        print(f"{info.name}: shape {list(value.shape)} {value.dtype}, mean {float(np.mean(value)):.6g}")


def _prune_options(args):
    from sparsec.passes.pruning import PruneOptions

    return PruneOptions(ratio=args.prune if args.command == "compile" else args.ratio, criterion=args.criterion,
                        reduction=args.reduction, round_to=args.round_to, max_ratio=args.max_ratio,
                        global_ranking=args.global_ranking, ignore=tuple(args.ignore), seed=args.seed)


def _sparsify_options(args):
    from sparsec.passes.sparsify import SparsifyOptions

    return SparsifyOptions(sparsity=args.sparsity, pattern=args.pattern or "unstructured",
                           global_ranking=args.global_ranking, ignore=tuple(args.ignore),
                           include_first=args.include_first, include_depthwise=args.include_depthwise)


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
    from sparsec.compiler import stderr_progress
    from sparsec.frontend import parse_input_shapes
    from sparsec.pruner import prune_with

    proto, report = prune_with(args.model, _prune_options(args), args.calib, parse_input_shapes(args.input_shape),
                               None if args.quiet else stderr_progress)
    _save(args, proto, report)


def _sparsify(args) -> None:
    from sparsec.compiler import stderr_progress
    from sparsec.frontend import parse_input_shapes
    from sparsec.pruner import sparsify_with

    proto, report = sparsify_with(args.model, _sparsify_options(args), parse_input_shapes(args.input_shape),
                                  None if args.quiet else stderr_progress)
    _save(args, proto, report)


def _save(args, proto, report) -> None:
    """Writes the model to -o and the report to --report (each whole or not at all), prints the report."""
    from pathlib import Path

    from sparsec.outputs import write_outputs

    if not args.quiet:
        print(file=sys.stderr)
    outputs = {Path(args.output): proto.SerializeToString()}
    if args.report:
        outputs[Path(args.report)] = json.dumps(report.to_dict(), indent=2).encode()
    write_outputs(outputs)
    print(report.table())
    print(f"wrote {args.output}")


def _print_io(inputs, outputs) -> None:
    for role, values in (("input ", inputs), ("output", outputs)):
        for name, shape, dtype in values:
            print(f"  {role} {name}: {list(shape) if shape else '?'} {dtype}")


def _inspect_artifact(path: str, as_json: bool) -> None:
    from sparsec.inspect import inspect_artifact

    s = inspect_artifact(path)
    if as_json:
        print(json.dumps(s, indent=2))
        return
    print(f"{path}: format v{s['format_version']}, target {s['target']}, {s['file_bytes']:,} bytes, {len(s['ops'])} ops")
    _print_io(s["inputs"], s["outputs"])
    print(f"{'#':>4}  {'node':<28} {'onnx op':<14} {'runtime op':<13} {'kernel':<32} {'output':<18} "
          f"{'weights':>10} {'scratch':>9}")
    for r in s["ops"]:
        out = "x".join(map(str, r["outputs"][0])) if r["outputs"] else "-"
        print(f"{r['index']:>4}  {r['node'][:28]:<28} {r['onnx_op'][:14]:<14} {r['runtime_op']:<13} {r['kernel'][:32]:<32} "
              f"{out[:18]:<18} {r['weight_bytes']:>10,} {r['scratch_bytes']:>9,}")
    print(f"constants {s['constant_bytes']:,} bytes, parameters {s['param_bytes']:,} bytes, "
          f"arena {s['arena_bytes']:,} bytes + scratch {s['scratch_bytes']:,} bytes")
    t = s["training"]
    if t:
        saved = "?" if t["saved_activation_bytes"] is None else f"{t['saved_activation_bytes']:,}"
        print(f"training step ({t['loss']}, {t['optimizer']['kind']}, {t['updated_parameters']} parameters): peak memory "
              f"{t['peak_step_bytes']:,} bytes, saved activations {saved} bytes, parameters {t['param_bytes']:,} "
              f"bytes, optimizer state {t['optimizer_state_bytes']:,} bytes")
    _print_layers(s["layers"])


def _print_layers(layers: list[dict]) -> None:
    """Per Conv/Gemm/MatMul layer: sparse or dense, format, density, expected speed-up, or why dense."""
    if not layers:
        return
    print(f"{'#':>4}  {'layer':<28} {'onnx op':<8} {'choice':<7} {'format':<6} {'density':>7} {'speed-up':>8}  why dense")
    for r in layers:
        print(f"{r.get('index', ''):>4}  {r['node'][:28]:<28} {r['onnx_op'][:8]:<8} {r['decision']:<7} {r['format']:<6} "
              f"{r['density']:>7.2f} {r['speedup']:>7.2f}x  {r['reason'] or ''}")


def _inspect(args) -> None:
    from sparsec.frontend import parse_fixed_inputs, parse_input_shapes
    from sparsec.inspect import inspect_model

    if str(args.model).endswith(".spx"):
        _inspect_artifact(args.model, args.json)
        return
    s = inspect_model(args.model, parse_input_shapes(args.input_shape), parse_fixed_inputs(args.fix_input))
    if args.json:
        print(json.dumps(s, indent=2, default=str))
        return
    print(f"opset {s['opset']}, {s['nodes']} nodes (after constant folding), {s['params']:,} parameters, {s['macs']:,} MACs")
    _print_io(s["inputs"], s["outputs"])
    for op, count in s["ops"].items():
        mark = "  UNSUPPORTED" if op in s["unsupported"] else ""
        print(f"  {op:<24} {count:>5}{mark}")
    print("all ops supported" if not s["unsupported"] else f"unsupported ops: {', '.join(s['unsupported'])}")
    for node, op, why in s["problems"]:
        print(f"  node '{node}' ({op}): {why}")


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


def _add_sparsify_options(parser, pattern_default) -> None:
    parser.add_argument("--sparsity", type=float, metavar="R", help="fraction of each layer's weights to zero "
                        "(default 0.9; 0.5 for 2:4)")
    parser.add_argument("--pattern", default=pattern_default,  # checked by SparsifyOptions: exit 1, not argparse's 2
                        help="where zeros go: unstructured, 1x4 (input blocks), 4x1 or 8x1 (output blocks), 2:4")
    parser.add_argument("--include-first", action="store_true", help="sparsify convs reading a graph input too")
    parser.add_argument("--include-depthwise", action="store_true", help="sparsify depthwise convs too")


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
    _add_sparsify_options(c, None)  # --sparsity or --pattern sparsifies after --prune; --global, --ignore apply
    c.add_argument("--dense", action="store_true", help="no sparse kernels: every layer dense (the report says so)")
    c.add_argument("--train", action="store_true", help="compile the training step (forward, loss, backward, update)")
    c.add_argument("--loss", choices=["cross_entropy", "mse", "bce_with_logits", "l1"], help="with --train (default "
                   "cross_entropy: int64 class labels [N])")
    c.add_argument("--optimizer", metavar="KIND:K=V,...", help="with --train: sgd:lr=0.01,momentum=0.9,weight_decay=0 "
                   "or adamw:lr=1e-3,beta1=0.9,beta2=0.999,eps=1e-8,weight_decay=0.01 (torch.optim semantics)")
    c.add_argument("--update", action="append", metavar="SPEC", help="with --train: what trains, e.g. bias:all, "
                   "weight:last=2, 'weight:features.16*:channels=0.25', a name or glob (repeatable; all else frozen)")
    c.add_argument("--update-file", metavar="SPEC.json", help="with --train: {\"update\": [...], \"loss\": ..., "
                   "\"optimizer\": ...} as JSON (or YAML with PyYAML)")
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
    s = sub.add_parser("sparsify", help="magnitude pruning to exact zeros in Conv/Gemm/MatMul weights (valid ONNX)")
    s.add_argument("model")
    s.add_argument("-o", "--output", required=True, help="sparsified .onnx file")
    s.add_argument("--report", help="write the report as JSON here")
    s.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,...")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress")
    _add_sparsify_options(s, "unstructured")
    s.add_argument("--global", dest="global_ranking", action="store_true", help="rank magnitudes across layers")
    s.add_argument("--ignore", action="append", default=[], metavar="NAME",
                   help="keep dense the layers whose node or weight name contains NAME (must match one)")
    s.set_defaults(func=_sparsify)
    r = sub.add_parser("run", help="run an artifact on .npy inputs")
    r.add_argument("artifact")
    r.add_argument("--input", action="append", default=[], metavar="X.npy", help="one per model input, in order")
    r.add_argument("--output", help="where to save outputs (.npy, or .npz for several)")
    r.set_defaults(func=_run)
    i = sub.add_parser("inspect", help="an ONNX model (ops, shapes, parameters, MACs, support) or a compiled .spx "
                                       "(per op: source node, algorithm, kernel, shapes, bytes)")
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
