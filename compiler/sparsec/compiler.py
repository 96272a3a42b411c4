"""The compile pipeline: frontend -> passes -> lowering -> memory plan -> artifact file (+ report)."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sparsec.artifact.format import serialize
from sparsec.contract.schema import TARGETS, op_family
from sparsec.errors import InputError, InternalError, SparsecError
from sparsec.frontend import load_model
from sparsec.lower import lower_model, plan_memory
from sparsec.outputs import write_outputs
from sparsec.passes import CLEANUP, PASSES, op_counts, run_passes
from sparsec.passes.pruning import PruneOptions
from sparsec.passes.sparsify import SparsifyOptions, sparsify_model
from sparsec.pruner import PREPARE, prune_prepared
from sparsec.targets import CROSS_TARGETS, RUNTIMES, runtime_dir

TARGET_CHOICES = ("host", *TARGETS)


def resolve_target(target: str) -> str:
    """'host' is this machine's kind; others are named targets."""
    if target == "host":
        machine = platform.machine().lower()
        return {"amd64": "x86_64", "x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    if target not in TARGETS:
        raise SparsecError(f"unknown target '{target}'; choose one of {', '.join(TARGET_CHOICES)}")
    return target


@dataclass
class CompileResult:
    path: Path
    report: dict

    def __fspath__(self) -> str:
        return os.fspath(self.path)


def _output_path(model, output) -> Path:
    stem = Path(os.fspath(model)).stem if isinstance(model, (str, os.PathLike)) else "model"
    if output is None:
        return Path("build") / f"{stem}.spx"
    output = Path(output)
    return output if output.suffix == ".spx" else output / f"{stem}.spx"


def _ratio(value, option: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"{option} must be a ratio in [0, 1) or its options object, got {value!r}") from None


def validate_artifact(data: bytes) -> None:
    """The runtime's own load checks, run on the bytes before they are written: sparsec never writes an artifact
    that a runtime would refuse (a refusal here is a bug in the compiler, so it is an InternalError)."""
    from sparsec import _rt

    try:
        _rt.validate(data)
    except _rt.StatusError as e:
        raise InternalError(f"the runtime refuses the compiled artifact: {e.args[1]}") from None


def stderr_progress(message: str) -> None:
    print(f"\r\x1b[K[sparsec] {message}", end="", file=sys.stderr, flush=True)


def compile_model(model, target: str = "host", output=None, input_shapes=None, passes=None,
                  progress=None, prune=None, calib=None, sparsify=None, fixed_inputs=None,
                  sparse_kernels: bool = True, train=None) -> CompileResult:
    """Compiles model (path, ModelProto or ir.Model) for target; writes <output>/<name>.spx and .report.json.
    `prune` (PruneOptions or a ratio) prunes first; `calib` (.npy/.npz path or feeds) feeds its taylor criterion;
    `sparsify` (SparsifyOptions or a sparsity) then zeros weights, before the clean-up passes. Layers whose zeros pay
    run sparse kernels (the report's `layers` says which and why not) unless sparse_kernels is False.
    `train` (sparsec.train.spec.TrainOptions) compiles the training step instead (see sparsec.train)."""
    start = time.perf_counter()
    resolved = resolve_target(target)
    path = _output_path(model, output)
    notify = stderr_progress if progress is True else progress or None
    if notify:
        notify("loading model")
    graph = load_model(model, input_shapes, fixed_inputs)
    source_ops = op_counts(graph)
    prune_report = sparsify_report = None
    if prune is not None or sparsify is not None:
        graph, _ = run_passes(graph, PREPARE, notify)
    if prune is not None:
        options = prune if isinstance(prune, PruneOptions) else PruneOptions(ratio=_ratio(prune, 'prune'))
        graph, prune_report = prune_prepared(graph, options, calib, notify)
    if sparsify is not None:
        options = sparsify if isinstance(sparsify, SparsifyOptions) else SparsifyOptions(sparsity=_ratio(sparsify, 'sparsify'))
        graph, sparsify_report = sparsify_model(graph, options, notify)
    unknown = [name for name in passes or [] if name not in PASSES]
    if unknown:
        raise SparsecError(f"unknown pass(es) {unknown}; the passes are {', '.join(PASSES)}")
    selected = CLEANUP if passes is None else [PASSES[name] for name in passes]
    training = None
    if train is not None:
        from sparsec.train.build import build_training_graph

        if passes is not None:
            raise SparsecError("passes= does not apply to a training step (it runs its own: no BatchNorm folding or "
                               "activation fusion)")

        training = build_training_graph(graph, train, notify)
        graph, pass_rows = training.model, training.pass_rows
    else:
        graph, pass_rows = run_passes(graph, selected, notify)
    lowered = lower_model(graph, notify, resolved, sparse_kernels, params=training.params if training else None)
    memory = plan_memory(lowered)
    data = serialize(resolved, lowered.tensors, lowered.ops, lowered.inputs, lowered.outputs, memory["arena_bytes"])
    validate_artifact(data)
    # Built (or found in the cache) before anything is written: a failed compile leaves -o untouched.
    families = sorted({op_family(op.opcode) for op in lowered.ops} - {"core"})
    runtime = runtime_dir(resolved, notify, families) if resolved in CROSS_TARGETS else None
    runtime_files = {path.parent / name: runtime / name for name in RUNTIMES[resolved].files} if runtime else {}
    report = {
        "model": str(model) if isinstance(model, (str, os.PathLike)) else type(model).__name__,
        "target": resolved,
        "artifact": str(path),
        "artifact_bytes": len(data),
        "source_nodes": sum(source_ops.values()),
        "passes": pass_rows,
        "prune": prune_report.to_dict() if prune_report else None,
        "sparsify": sparsify_report.to_dict() if sparsify_report else None,
        "runtime_ops": len(lowered.ops),
        "layers": lowered.layers,
        "constant_bytes": sum(t.nbytes for t in lowered.tensors if t.is_const),
        "peak_activation_bytes": memory["arena_bytes"],
        "scratch_bytes": memory["scratch_bytes"],
        "naive_activation_bytes": memory["naive_bytes"],
        "runtime_files_bytes": {p.name: source.stat().st_size for p, source in runtime_files.items()},
        "runtime_op_families": ["core", *families] if runtime else None,
        "seconds": round(time.perf_counter() - start, 3),
    }
    extra_files = {}
    if training is not None:
        from sparsec.train.build import training_files

        report["training"], extra_files = training_files(training, model, path, lowered, memory)
    write_outputs({path: data, path.with_suffix(".report.json"): json.dumps(report, indent=2).encode(), **runtime_files,
                   **extra_files})
    if notify:
        print(file=sys.stderr)
    return CompileResult(path, report)
