"""Running a compiled training step: step / gradients / state files / export. Needs numpy only (export: onnx)."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np

from sparsec.artifact.format import parse
from sparsec.contract.schema import Storage
from sparsec.errors import ArtifactError, InputError
from sparsec.runtime import Session

STATE_MAGIC = b"SPXSTATE"
STATE_VERSION = 1
_STATE_HEADER = struct.Struct("<8sI32sQI")  # magic, version, artifact sha256, payload bytes, payload crc32


class StateError(ArtifactError):
    """A training-state file that is damaged, of another version, or of another model."""


class Trainer:
    """A compiled training step (`sparsec compile --train`): `loss = trainer.step({"input": x}, labels)`."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        meta_path = self.path.with_suffix(".train.json")
        try:
            self.meta = json.loads(meta_path.read_text())
            data = self.path.read_bytes()
        except FileNotFoundError as e:
            raise ArtifactError(f"{e.filename} is missing: load_trainer takes a .spx compiled with --train "
                                "(its .train.json sidecar beside it)") from None
        self.fingerprint = hashlib.sha256(data).digest()
        self._session = Session(self.path)
        self._layout = {t.name: (t.offset, t.dtype, t.shape)
                        for t in parse(data).tensors if t.storage == Storage.PARAM}
        # Each step writes only the loss (into this array): the gradients stay in the runtime until gradients().
        loss = self._session.get_outputs()[0]
        self._into = [np.empty(loss.shape, loss.dtype)] + [None] * len(self.meta["gradients"])
        self._stepped = False
        self.labels = self.meta["labels"]
        self.feed_names = [i.name for i in self._session.get_inputs() if i.name != self.labels["name"]]

    def step(self, feeds: dict[str, np.ndarray], labels) -> float:
        """One training step (forward, backward, in-place update) in the runtime; returns the loss before the update."""
        if not isinstance(feeds, dict):
            raise InputError(f"feeds must be a dict {{input name: array}} of {self.feed_names}, got {type(feeds).__name__}")
        if self.labels["name"] in feeds:
            raise InputError(f"pass the labels as step()'s second argument, not as feed '{self.labels['name']}'")
        labels = np.asarray(labels)
        if self.labels["dtype"] == "int64" and labels.dtype.kind in "iu":
            labels = labels.astype(np.int64)
        self._stepped = False  # a failed run may have overwritten the last step's gradients
        self._session._execute({**feeds, self.labels["name"]: labels}, self._into)
        self._stepped = True
        return float(self._into[0].reshape(-1)[0])

    def gradients(self) -> dict[str, np.ndarray]:
        """The last step's gradients of the updated slices, by parameter name (partial channels: [.., k, ..])."""
        if not self._stepped:
            return {}
        return {name: self._session._session.output(i + 1) for i, name in enumerate(self.meta["gradients"])}

    def _region(self) -> bytes:
        return self._session._session.read_params()

    def parameters(self) -> dict[str, np.ndarray]:
        """Current values of the trainable parameters (whole tensors), by name."""
        region = self._region()
        out = {}
        for p in self.meta["params"]:
            offset, dtype, shape = self._layout[p["name"]]
            count = int(np.prod(shape))
            out[p["name"]] = np.frombuffer(region, dtype, count, offset).reshape(shape).copy()
        return out

    def save_state(self, path: str | os.PathLike) -> None:
        """Parameters and optimizer state to a versioned, checksummed file, atomically (temp file + rename)."""
        payload = self._region()
        header = _STATE_HEADER.pack(STATE_MAGIC, STATE_VERSION, self.fingerprint, len(payload), zlib.crc32(payload))
        path = Path(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(header + payload)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if hasattr(os, "O_DIRECTORY"):  # the rename itself survives a crash
            dir_fd = os.open(path.parent, os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def load_state(self, path: str | os.PathLike) -> None:
        """Restores a save_state file of this same artifact (refuses another model's, a damaged or newer one)."""
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise StateError(f"cannot read state file {path}: {e.strerror}") from None
        if len(data) < _STATE_HEADER.size or data[:8] != STATE_MAGIC:
            raise StateError(f"{path} is not a sparsec training-state file")
        _, version, fingerprint, size, crc = _STATE_HEADER.unpack_from(data)
        if version != STATE_VERSION:
            raise StateError(f"{path} has state format version {version}; this sparsec reads {STATE_VERSION}")
        if fingerprint != self.fingerprint:
            raise StateError(f"{path} was saved by another model's trainer (artifact sha256 {fingerprint.hex()[:16]}...); "
                             f"this trainer runs {self.path.name} (sha256 {self.fingerprint.hex()[:16]}...)")
        payload = data[_STATE_HEADER.size:]
        if len(payload) != size or zlib.crc32(payload) != crc:
            raise StateError(f"{path} is damaged (truncated or its checksum does not match)")
        self._session._session.write_params(payload)

    def export(self, path: str | os.PathLike) -> Path:
        """The original ONNX model with the updated initializers (frozen ones bit-identical), written to path."""
        import onnx
        from onnx import numpy_helper

        model = onnx.load(str(self.path.parent / self.meta["source"]))
        values = self.parameters()
        for init in model.graph.initializer:
            if init.name in values:
                init.CopyFrom(numpy_helper.from_array(values[init.name], init.name))
        path = Path(path)
        onnx.save(model, str(path))
        return path

    def inference_session(self, target: str = "host") -> Session:
        """The tuned model compiled for inference (export + compile in a temporary directory)."""
        from sparsec.compiler import compile_model

        with tempfile.TemporaryDirectory() as tmp:
            exported = self.export(Path(tmp) / "tuned.onnx")
            return Session(compile_model(exported, target, Path(tmp) / "tuned.spx").path.read_bytes())


def load_trainer(path: str | os.PathLike) -> Trainer:
    """A .spx compiled with --train, ready to step."""
    return Trainer(path)
