"""Structured pruning on the zoo: groups found, params/MACs and measured sparsec latency before and after.

    python benchmarks/bench_prune.py                                  # resnet18, mobilenet_v2, bert_encoder
    python benchmarks/bench_prune.py --all --ratio 0.5 --json benchmarks/results/prune.json

Latency is sparsec on this machine (host build, 1 thread, batch 1), dense vs pruned timed interleaved
in one loop so machine noise hits both alike; the ratio pruned/dense is what users feel, MACs are not.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import onnx

import sparsec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import zoo  # noqa: E402

DEFAULT_MODELS = ["resnet18", "mobilenet_v2", "bert_encoder"]


def interleaved_ms(sessions: list, feed: dict, repeats: int) -> list[float]:
    """Median latency per session, each repeat running all sessions in turn."""
    for s in sessions:
        s.run(None, feed)
    times = [[] for _ in sessions]
    for _ in range(repeats):
        for s, t in zip(sessions, times):
            start = time.perf_counter()
            s.run(None, feed)
            t.append((time.perf_counter() - start) * 1e3)
    return [statistics.median(t) for t in times]


def bench(name: str, ratio: float, criterion: str, repeats: int, workdir: Path) -> dict:
    path = zoo.cached(name)
    groups = sparsec.dependency_groups(path)
    prunable = [g for g in groups if g.prunable]
    pruned, report = sparsec.prune(path, ratio, criterion)
    pruned_path = workdir / f"{name}-pruned.onnx"
    onnx.save(pruned, pruned_path)
    dense = sparsec.load(sparsec.compile(path, output=workdir / "dense").path)
    small = sparsec.load(sparsec.compile(pruned_path, output=workdir / "pruned").path)
    dense_ms, pruned_ms = interleaved_ms([dense, small], zoo.example_inputs(name), repeats)
    return {
        "model": name, "groups": len(groups), "prunable_groups": len(prunable),
        "prunable_units_pct": 100.0 * sum(g.channels for g in prunable) / max(sum(g.channels for g in groups), 1),
        "params_before": report.params_before, "params_after": report.params_after,
        "macs_before": report.macs_before, "macs_after": report.macs_after,
        "latency_ms_before": dense_ms, "latency_ms_after": pruned_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--all", action="store_true", help="every zoo model")
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--criterion", default="l2")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    names = list(zoo.ZOO) if args.all else args.models.split(",")
    rows = []
    header = (f"{'model':<20} {'groups':>6} {'prunable':>8} {'units%':>6} {'params M':>15} {'GMACs':>13} "
              f"{'latency ms':>15} {'speedup':>7}")
    print(f"ratio {args.ratio}, criterion {args.criterion}, sparsec host, 1 thread\n{header}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            r = bench(name, args.ratio, args.criterion, args.repeats, Path(tmp))
            rows.append(r)
            print(f"{name:<20} {r['groups']:>6} {r['prunable_groups']:>8} {r['prunable_units_pct']:>5.0f}% "
                  f"{r['params_before'] / 1e6:>6.2f} -> {r['params_after'] / 1e6:>5.2f} "
                  f"{r['macs_before'] / 1e9:>5.2f} -> {r['macs_after'] / 1e9:>4.2f} "
                  f"{r['latency_ms_before']:>6.1f} -> {r['latency_ms_after']:>5.1f} "
                  f"{r['latency_ms_before'] / r['latency_ms_after']:>6.2f}x", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"ratio": args.ratio, "criterion": args.criterion, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
