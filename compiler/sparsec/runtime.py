"""Loading and running artifacts. Needs only numpy and the C++ module: no onnx, no torch."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from sparsec import _rt
from sparsec.errors import ArtifactError, InputError, SparsecError

# sparsec_status codes (runtime/include/sparsec_rt.h)
_IO, _FORMAT, _CHECKSUM, _VERSION, _TARGET, _INVALID_ARGUMENT = 1, 2, 3, 4, 5, 6


@dataclass(frozen=True)
class TensorInfo:
    """Like onnxruntime's NodeArg: name, static shape and numpy dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype


def _translate(error: _rt.StatusError) -> SparsecError:
    code, message = error.args
    if code == _INVALID_ARGUMENT:
        return InputError(message)
    if code in (_IO, _FORMAT, _CHECKSUM, _VERSION, _TARGET):
        return ArtifactError(message)
    return SparsecError(message)


def _not_a_feed(input_feed) -> str | None:
    """What is wrong with input_feed as a {name: array} dict, or None."""
    if not isinstance(input_feed, Mapping):
        return type(input_feed).__name__
    keys = [k for k in input_feed if not isinstance(k, str)]
    return f"keys {keys!r}" if keys else None


class Session:
    """A loaded artifact, run like onnxruntime.InferenceSession: `run(None, {"input": x})`."""

    def __init__(self, artifact: str | os.PathLike | bytes):
        from_bytes = isinstance(artifact, (bytes, bytearray, memoryview))
        self.path = None if from_bytes else os.fspath(artifact)
        if self.path is not None and os.path.isdir(self.path):
            raise ArtifactError(f"{self.path} is a directory, not a .spx artifact")
        try:
            # From a path the C++ loader reads the file itself: the weights are in memory once.
            self._session = _rt.Session(bytes(artifact)) if from_bytes else _rt.Session.from_file(self.path)
        except _rt.StatusError as e:
            raise _translate(e) from None
        self._inputs = [TensorInfo(d["name"], tuple(d["shape"]), np.dtype(d["dtype"])) for d in self._session.inputs()]
        self._outputs = [TensorInfo(d["name"], tuple(d["shape"]), np.dtype(d["dtype"])) for d in self._session.outputs()]

    def get_inputs(self) -> list[TensorInfo]:
        return list(self._inputs)

    def get_outputs(self) -> list[TensorInfo]:
        return list(self._outputs)

    @property
    def arena_bytes(self) -> int:
        """Bytes of the one activation arena (memory plan + kernel scratch), allocated at load."""
        return self._session.arena_bytes

    def profile(self, input_feed: dict[str, np.ndarray], repeats: int = 10) -> list[tuple[str, str, float]]:
        """Median seconds per runtime op over `repeats` runs: [(node name, op kind, seconds)]."""
        self._session.set_profiling(True)
        try:
            samples = []
            for _ in range(repeats):
                self.run(None, input_feed)
                samples.append(self._session.op_times())
        finally:
            self._session.set_profiling(False)
        return [(name, kind, float(np.median([s[i][2] for s in samples]))) for i, (name, kind, _) in enumerate(samples[0])]

    def run(self, output_names: list[str] | str | None, input_feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Like onnxruntime: outputs in artifact order (None) or of the given names (one name may be a str)."""
        results = self._execute(input_feed)
        if output_names is None:
            return results
        if isinstance(output_names, str):
            output_names = [output_names]
        index = {o.name: i for i, o in enumerate(self._outputs)}
        bad = [n for n in output_names if n not in index]
        if bad:
            raise InputError(f"unknown output name(s) {bad}; the artifact has {list(index)}")
        return [results[index[n]] for n in output_names]

    def _execute(self, input_feed: dict[str, np.ndarray], into: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """All outputs in artifact order, in new arrays or written into `into` (arrays of the outputs' dtypes and
        shapes; None skips an output, which stays readable in the runtime until the next run)."""
        expected = {i.name for i in self._inputs}
        got = _not_a_feed(input_feed)
        if got:
            raise InputError(f"the inputs must be a dict {{input name (str): numpy array}}, got {got}; "
                             f"the artifact's inputs are {[i.name for i in self._inputs]}")
        unknown = sorted(set(input_feed) - expected)
        missing = sorted(expected - set(input_feed))
        if unknown or missing:
            raise InputError(
                f"inputs do not match the artifact: unknown {unknown}, missing {missing}; expected {sorted(expected)}"
            )
        arrays = []
        for info in self._inputs:
            value = np.asarray(input_feed[info.name])
            if value.dtype != info.dtype:
                raise InputError(f"input '{info.name}' must be {info.dtype}, got {value.dtype}")
            if tuple(value.shape) != info.shape:
                raise InputError(f"input '{info.name}' must have shape {list(info.shape)}, got {list(value.shape)}")
            arrays.append(np.ascontiguousarray(value))
        try:
            return self._session.run(arrays, into)
        except _rt.StatusError as e:
            raise _translate(e) from None


def load(path: str | os.PathLike | bytes) -> Session:
    """Load a .spx artifact (path or bytes) for running."""
    return Session(path)


def runtime_target() -> str:
    """The target this installed runtime was built for (x86_64, arm64, wasm32)."""
    return _rt.runtime_target()
