"""sparsec: compile ONNX models into compact artifacts and run them with a small C++ runtime.

`import sparsec` and running artifacts need only numpy; the compiler imports onnx lazily.
"""

from sparsec.errors import (
    ArtifactError,
    InputError,
    InternalError,
    ModelLoadError,
    OutputError,
    RuntimeBuildError,
    ShapeError,
    SparsecError,
    ToolchainError,
    UnsupportedInputError,
    UnsupportedOpError,
)
from sparsec.runtime import Session, TensorInfo, load, runtime_target

__version__ = "0.2.0"


def compile(model, target: str = "host", output=None, **options):
    """Compile an ONNX model (path or ModelProto) into an artifact; returns a CompileResult.

    Options: input_shapes={"name": [1, 3, 224, 224]} (replaces any dim), fixed_inputs={"sr": 16000} (an input
    becomes a constant, so branches and shape arithmetic on it fold), passes=[...], progress=False,
    prune=PruneOptions(...) or a ratio (structured pruning before the clean-up passes),
    sparsify=SparsifyOptions(...) or a sparsity (magnitude pruning to zeros, after pruning),
    sparse_kernels=False (every layer dense; by default layers whose zeros pay run sparse kernels).
    """
    from sparsec.compiler import compile_model

    return compile_model(model, target=target, output=output, **options)


def load_trainer(path):
    """A training step compiled with `sparsec compile --train` (see sparsec.train.trainer.Trainer)."""
    from sparsec.train.trainer import load_trainer as load

    return load(path)


def dependency_groups(model, input_shapes=None):
    """Groups of coupled channels of an ONNX model (list of sparsec.passes.pruning.Group)."""
    from sparsec.pruner import dependency_groups as find

    return find(model, input_shapes)


def prune(model, ratio: float = 0.5, criterion: str = "l2", **options):
    """Structured pruning; returns (pruned onnx.ModelProto, PruneReport). See sparsec.pruner.prune."""
    from sparsec.pruner import prune as run

    return run(model, ratio, criterion, **options)


def sparsify(model, sparsity: float | None = None, pattern: str = "unstructured", **options):
    """Magnitude pruning to exact zeros; returns (onnx.ModelProto, SparsifyReport). See sparsec.pruner.sparsify.

    Options: global_ranking=False, ignore=[name substrings], include_first=False, include_depthwise=False.
    """
    from sparsec.pruner import sparsify as run

    return run(model, sparsity, pattern, **options)


__all__ = [
    "ArtifactError",
    "InputError",
    "InternalError",
    "ModelLoadError",
    "OutputError",
    "RuntimeBuildError",
    "Session",
    "ShapeError",
    "SparsecError",
    "TensorInfo",
    "ToolchainError",
    "UnsupportedInputError",
    "UnsupportedOpError",
    "compile",
    "dependency_groups",
    "load",
    "load_trainer",
    "prune",
    "runtime_target",
    "sparsify",
]
