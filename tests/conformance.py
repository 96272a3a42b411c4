"""ONNX backend node tests through sparsec on the host: generate the cases, run them, compare, keep the expectations.

The onnx wheel ships the generators of the node cases, not their data: `ensure_cases` writes model.onnx and
test_data_set_0/{input,output}_*.pb of every case (as onnx's `backend-test-tools generate-data` does for its own
data directory) into a cache, once per onnx version. `run_cases` compiles each typed case with
`sparsec.compile(target="host")`, runs it with `sparsec.load(...).run` and compares with the expected outputs,
in worker processes (a crash or hang costs one case, not the run). `python tests/conformance.py --update`
rewrites the expectations file from a run (compile-time rejections only).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

EXPECTATIONS = Path(__file__).with_name("conformance_expected.tsv")
# The dtypes the issue counts as "typed": every graph input and output is a tensor of one of these.
TYPED_DTYPES = {TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32, TensorProto.BOOL, TensorProto.UINT8,
                TensorProto.INT8}
RTOL, ATOL = 1e-3, 1e-7  # onnx's backend node tests use these
# Cases whose expected outputs carry float32 rounding well above ATOL where the exact value is ~0: the inverse DFT's
# data comes from numpy's single-precision FFT (1.9e-7 where the exact transform gives 3e-15; sparsec sums in double,
# onnxruntime is 7e-6 off). Compared with this absolute tolerance instead.
CASE_ATOL = {"test_dft_inverse": 1e-6, "test_dft_inverse_opset19": 1e-6}
CASE_TIMEOUT_S = 120
LIGHT_TIMEOUT_S = 900  # light_vgg19: 143M random weights, about a minute to compile and run
WORKERS = 2
# A recorded `bug` (an exception outside SparsecError) fails the test unless this is set: the transition switch
# while lowering's errors are being fixed. Once they are, delete the `bug` lines (run --update) and this switch.
ALLOW_RECORDED_BUGS = os.environ.get("SPARSEC_CONFORMANCE_ALLOW_BUGS") == "1"
_RESULT = "@@conformance "  # prefix of a worker's result lines (anything else on its stdout is noise)


def cache_dir() -> Path:
    """Where the generated cases live: $SPARSEC_CONFORMANCE_CACHE or ~/.cache/sparsec/onnx-node-<onnx version>."""
    default = Path.home() / ".cache" / "sparsec" / f"onnx-node-{onnx.__version__}"
    return Path(os.environ.get("SPARSEC_CONFORMANCE_CACHE", default))


def _serialize(value, type_proto: onnx.TypeProto, name: str) -> bytes:
    """One input/output value as the .pb file onnx's generate-data writes for it."""
    if type_proto.HasField("map_type"):
        return numpy_helper.from_dict(value, name).SerializeToString()
    if type_proto.HasField("sequence_type"):
        return numpy_helper.from_list(value, name).SerializeToString()
    if type_proto.HasField("optional_type"):
        return numpy_helper.from_optional(value, name).SerializeToString()
    return (value if isinstance(value, TensorProto) else numpy_helper.from_array(value, name)).SerializeToString()


def _is_typed(model: onnx.ModelProto) -> bool:
    """Default domain only (nodes and opset imports); every graph input and output a tensor of a TYPED_DTYPES type."""
    domains = {n.domain for n in model.graph.node} | {o.domain for o in model.opset_import}
    if not domains <= {"", "ai.onnx"}:
        return False
    values = list(model.graph.input) + list(model.graph.output)
    return all(v.type.HasField("tensor_type") and v.type.tensor_type.elem_type in TYPED_DTYPES for v in values)


def _base_name(name: str) -> str:
    """test_x_expanded / test_x_expanded_ver18 -> test_x (the function-expanded form of case test_x)."""
    return name.split("_expanded")[0]


def generate_cases(directory: Path) -> None:
    """Writes every node case (model.onnx, test_data_set_*/{input,output}_*.pb) and index.json into directory."""
    from onnx.backend.test.case import node

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = node.collect_testcases()
    op_of = {c.name: c.model.graph.node[0].op_type for c in cases if len(c.model.graph.node) == 1}
    index = {}
    for case in cases:
        case_dir = directory / case.name
        case_dir.mkdir(parents=True)
        (case_dir / "model.onnx").write_bytes(case.model.SerializeToString())
        graph = case.model.graph
        for i, (inputs, outputs) in enumerate(case.data_sets):
            data_dir = case_dir / f"test_data_set_{i}"
            data_dir.mkdir()
            for kind, values, infos in (("input", inputs, graph.input), ("output", outputs, graph.output)):
                for j, (value, info) in enumerate(zip(values, infos)):
                    (data_dir / f"{kind}_{j}.pb").write_bytes(_serialize(value, info.type, info.name))
        op_type = op_of.get(_base_name(case.name)) or graph.node[0].op_type
        index[case.name] = {"op_type": op_type, "typed": _is_typed(case.model)}
    (directory / "index.json").write_text(json.dumps(index, indent=1, sort_keys=True))


def ensure_cases(directory: Path | None = None) -> dict:
    """The case index {name: {op_type, typed}}, generating the cache first if it is missing."""
    directory = directory or cache_dir()
    index = directory / "index.json"
    if not index.exists():
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}."))
        try:
            generate_cases(staging)
            if directory.exists():  # a partial directory from an older run (no index.json): replace it
                shutil.rmtree(directory)
            os.replace(staging, directory)
        except OSError:
            if not index.exists():  # another process finished first: its copy is as good as ours
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return json.loads(index.read_text())


@dataclass
class Outcome:
    """What happened to one case. status: pass | rejected | bug | wrong | run_failure | crash."""

    status: str
    error: str = ""  # exception class (rejected, bug, run_failure)
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("pass", "rejected")


def _read_tensors(data_dir: Path, kind: str) -> list[np.ndarray]:
    arrays = []
    for path in sorted(data_dir.glob(f"{kind}_*.pb"), key=lambda p: int(p.stem.split("_")[1])):
        tensor = TensorProto()
        tensor.ParseFromString(path.read_bytes())
        arrays.append(numpy_helper.to_array(tensor))
    return arrays


def compare(actual: np.ndarray, expected: np.ndarray, atol: float = ATOL) -> str:
    """'' if actual matches (exact for integers and bool, rtol/atol for floats, NaN where expected), else why not."""
    if actual.dtype != expected.dtype:
        return f"dtype {actual.dtype}, expected {expected.dtype}"
    if actual.shape != expected.shape:
        return f"shape {list(actual.shape)}, expected {list(expected.shape)}"
    if np.issubdtype(expected.dtype, np.floating):
        close = np.isclose(actual, expected, rtol=RTOL, atol=atol, equal_nan=True)
        if close.all():
            return ""
        bad = np.argwhere(~close)[0]
        return (f"{int((~close).sum())} of {close.size} elements differ, first at {bad.tolist()}: "
                f"{actual[tuple(bad)]!r} vs {expected[tuple(bad)]!r}")
    if np.array_equal(actual, expected):
        return ""
    bad = np.argwhere(actual != expected)[0]
    return f"{int((actual != expected).sum())} of {actual.size} elements differ, first at {bad.tolist()}: " \
           f"{actual[tuple(bad)]!r} vs {expected[tuple(bad)]!r}"


def _first_line(error: BaseException) -> str:
    text = str(error).strip().replace("\t", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # UnsupportedOpError's first line only counts nodes; the reason is on the next one.
    return " | ".join(lines[:2])[:300] if lines else type(error).__name__


def compile_refusal(model: onnx.ModelProto, artifact: Path) -> Outcome | None:
    """Compiles model for the host into artifact; None if it compiled, else how it was refused. A SparsecError is
    a refusal; an InternalError (sparsec's own word for a bug in itself) or any other exception is a bug."""
    import sparsec

    try:
        sparsec.compile(model, target="host", output=artifact)
    except sparsec.InternalError as e:
        return Outcome("bug", type(e).__name__, _first_line(e))
    except sparsec.SparsecError as e:
        return Outcome("rejected", type(e).__name__, _first_line(e))
    except Exception as e:  # noqa: BLE001 - exactly what this harness must catch and report
        return Outcome("bug", f"{type(e).__module__}.{type(e).__qualname__}", _first_line(e))
    return None


def run_case(case_dir: Path, work: Path) -> Outcome:
    """Compile case_dir/model.onnx for the host, run every data set, compare."""
    import sparsec

    model = onnx.load(case_dir / "model.onnx")
    artifact = work / "case.spx"
    refused = compile_refusal(model, artifact)
    if refused:
        return refused
    if not all(v.type.HasField("tensor_type") for v in [*model.graph.input, *model.graph.output]):
        return Outcome("run_failure", "", "compiled a model whose inputs or outputs are not all tensors")
    initializers = {i.name for i in model.graph.initializer}
    input_names = [i.name for i in model.graph.input if i.name not in initializers]
    output_names = [o.name for o in model.graph.output]
    for data_dir in sorted(case_dir.glob("test_data_set_*")):
        feed = dict(zip(input_names, _read_tensors(data_dir, "input")))
        try:
            actual = sparsec.load(artifact).run(output_names, feed)
        except Exception as e:  # noqa: BLE001 - after a successful compile, any failure is a failure
            return Outcome("run_failure", type(e).__name__, _first_line(e))
        for name, a, e in zip(output_names, actual, _read_tensors(data_dir, "output")):
            why = compare(np.asarray(a), e, CASE_ATOL.get(case_dir.name, ATOL))
            if why:
                return Outcome("wrong", "", f"output '{name}': {why}")
    return Outcome("pass")


def _worker(directory: Path) -> None:
    """Reads case names on stdin, writes one result line per case on stdout."""
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory(prefix="sparsec-conformance-") as work:
        for line in sys.stdin:
            name = line.strip()
            if name.startswith(LIGHT_PREFIX):
                outcome = run_light(LIGHT_DIR / f"{name[len(LIGHT_PREFIX):]}.onnx", Path(work))
            else:
                outcome = run_case(directory / name, Path(work))
            print(_RESULT + json.dumps({"name": name, **asdict(outcome)}), flush=True)


class _Worker:
    """One worker process; a case that crashes or hangs it is recorded and the worker restarted."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.proc = None

    def _start(self) -> None:
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker", str(self.directory)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True)

    def run(self, name: str) -> Outcome:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        timeout = LIGHT_TIMEOUT_S if name.startswith(LIGHT_PREFIX) else CASE_TIMEOUT_S
        timer = threading.Timer(timeout, self.proc.kill)
        timer.start()
        try:
            self.proc.stdin.write(name + "\n")
            self.proc.stdin.flush()
            for line in self.proc.stdout:
                if line.startswith(_RESULT):
                    result = json.loads(line[len(_RESULT):])
                    return Outcome(result["status"], result["error"], result["detail"])
        except BrokenPipeError:
            pass
        finally:
            timer.cancel()
        code = self.proc.wait()
        self.stderr.seek(0)
        tail = self.stderr.read().decode(errors="replace").strip().splitlines()[-1:] or [""]
        self.proc = None
        reason = f"timed out after {timeout} s" if code == -9 else f"worker died (exit {code})"
        return Outcome("crash", "", f"{reason}: {tail[0][:200]}")

    def close(self) -> None:
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.wait()


def run_cases(names: list[str], directory: Path | None = None, workers: int = WORKERS) -> dict[str, Outcome]:
    """Runs the named cases in `workers` processes; {name: Outcome}."""
    directory = directory or cache_dir()

    def cost(name):  # light models first, biggest first: they overlap the many small node cases
        path = LIGHT_DIR / f"{name[len(LIGHT_PREFIX):]}.onnx"
        return -path.stat().st_size if name.startswith(LIGHT_PREFIX) else 0

    pending = list(reversed(sorted(names, key=cost)))
    results = {}
    lock = threading.Lock()

    def drain():
        worker = _Worker(directory)
        try:
            while True:
                with lock:
                    if not pending:
                        return
                    name = pending.pop()
                outcome = worker.run(name)
                with lock:
                    results[name] = outcome
        finally:
            worker.close()

    threads = [threading.Thread(target=drain) for _ in range(max(1, min(workers, len(names))))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


LIGHT_DIR = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
LIGHT_PREFIX = "light/"  # case names of the light models: light/light_vgg19, ...
LIGHT_RTOL = 1e-3  # max |sparsec - onnxruntime| / max |onnxruntime| over each output


def light_models() -> list[str]:
    """Case names of the opset-9 models of onnx's backend data whose weights are made by ConstantOfShape."""
    return [LIGHT_PREFIX + p.stem for p in sorted(LIGHT_DIR.glob("*.onnx"))]


def randomize_weights(model: onnx.ModelProto, seed: int = 0) -> onnx.ModelProto:
    """Each ConstantOfShape with a constant shape becomes a seeded random initializer of that shape: He-scaled
    normal for weights (rank >= 2), uniform [0.5, 1.5] for vectors (biases, scales, BatchNorm means/variances)."""
    rng = np.random.default_rng(seed)
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    kept = []
    for node in graph.node:
        if node.op_type != "ConstantOfShape" or node.input[0] not in constants:
            kept.append(node)
            continue
        shape = tuple(int(d) for d in constants[node.input[0]])
        if len(shape) >= 2:
            value = rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / np.prod(shape[1:])))
        else:
            value = rng.random(shape, dtype=np.float32) + np.float32(0.5)
        graph.initializer.append(numpy_helper.from_array(value, node.output[0]))
    del graph.node[:]
    graph.node.extend(kept)
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    for unused in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(unused)
    initializers = {i.name for i in graph.initializer}
    for weight in [i for i in graph.input if i.name in initializers or i.name not in used]:
        graph.input.remove(weight)
    model.ir_version = max(model.ir_version, 4)  # IR 3 wants every initializer listed as a graph input too
    return model


def run_light(path: Path, work: Path) -> Outcome:
    """Compile a light model with random weights; compare sparsec with onnxruntime on a seeded random input."""
    import onnxruntime as ort

    import sparsec

    model = randomize_weights(onnx.load(path))
    artifact = work / f"{path.stem}.spx"
    refused = compile_refusal(model, artifact)
    if refused:
        return refused
    initializers = {i.name for i in model.graph.initializer}
    rng = np.random.default_rng(1)
    feed = {i.name: rng.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim]).astype(np.float32)
            for i in model.graph.input if i.name not in initializers}
    try:
        actual = sparsec.load(artifact).run(None, feed)
    except Exception as e:  # noqa: BLE001
        return Outcome("run_failure", type(e).__name__, _first_line(e))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    expected = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(
        None, feed)
    for info, a, e in zip(model.graph.output, actual, expected):
        if a.shape != e.shape or a.dtype != e.dtype:
            return Outcome("wrong", "", f"output '{info.name}': {a.dtype}{list(a.shape)}, expected {e.dtype}{list(e.shape)}")
        error = float(np.max(np.abs(a.astype(np.float64) - e))) / max(float(np.max(np.abs(e))), 1e-30)
        if not error <= LIGHT_RTOL:
            return Outcome("wrong", "", f"output '{info.name}': max relative error {error:.3g}")
    return Outcome("pass")


@dataclass(frozen=True)
class Expectation:
    status: str  # rejected | bug
    error: str
    reason: str


def read_expectations(path: Path = EXPECTATIONS) -> dict[str, Expectation]:
    """case<TAB>status<TAB>error class<TAB>reason excerpt; '#' lines are comments."""
    expected = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                name, status, error, reason = (line.split("\t") + ["", "", ""])[:4]
                expected[name] = Expectation(status, error, reason)
    return expected


def recordable(outcome: Outcome) -> bool:
    """Only refusals are expectations: a SparsecError, or (while ALLOW_RECORDED_BUGS is on) a marked bug."""
    return outcome.status == "rejected" or (outcome.status == "bug" and ALLOW_RECORDED_BUGS)


def write_expectations(results: dict[str, Outcome], path: Path = EXPECTATIONS) -> None:
    lines = ["# ONNX backend node cases (and light/ models) sparsec is expected to refuse at compile time.",
             "# case\tstatus\terror class\treason excerpt",
             "# status: rejected = a SparsecError (the right way to refuse); bug = an InternalError or an exception",
             "# outside SparsecError, a bug to fix (fails the test unless SPARSEC_CONFORMANCE_ALLOW_BUGS=1). Regenerate with",
             "# `python tests/conformance.py --update` (tests/conformance.py); lines may only be deleted by hand."]
    for name in sorted(results):
        o = results[name]
        if recordable(o):
            lines.append(f"{name}\t{o.status}\t{o.error}\t{o.detail[:160]}")
    path.write_text("\n".join(lines) + "\n")


def check(name: str, outcome: Outcome, expected: Expectation | None) -> str:
    """'' if the outcome is what the expectations say, else the failure message."""
    if outcome.status == "pass":
        return f"{name} now passes: delete its line from {EXPECTATIONS.name}" if expected else ""
    if outcome.status == "wrong":
        return f"{name}: WRONG RESULT ({outcome.detail})"
    if outcome.status == "run_failure":
        return f"{name}: compiled, then failed at run time: {outcome.error}: {outcome.detail}"
    if outcome.status == "crash":
        return f"{name}: {outcome.detail}"
    if expected is None:
        return f"{name}: unexpected {outcome.status}: {outcome.error}: {outcome.detail}"
    if (expected.status, expected.error) != (outcome.status, outcome.error):
        return (f"{name}: expected {expected.status} {expected.error}, got {outcome.status} {outcome.error}: "
                f"{outcome.detail} (update the line: python tests/conformance.py --update)")
    if outcome.status == "bug" and not ALLOW_RECORDED_BUGS:
        return f"{name}: a bug in sparsec ({outcome.error}): {outcome.detail}"
    return ""


def counts(results: dict[str, Outcome], index: dict) -> dict:
    """Totals by status, by op type and by (status, error class), over the typed cases (the issue's goal) and all."""

    def tally(names):
        statuses = Counter(results[n].status for n in names)
        return {"cases": len(names), "status": dict(statuses.most_common()),
                "pass_rate": round(statuses["pass"] / max(len(names), 1), 4),
                "errors": {f"{s} {e}": c for (s, e), c in Counter((results[n].status, results[n].error) for n in names
                                                                    if results[n].error).most_common()}}

    light = {n: results[n].status for n in results if n.startswith(LIGHT_PREFIX)}
    results = {n: o for n, o in results.items() if n in index}
    typed = [n for n in results if index[n]["typed"]]
    by_op: dict[str, Counter] = {}
    for name in typed:
        by_op.setdefault(index[name]["op_type"], Counter())[results[name].status] += 1
    return {"onnx": onnx.__version__, "typed": tally(typed), "all": tally(list(results)),
            "typed_by_op": {op: dict(c) for op, c in sorted(by_op.items())}, "light": light}


def summary_lines(summary: dict) -> list[str]:
    lines = []
    for key, what in (("typed", "typed cases (float32/int64/int32/bool/uint8/int8, default domain)"),
                      ("all", "cases (all)")):
        t = summary[key]
        s = t["status"]
        lines.append(f"ONNX node conformance (onnx {summary['onnx']}), {t['cases']} {what}: {s.get('pass', 0)} pass "
                     f"({t['pass_rate']:.1%}), " + ", ".join(f"{n} {k}" for k, n in s.items() if k != "pass"))
        lines += [f"  {n:5d}  {error}" for error, n in t["errors"].items()]
    if summary["light"]:
        lines.append("light models (random weights) vs onnxruntime: "
                     + ", ".join(f"{n[len(LIGHT_PREFIX):]} {s}" for n, s in sorted(summary["light"].items())))
    lines.append("typed cases by op type:")
    width = max((len(op) for op in summary["typed_by_op"]), default=0)
    for op, c in summary["typed_by_op"].items():
        lines.append(f"  {op:<{width}}  " + "  ".join(f"{k} {v}" for k, v in sorted(c.items())))
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help=f"rewrite {EXPECTATIONS.name} from a full run")
    parser.add_argument("--json", help="write the counts as JSON here")
    parser.add_argument("-k", dest="substring", help="only cases whose name contains this")
    parser.add_argument("--workers", type=int, default=WORKERS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(Path(args.worker))
        return 0
    index = ensure_cases()
    names = [n for n in [*sorted(index), *light_models()] if not args.substring or args.substring in n]
    start = time.perf_counter()
    results = run_cases(names, workers=args.workers)
    seconds = time.perf_counter() - start
    summary = counts(results, index)
    print("\n".join(summary_lines(summary)))
    print(f"{len(names)} cases in {seconds:.0f} s with {args.workers} worker(s)")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))
    refused = {n: o for n, o in results.items() if not o.ok and not recordable(o)}
    for name, o in sorted(refused.items()):
        print(f"  {o.status}: {name}: {o.error} {o.detail}")
    if args.update:
        if args.substring:
            print("--update needs a full run (no -k)")
            return 1
        write_expectations(results)
        print(f"wrote {EXPECTATIONS} ({sum(recordable(o) for o in results.values())} lines); "
              f"not recorded (fix them, they can never be expected): {len(refused)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
