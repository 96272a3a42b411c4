"""One exception family: every user-facing failure is a SparsecError naming the node and op involved."""

from sparsec.naming import op_label


class SparsecError(Exception):
    """Base of all sparsec errors. CLI exit code 1 (the user's input is at fault)."""

    exit_code = 1


class ModelLoadError(SparsecError):
    """The file is not ONNX, is corrupt, or fails onnx.checker."""


class UnsupportedOpError(SparsecError):
    """Ops the compiler cannot lower; `nodes` lists every (node name, op type, reason) at once."""

    def __init__(self, nodes):
        self.nodes = list(nodes)
        lines = [f"  node '{name}' ({op}): {why}" for name, op, why in self.nodes]
        super().__init__(f"{len(self.nodes)} unsupported node(s):\n" + "\n".join(lines))


class ShapeError(SparsecError):
    """A shape is dynamic, unknown or does not fit (e.g. no --input-shape for a symbolic dim)."""


class UnsupportedInputError(SparsecError):
    """A graph input or output that is not a tensor (sequence, optional, map): the runtime takes tensors only."""


class InputError(SparsecError):
    """Run-time inputs do not match the artifact (name, shape, dtype)."""


class ArtifactError(SparsecError):
    """An artifact is corrupt, truncated, of another format version, or built for another target."""


class OutputError(SparsecError):
    """An output cannot be written (a file where a directory is meant, no permission, a directory in the way)."""


class ToolchainError(SparsecError):
    """No compiler (or cmake/ninja) that can build the runtime for the requested target."""


class RuntimeBuildError(SparsecError):
    """Building the runtime for a target failed; the message carries the end of the build log."""


class InternalError(SparsecError):
    """A bug in sparsec. CLI exit code 2."""

    exit_code = 2


def node_label(node) -> str:
    """"node 'name' (OpType)" for messages."""
    return f"node '{node.name}' ({op_label(node)})"
