"""Training-step benchmark: time per step and peak memory of one step, on mobilenet_v2 and the BERT-style encoder.

    python benchmarks/bench_train.py [--models mobilenet_v2 bert_encoder] [--update weight:last=2 ...] [--rounds 3]
                                     [--ort-python /path/to/python-with-onnxruntime-training] [--json out.json]

Contenders, each in a fresh process with one thread, batch 8, the same ONNX model and the same update spec:
  torch_full    PyTorch eager, every parameter trains (autograd + torch.optim.SGD)
  torch_sparse  PyTorch eager, only the spec's parameters require grad
  ort           onnxruntime-training 1.19.2 (generate_artifacts with the spec's requires_grad), if --ort-python has it;
                its gradient builder fails on a LayerNormalization without the optional mean / inv_std_dev outputs (as
                torch exports it), so those outputs are named for it (the model computes the same)
  sparsec       the compiled training step (sparsec compile --train), host runtime
PyTorch runs the ONNX graph with torch ops (tests/torch_onnx.py), so every contender trains exactly the same model.
Peak memory = peak RSS growth of the process from just before loading the model to the end of the first step
(weights count on every side). Time per step = median of the steps after the first. Each round runs every contender
once, in turn; the table gives medians over the rounds and the ratios taken within each round (their median).
onnxruntime-training's venv: benchmarks/ort-training-requirements.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "benchmarks")]
BATCH = 8
CONTENDERS = ("torch_full", "torch_sparse", "ort", "sparsec")
LOSS = {"mobilenet_v2": "cross_entropy", "bert_encoder": "mse"}


def rss_kb(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> int:
    """Resets the peak RSS (VmHWM) to the current RSS and returns it (kB)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return rss_kb("VmRSS")


def batch_model(name: str, directory: Path) -> Path:
    """The zoo model at batch 8 (re-exported: traced reshapes carry the batch)."""
    import warnings

    import torch
    import zoo

    path = directory / f"{name}-b{BATCH}.onnx"
    if path.exists():
        return path
    if name == "mobilenet_v2":  # no torchvision needed: the cached export has a batch-free graph
        import onnx

        model = onnx.load(zoo.cached(name))
        for value in (*model.graph.input, *model.graph.output):
            value.type.tensor_type.shape.dim[0].dim_value = BATCH
        del model.graph.value_info[:]
        onnx.save(onnx.shape_inference.infer_shapes(model), path)
        return path
    spec = zoo.ZOO[name]
    torch.manual_seed(0)
    module = spec.build()
    zoo._randomise_constant_tensors(module)
    module.eval()
    args = tuple(torch.zeros((BATCH, *i.shape[1:]), dtype=getattr(torch, i.dtype)) for i in spec.inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), dynamo=False, opset_version=zoo.OPSET,
                          input_names=[i.name for i in spec.inputs], output_names=["output"],
                          training=torch.onnx.TrainingMode.PRESERVE)
    return path


def batch(name: str, model_path: Path, loss: str):
    import onnx

    model = onnx.load(model_path)
    rng = np.random.default_rng(0)
    inp = model.graph.input[0]
    shape = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    out = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    x = (rng.integers(0, 1000, shape) if inp.type.tensor_type.elem_type == onnx.TensorProto.INT64
         else rng.standard_normal(shape).astype(np.float32))
    y = rng.integers(0, out[1], out[0]).astype(np.int64) if loss == "cross_entropy" else rng.standard_normal(out).astype(np.float32)
    return inp.name, x, y


def worker(args) -> dict:
    """One contender in this (fresh) process: {"step_seconds", "peak_rss_growth_bytes"}."""
    path = Path(args.model_path)
    loss = LOSS[args.model]
    name, x, y = batch(args.model, path, loss)
    params = json.loads(args.params)  # sparsec's resolved spec: [{"name", ...}]
    steps: list[float] = []
    if args.worker == "sparsec":
        import sparsec

        base = reset_peak()
        trainer = sparsec.load_trainer(args.artifact)
        step = lambda: trainer.step({name: x}, y)  # noqa: E731
    elif args.worker.startswith("torch"):
        import onnx
        import torch
        import torch_onnx
        from onnx import numpy_helper

        torch.set_num_threads(1)
        F = torch.nn.functional
        loss_fn = F.cross_entropy if loss == "cross_entropy" else F.mse_loss
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        base = reset_peak()
        model = onnx.load(path)
        weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in model.graph.initializer
                   if i.data_type == onnx.TensorProto.FLOAT and len(i.dims)}
        statistics = {n.input[i] for n in model.graph.node if n.op_type == "BatchNormalization" for i in (3, 4)}
        trained = set(weights) - statistics if args.worker == "torch_full" else {p["name"] for p in params}
        leaves = [w.requires_grad_(True) for n, w in weights.items() if n in trained]
        opt = torch.optim.SGD(leaves, lr=0.01, momentum=0.9)

        def step():
            out = torch_onnx.run(model, {name: xt}, weights)[0]
            value = loss_fn(out, yt)
            opt.zero_grad()
            value.backward()
            opt.step()
            return float(value.detach())
    else:  # onnxruntime-training
        import onnx
        from onnxruntime.training import artifacts
        from onnxruntime.training.api import CheckpointState, Module, Optimizer

        model = onnx.load(path)
        for node in model.graph.node:  # its LayerNormalization gradient needs the optional saved statistics
            if node.op_type == "LayerNormalization" and len(node.output) == 1:
                node.output.extend([f"{node.output[0]}_mean", f"{node.output[0]}_inv_std_dev"])
        trained = [p["name"] for p in params]
        frozen = [i.name for i in model.graph.initializer if i.name not in trained]
        directory = Path(tempfile.mkdtemp())
        artifacts.generate_artifacts(model, requires_grad=trained, frozen_params=frozen,
                                     loss=artifacts.LossType.CrossEntropyLoss if loss == "cross_entropy"
                                     else artifacts.LossType.MSELoss,
                                     optimizer=artifacts.OptimType.SGD, artifact_directory=directory)
        del model
        base = reset_peak()
        state = CheckpointState.load_checkpoint(str(directory / "checkpoint"))
        module = Module(str(directory / "training_model.onnx"), state, str(directory / "eval_model.onnx"))
        optimizer = Optimizer(str(directory / "optimizer_model.onnx"), module)
        optimizer.set_learning_rate(0.01)
        module.train()

        def step():
            value = module(x, y)
            optimizer.step()
            module.lazy_reset_grad()
            return float(value)
    for k in range(args.steps):
        start = time.perf_counter()
        step()
        steps.append(time.perf_counter() - start)
        if k == 0:
            peak = (rss_kb("VmHWM") - base) * 1024
    return {"step_seconds": float(np.median(steps[1:] if len(steps) > 1 else steps)), "peak_rss_growth_bytes": peak}


def run_worker(contender: str, model: str, model_path: Path, artifact: Path | None, params, steps: int,
               python: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    command = [python, __file__, "--worker", contender, "--models", model, "--model-path", str(model_path),
               "--params", json.dumps(params), "--steps", str(steps)]
    if artifact:
        command += ["--artifact", str(artifact)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["failed"])[-1][:400]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def _median_ratio(numerators: list[dict], denominators: list[dict], key: str) -> float:
    """Median over the rounds both ran of numerator[key] / denominator[key]."""
    ratios = [n[key] / max(d[key], 1e-12) for n, d in zip(numerators, denominators) if "error" not in n and "error" not in d]
    return float(np.median(ratios)) if ratios else float("nan")


def summary(model: str, contender: str, runs: dict[str, list[dict]]) -> dict:
    """contender's row: medians over the rounds it ran, and its ratios to PyTorch taken within each round."""
    mine = runs[contender]
    good = [r for r in mine if "error" not in r]
    if not good:
        return {"model": model, "contender": contender, "error": mine[0]["error"]}
    return {"model": model, "contender": contender,
            "step_seconds": float(np.median([r["step_seconds"] for r in good])),
            "peak_rss_growth_bytes": int(np.median([r["peak_rss_growth_bytes"] for r in good])),
            "memory_vs_torch_full": _median_ratio(runs.get("torch_full", []), mine, "peak_rss_growth_bytes"),
            "speedup_vs_torch_sparse": _median_ratio(runs.get("torch_sparse", []), mine, "step_seconds"),
            "rounds": mine}


def _version(python: str, module: str) -> str:
    """module's version in another interpreter's environment."""
    proc = subprocess.run([python, "-c", f"import {module}; print({module}.__version__)"], capture_output=True, text=True)
    return proc.stdout.strip() or "not installed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mobilenet_v2", "bert_encoder"])
    parser.add_argument("--update", action="append", help="update spec entries (default: weight:last=2)")
    parser.add_argument("--steps", type=int, default=4, help="steps per contender (the first is not timed)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each running every contender once")
    parser.add_argument("--ort-python", help="a python with onnxruntime-training 1.19.2 (it needs its own venv)")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" /
                                              f"train-{time.strftime('%Y-%m-%d')}.json"))
    parser.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--model-path", help=argparse.SUPPRESS)
    parser.add_argument("--artifact", help=argparse.SUPPRESS)
    parser.add_argument("--params", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.model = args.models[0]
        print(json.dumps(worker(args)))
        return

    import sparsec
    from sparsec.train.spec import TrainOptions

    update = tuple(args.update or ["weight:last=2"])
    work = Path(tempfile.mkdtemp(prefix="bench_train_"))
    rows = []
    for model in args.models:
        path = batch_model(model, work)
        compiled = sparsec.compile(path, output=work / model, progress=False,
                                   train=TrainOptions(LOSS[model], "sgd:lr=0.01,momentum=0.9", update))
        params = sparsec.load_trainer(compiled.path).meta["params"]
        contenders = [c for c in CONTENDERS if c != "ort" or args.ort_python]
        runs = {c: [] for c in contenders}
        for r in range(args.rounds):  # every contender once per round, in turn: the machine's noise hits all alike
            for contender in contenders:
                python = args.ort_python if contender == "ort" else sys.executable
                result = run_worker(contender, model, path, compiled.path if contender == "sparsec" else None,
                                    params, args.steps, python)
                runs[contender].append(result)
                print(f"{model:<14} round {r + 1}/{args.rounds} {contender:<13} " +
                      (f"{result['step_seconds'] * 1e3:9.1f} ms/step {result['peak_rss_growth_bytes'] / 2**20:9.1f} MiB"
                       if "error" not in result else result["error"]), flush=True)
        rows += [summary(model, c, runs) for c in contenders]
        if not args.ort_python:
            rows.append({"model": model, "contender": "ort", "error": "not run (no --ort-python)"})
    from bench_host import machine_info

    info = {**machine_info(), "load_average": os.getloadavg()[0], "torch": _version(sys.executable, "torch"),
            "onnxruntime_training": _version(args.ort_python, "onnxruntime") if args.ort_python else None}
    print(f"\nbatch {BATCH}, 1 thread, update {list(update)}; per round the median of {args.steps - 1} steps after "
          f"the first; medians of {args.rounds} rounds; {info['cpu_model']} ({', '.join(info['simd_flags'])}), "
          f"commit {info['commit']}, load average {info['load_average']:.1f}")
    print(f"{'model':<14} {'contender':<13} {'ms/step':>9} {'peak MiB':>9} {'less memory than torch_full':>28} "
          f"{'faster than torch_sparse':>25}")
    for row in rows:
        if "error" in row:
            print(f"{row['model']:<14} {row['contender']:<13} {row['error']}")
            continue
        print(f"{row['model']:<14} {row['contender']:<13} {row['step_seconds'] * 1e3:9.1f} "
              f"{row['peak_rss_growth_bytes'] / 2**20:9.1f} {row['memory_vs_torch_full']:27.2f}x "
              f"{row['speedup_vs_torch_sparse']:24.2f}x")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": info, "batch": BATCH, "threads": 1, "update": list(update),
                               "timed_steps": args.steps - 1, "rounds": args.rounds, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
