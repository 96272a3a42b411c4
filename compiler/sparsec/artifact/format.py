"""Writer and reader of the .spx format (layout documented in runtime/src/artifact.h; codes in the contract)."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from sparsec.contract.schema import (ABSENT, ALIGNMENT, DTYPE_BY_CODE, DTYPE_BY_NAME, FORMAT_VERSION, HEADER_SIZE,
                                     OP_BY_CODE, TARGETS, Feature, Storage, TensorFlag)

MAGIC = b"SPARSEC\0"
_HEADER = struct.Struct("<8sIIQII QQQQQ 24x")
assert _HEADER.size == HEADER_SIZE


@dataclass
class QuantParams:
    """Per-tensor (one value) or per-channel (one per index of axis) scale and zero point."""

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None = None  # None: per tensor


@dataclass
class SparseInfo:
    """Metadata of a packed sparse weight: format, block shape, dense shape, nonzeros."""

    format: int
    block: tuple[int, int]
    dense_shape: tuple[int, int]
    nonzeros: int


@dataclass
class TensorEntry:
    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    data: np.ndarray | None = None  # constants and parameters carry their data; activations get an arena offset
    offset: int = 0
    storage: Storage | None = None  # default: CONST with data, ARENA without
    quant: QuantParams | None = None
    sparse: SparseInfo | None = None

    def __post_init__(self) -> None:
        if self.storage is None:
            self.storage = Storage.CONST if self.data is not None else Storage.ARENA

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    @property
    def is_const(self) -> bool:
        return self.storage == Storage.CONST


@dataclass
class OpEntry:
    opcode: int
    inputs: list[int | None]
    outputs: list[int]
    iattr: list[int] = field(default_factory=list)
    fattr: list[float] = field(default_factory=list)
    name: str = ""  # the ONNX node it came from (its name, or "#index:first output" when unnamed)
    source_op: str = ""  # that node's ONNX op type
    scratch_bytes: int = 0


def _align(n: int) -> int:
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def _string(s: str) -> bytes:
    b = s.encode("utf-8")
    return struct.pack("<I", len(b)) + b


def _dtype_code(dtype: np.dtype) -> int:
    return DTYPE_BY_NAME[np.dtype(dtype).name].code


def _pack_region(tensors: list[TensorEntry], storage: Storage) -> bytes:
    """Assigns 64-aligned offsets to the tensors of one region and returns the region's bytes."""
    data = bytearray()
    for t in tensors:
        if t.storage == storage:
            t.offset = _align(len(data))
            data.extend(b"\0" * (t.offset - len(data)))
            data.extend(np.ascontiguousarray(t.data, dtype=t.dtype.newbyteorder("<")).tobytes())
    return bytes(data)


def _tensor_record(t: TensorEntry) -> bytes:
    flags = (TensorFlag.QUANT if t.quant else 0) | (TensorFlag.SPARSE if t.sparse else 0)
    meta = struct.pack("<BBBB", _dtype_code(t.dtype), t.storage, len(t.shape), flags)
    meta += struct.pack(f"<{len(t.shape)}q", *t.shape) + struct.pack("<QQ", t.offset, t.nbytes) + _string(t.name)
    if t.quant:
        scale = np.asarray(t.quant.scale, np.float32).reshape(-1)
        kind = 1 if t.quant.axis is None else 2
        meta += struct.pack("<BBHI", kind, t.quant.axis or 0, 0, scale.size) + scale.astype("<f4").tobytes()
        meta += np.asarray(t.quant.zero_point, "<i4").reshape(-1).tobytes()
    if t.sparse:
        meta += struct.pack("<BBBBIqqQ", t.sparse.format, *t.sparse.block, 0, 0, *t.sparse.dense_shape,
                            t.sparse.nonzeros)
    return meta


def serialize(target: str, tensors: list[TensorEntry], ops: list[OpEntry], inputs: list[int], outputs: list[int],
              arena_size: int) -> bytes:
    """The artifact's bytes; constant and parameter offsets are assigned here, activation offsets must be set."""
    data = _pack_region(tensors, Storage.CONST)
    params = _pack_region(tensors, Storage.PARAM)
    features = ((Feature.PARAMS if params or any(t.storage == Storage.PARAM for t in tensors) else 0)
                | (Feature.QUANT if any(t.quant for t in tensors) else 0)
                | (Feature.SPARSE if any(t.sparse for t in tensors) else 0))
    meta = bytearray(struct.pack("<I", len(tensors)))
    for t in tensors:
        meta += _tensor_record(t)
    meta += struct.pack("<I", len(ops))
    for op in ops:
        ins = [ABSENT if i is None else i for i in op.inputs]
        meta += struct.pack("<5I", op.opcode, len(ins), len(op.outputs), len(op.iattr), len(op.fattr))
        meta += struct.pack(f"<{len(ins)}I{len(op.outputs)}I", *ins, *op.outputs)
        meta += struct.pack(f"<{len(op.iattr)}q{len(op.fattr)}fQ", *op.iattr, *op.fattr, op.scratch_bytes)
        meta += _string(op.name) + _string(op.source_op)
    for ids in (inputs, outputs):
        meta += struct.pack(f"<I{len(ids)}I", len(ids), *ids)
    data_offset = _align(HEADER_SIZE + len(meta))
    param_offset = _align(data_offset + len(data)) if params else 0
    body = bytes(meta) + b"\0" * (data_offset - HEADER_SIZE - len(meta)) + data
    if params:
        body += b"\0" * (param_offset - HEADER_SIZE - len(body)) + params
    file_size = HEADER_SIZE + len(body)
    fields = [FORMAT_VERSION, TARGETS[target], file_size, 0, features, data_offset, len(data), arena_size,
              param_offset, len(params)]
    checksum = zlib.crc32(_HEADER.pack(MAGIC, *fields)[32:] + body)
    fields[3] = checksum
    return _HEADER.pack(MAGIC, *fields) + body


@dataclass
class Artifact:
    """A parsed .spx (for `sparsec inspect` and tests; the runtime has its own validating parser)."""

    version: int
    target: str
    features: int
    arena_size: int
    param_size: int
    file_size: int
    tensors: list[TensorEntry]
    ops: list[OpEntry]
    inputs: list[int]
    outputs: list[int]


class _Cursor:
    def __init__(self, data: bytes, pos: int) -> None:
        self.data, self.pos = data, pos

    def take(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def string(self) -> str:
        (n,) = self.take("I")
        self.pos += n
        return self.data[self.pos - n:self.pos].decode("utf-8", "replace")


def parse(data: bytes) -> Artifact:
    """Reads an artifact written by serialize (raises ValueError on another format or version)."""
    if data[:8] != MAGIC or len(data) < HEADER_SIZE:
        raise ValueError("not a sparsec artifact")
    (_, version, target, file_size, _, features, data_offset, _, arena_size, param_offset,
     param_size) = _HEADER.unpack_from(data)
    if version != FORMAT_VERSION:
        raise ValueError(f"artifact format version {version}; this sparsec reads {FORMAT_VERSION}")
    c = _Cursor(data, HEADER_SIZE)
    tensors = []
    for _ in range(c.take("I")[0]):
        code, storage, ndim, flags = c.take("BBBB")
        shape = c.take(f"{ndim}q")
        offset, _ = c.take("QQ")
        t = TensorEntry(c.string(), np.dtype(DTYPE_BY_CODE[code].name), shape, offset=offset, storage=Storage(storage))
        if flags & TensorFlag.QUANT:
            kind, axis, _, count = c.take("BBHI")
            t.quant = QuantParams(np.array(c.take(f"{count}f"), np.float32), np.array(c.take(f"{count}i"), np.int32),
                                  axis if kind == 2 else None)
        if flags & TensorFlag.SPARSE:
            fmt, br, bc, _, _, rows, cols, nnz = c.take("BBBBIqqQ")
            t.sparse = SparseInfo(fmt, (br, bc), (rows, cols), nnz)
        base = data_offset if t.storage == Storage.CONST else param_offset if t.storage == Storage.PARAM else None
        if base is not None:
            raw = data[base + offset:base + offset + t.nbytes]
            t.data = np.frombuffer(raw, t.dtype.newbyteorder("<")).reshape(shape)
        tensors.append(t)
    ops = []
    for _ in range(c.take("I")[0]):
        opcode, n_in, n_out, n_i, n_f = c.take("5I")
        ins = [None if i == ABSENT else i for i in c.take(f"{n_in}I")]
        outs = list(c.take(f"{n_out}I"))
        iattr, fattr = list(c.take(f"{n_i}q")), list(c.take(f"{n_f}f"))
        (scratch,) = c.take("Q")
        name = c.string()
        ops.append(OpEntry(opcode, ins, outs, iattr, fattr, name, c.string(), scratch))
    inputs = list(c.take(f"{c.take('I')[0]}I"))
    outputs = list(c.take(f"{c.take('I')[0]}I"))
    target_name = next((n for n, code in TARGETS.items() if code == target), f"unknown ({target})")
    return Artifact(version, target_name, features, arena_size, param_size, file_size, tensors, ops, inputs, outputs)


def op_spec(op: OpEntry):
    """The contract's description of a record's op."""
    return OP_BY_CODE[op.opcode]
