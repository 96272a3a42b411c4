"""The compile pipeline: frontend -> passes -> lowering -> memory plan -> artifact file (+ report)."""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sparsec.artifact.format import TARGET_IDS, serialize
from sparsec.errors import SparsecError
from sparsec.frontend import load_model
from sparsec.lower import lower_model, plan_memory
from sparsec.passes import CLEANUP, PASSES, op_counts, run_passes
from sparsec.passes.pruning import PruneOptions, prune_model
from sparsec.passes.pruning.calibration import calibration_feeds
from sparsec.pruner import PREPARE
from sparsec.targets import CROSS_TARGETS, install_runtime, runtime_dir

TARGETS = ("host", *TARGET_IDS)


def resolve_target(target: str) -> str:
    """'host' is this machine's kind; others are named targets."""
    if target == "host":
        machine = platform.machine().lower()
        return {"amd64": "x86_64", "x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    if target not in TARGET_IDS:
        raise SparsecError(f"unknown target '{target}'; choose one of {', '.join(TARGETS)}")
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


def _write_atomically(path: Path, data: bytes) -> None:
    """Nothing half-written: the file appears whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def stderr_progress(message: str) -> None:
    print(f"\r\x1b[K[sparsec] {message}", end="", file=sys.stderr, flush=True)


def compile_model(model, target: str = "host", output=None, input_shapes=None, passes=None,
                  progress=None, prune=None, calib=None, fixed_inputs=None) -> CompileResult:
    """Compiles model (path, ModelProto or ir.Model) for target; writes <output>/<name>.spx and .report.json.
    `prune` (PruneOptions or a ratio) prunes first; `calib` (.npy/.npz path or feeds) feeds its taylor criterion."""
    start = time.perf_counter()
    resolved = resolve_target(target)
    path = _output_path(model, output)
    notify = stderr_progress if progress is True else progress or None
    if notify:
        notify("loading model")
    graph = load_model(model, input_shapes, fixed_inputs)
    source_ops = op_counts(graph)
    prune_report = None
    if prune is not None:
        options = prune if isinstance(prune, PruneOptions) else PruneOptions(ratio=float(prune))
        graph, _ = run_passes(graph, PREPARE, notify)
        graph, prune_report = prune_model(graph, options, calibration_feeds(calib, graph), notify)
    selected = CLEANUP if passes is None else [PASSES[name] for name in passes]
    graph, pass_rows = run_passes(graph, selected, notify)
    lowered = lower_model(graph, notify)
    memory = plan_memory(lowered)
    data = serialize(resolved, lowered.tensors, lowered.ops, lowered.inputs, lowered.outputs, memory["arena_bytes"])
    # Built (or found in the cache) before anything is written: a failed compile leaves -o untouched.
    runtime = runtime_dir(resolved, notify) if resolved in CROSS_TARGETS else None
    _write_atomically(path, data)
    runtime_bytes = install_runtime(runtime, resolved, path.parent) if runtime else {}
    report = {
        "model": str(model) if isinstance(model, (str, os.PathLike)) else type(model).__name__,
        "target": resolved,
        "artifact": str(path),
        "artifact_bytes": len(data),
        "source_nodes": sum(source_ops.values()),
        "passes": pass_rows,
        "prune": prune_report.to_dict() if prune_report else None,
        "runtime_ops": len(lowered.ops),
        "constant_bytes": sum(t.nbytes for t in lowered.tensors if t.is_const),
        "peak_activation_bytes": memory["arena_bytes"],
        "naive_activation_bytes": memory["naive_bytes"],
        "runtime_files_bytes": runtime_bytes,
        "seconds": round(time.perf_counter() - start, 3),
    }
    _write_atomically(path.with_suffix(".report.json"), json.dumps(report, indent=2).encode())
    if notify:
        print(file=sys.stderr)
    return CompileResult(path, report)
