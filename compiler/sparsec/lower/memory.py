"""Memory plan: one arena for all activations, buffers reused once their last reader has run."""

from __future__ import annotations

from sparsec.contract.schema import ALIGNMENT, OP_BY_CODE, Storage
from sparsec.lower.builder import LoweredGraph


def _aligned(n: int) -> int:
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def plan_memory(g: LoweredGraph) -> dict:
    """Assigns arena offsets (greedy by size, first fit among lifetimes that overlap).

    Returns {"arena_bytes", "naive_bytes", "scratch_bytes"}: the planned arena vs. one buffer per activation, and
    the largest op scratch (the runtime puts it after the arena).
    """
    end = len(g.ops)
    first: dict[int, int] = {t: -1 for t in g.inputs}
    last: dict[int, int] = {}
    for i, op in enumerate(g.ops):
        for t in op.outputs:
            if g.tensors[t].storage != Storage.ARENA:
                continue
            first.setdefault(t, i)
            last[t] = max(last.get(t, i), i)
        for t in op.inputs:
            if t is not None and g.tensors[t].storage == Storage.ARENA:
                last[t] = i
    for t in g.outputs:
        last[t] = end
    for t in g.inputs:
        last.setdefault(t, -1)
    shares = _in_place_outputs(g, first, last)
    for t, root in shares.items():
        last[root] = max(last[root], last[t])
    activations = sorted((t for t in first if t not in shares), key=lambda t: (-g.tensors[t].nbytes, first[t]))
    placed: list[tuple[int, int, int, int]] = []  # (offset, size, first, last)
    arena = 0
    for t in activations:
        size = _aligned(max(g.tensors[t].nbytes, 1))
        live = sorted((o, s) for o, s, f, l in placed if not (l < first[t] or last[t] < f))
        offset = 0
        for o, s in live:
            if offset + size <= o:
                break
            offset = max(offset, o + s)
        g.tensors[t].offset = offset
        placed.append((offset, size, first[t], last[t]))
        arena = max(arena, offset + size)
    for t, root in shares.items():
        g.tensors[t].offset = g.tensors[root].offset
    naive = sum(_aligned(max(g.tensors[t].nbytes, 1)) for t in first)
    scratch = max((op.scratch_bytes for op in g.ops), default=0)
    return {"arena_bytes": arena, "naive_bytes": naive, "scratch_bytes": scratch}


def _in_place_outputs(g: LoweredGraph, first: dict[int, int], last: dict[int, int]) -> dict[int, int]:
    """Outputs that share their first input's buffer (Reshape's Copy, an activation): the op is in_place in the
    contract and the input's last reader, and both have one size. Maps each to the tensor that owns the buffer.
    Never a graph input's buffer: a caller may run again on the inputs it set once."""
    shares: dict[int, int] = {}
    graph_inputs = set(g.inputs)
    for i, op in enumerate(g.ops):
        if not OP_BY_CODE[op.opcode].in_place or len(op.outputs) != 1 or not op.inputs or op.inputs[0] is None:
            continue
        src, dst = op.inputs[0], op.outputs[0]
        if (src in first and dst in first and src not in graph_inputs and last[src] == i and first[dst] == i
                and op.inputs.count(src) == 1 and g.tensors[src].nbytes == g.tensors[dst].nbytes > 0):
            shares[dst] = shares.get(src, src)
    return shares
