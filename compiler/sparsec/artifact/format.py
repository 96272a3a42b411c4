"""Writer of the .spx format (layout documented in runtime/src/artifact.h)."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

MAGIC = b"SPARSEC\0"
FORMAT_VERSION = 1
HEADER_SIZE = 64
ALIGNMENT = 64
ABSENT = 0xFFFFFFFF
TARGET_IDS = {"x86_64": 1, "arm64": 2, "wasm32": 3}
DTYPE_CODES = {np.dtype(np.float32): 1, np.dtype(np.int64): 2, np.dtype(np.int32): 3, np.dtype(np.uint8): 4, np.dtype(np.int8): 5}
CONST, ARENA = 0, 1


@dataclass
class TensorEntry:
    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    data: np.ndarray | None = None  # constants carry their data; activations get an arena offset
    offset: int = 0

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    @property
    def is_const(self) -> bool:
        return self.data is not None


@dataclass
class OpEntry:
    opcode: int
    inputs: list[int | None]
    outputs: list[int]
    iattr: list[int] = field(default_factory=list)
    fattr: list[float] = field(default_factory=list)
    name: str = ""


def _align(n: int) -> int:
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def _string(s: str) -> bytes:
    b = s.encode("utf-8")
    return struct.pack("<I", len(b)) + b


def serialize(target: str, tensors: list[TensorEntry], ops: list[OpEntry], inputs: list[int], outputs: list[int],
              arena_size: int) -> bytes:
    """The artifact's bytes; constant offsets are assigned here, activation offsets must be set."""
    data = bytearray()
    for t in tensors:
        if t.is_const:
            t.offset = _align(len(data))
            data.extend(b"\0" * (t.offset - len(data)))
            data.extend(np.ascontiguousarray(t.data, dtype=t.dtype.newbyteorder("<")).tobytes())
    meta = bytearray(struct.pack("<I", len(tensors)))
    for t in tensors:
        meta += struct.pack("<BBBB", DTYPE_CODES[t.dtype], CONST if t.is_const else ARENA, len(t.shape), 0)
        meta += struct.pack(f"<{len(t.shape)}q", *t.shape)
        meta += struct.pack("<QQ", t.offset, t.nbytes) + _string(t.name)
    meta += struct.pack("<I", len(ops))
    for op in ops:
        ins = [ABSENT if i is None else i for i in op.inputs]
        meta += struct.pack("<5I", op.opcode, len(ins), len(op.outputs), len(op.iattr), len(op.fattr))
        meta += struct.pack(f"<{len(ins)}I{len(op.outputs)}I", *ins, *op.outputs)
        meta += struct.pack(f"<{len(op.iattr)}q{len(op.fattr)}f", *op.iattr, *op.fattr) + _string(op.name)
    for ids in (inputs, outputs):
        meta += struct.pack(f"<I{len(ids)}I", len(ids), *ids)
    data_offset = _align(HEADER_SIZE + len(meta))
    body = bytes(meta) + b"\0" * (data_offset - HEADER_SIZE - len(meta)) + bytes(data)
    file_size = HEADER_SIZE + len(body)
    tail = struct.pack("<QQQQ", data_offset, len(data), arena_size, 0)
    checksum = zlib.crc32(tail + body)
    head = MAGIC + struct.pack("<IIQII", FORMAT_VERSION, TARGET_IDS[target], file_size, checksum, 0)
    return head + tail + body
