"""The pruning front door: `sparsec.dependency_groups`, `sparsec.prune`, `sparsec.sparsify` (CLI groups, prune,
sparsify)."""

from __future__ import annotations

import onnx
import onnx_ir as ir

from sparsec.errors import InputError, InternalError
from sparsec.frontend import load_model
from sparsec.passes import PASSES, run_passes
from sparsec.passes.pruning import Group, PruneOptions, PruneReport, find_groups, prune_model
from sparsec.passes.pruning.calibration import calibration_feeds
from sparsec.passes.sparsify import SparsifyOptions, SparsifyReport, sparsify_model

# Pruning sees the graph after these: folded shape subgraphs make Reshape/Slice constants visible.
PREPARE = [PASSES["fold_constants"], PASSES["remove_identities"]]


def prepare(model, input_shapes=None) -> ir.Model:
    """Loads (checker, opset >= 17, static shapes) and cleans up a model for pruning."""
    return run_passes(load_model(model, input_shapes), PREPARE)[0]


def dependency_groups(model, input_shapes=None) -> list[Group]:
    """Every group of coupled channels in an ONNX model (path, ModelProto or ir.Model), prunable or not."""
    return find_groups(prepare(model, input_shapes))


def prune(model, ratio: float = 0.5, criterion: str = "l2", *, calib=None, input_shapes=None, progress=None,
          **options) -> tuple[onnx.ModelProto, PruneReport]:
    """Structured pruning: returns a smaller, checked ONNX model and a report.

    Options (see PruneOptions): reduction="mean"|"max"|"sum", round_to=1, max_ratio=0.9,
    global_ranking=False, ignore=[name substrings], seed=0. `calib` is a .npy/.npz path or a list of
    feeds, needed by criterion="taylor".
    """
    options = PruneOptions(ratio=ratio, criterion=criterion, **{**options, "ignore": tuple(options.get("ignore", ()))})
    return prune_with(model, options, calib, input_shapes, progress)


def check_ignore(model: ir.Model, patterns: tuple[str, ...]) -> None:
    """An --ignore pattern that is empty (it would keep everything) or names nothing (a typo) is refused."""
    names = {node.name for node in model.graph} | set(model.graph.initializers)
    for pattern in patterns:
        if not pattern:
            raise InputError("an --ignore pattern is empty: it would match every name and keep every group whole")
        if not any(pattern in name for name in names):
            raise InputError(f"--ignore '{pattern}' matches no node or weight name of the model (e.g. "
                             f"{sorted(n for n in names if n)[:3]})")


def prune_prepared(graph: ir.Model, options: PruneOptions, calib=None, progress=None) -> tuple[ir.Model, PruneReport]:
    """prune_model on a prepared graph, after checking the user's ignore patterns and calibration data."""
    check_ignore(graph, options.ignore)
    return prune_model(graph, options, calibration_feeds(calib, graph), progress)


def prune_with(model, options: PruneOptions, calib=None, input_shapes=None, progress=None
               ) -> tuple[onnx.ModelProto, PruneReport]:
    """`prune` with its options as one PruneOptions."""
    graph, report = prune_prepared(prepare(model, input_shapes), options, calib, progress)
    return checked_proto(graph, "pruned"), report


def sparsify(model, sparsity: float | None = None, pattern: str = "unstructured", *, global_ranking: bool = False,
             ignore=(), include_first: bool = False, include_depthwise: bool = False, input_shapes=None,
             progress=None) -> tuple[onnx.ModelProto, SparsifyReport]:
    """Magnitude pruning to exact zeros in the weights of every Conv/Gemm/MatMul layer: returns the checked
    ONNX model (same graph, zeros in ordinary initializers) and a per-layer report. `sparsity` defaults to
    0.9 (0.5 for pattern 2:4, which allows no other); patterns: unstructured, 1x4, 4x1, 8x1, 2:4."""
    ignore = (ignore,) if isinstance(ignore, str) else tuple(ignore)
    options = SparsifyOptions(sparsity, pattern, global_ranking, ignore, include_first, include_depthwise)
    return sparsify_with(model, options, input_shapes, progress)


def sparsify_with(model, options: SparsifyOptions, input_shapes=None, progress=None
                  ) -> tuple[onnx.ModelProto, SparsifyReport]:
    """`sparsify` with its options as one SparsifyOptions."""
    graph, report = sparsify_model(prepare(model, input_shapes), options, progress)
    return checked_proto(graph, "sparsified"), report


def checked_proto(graph: ir.Model, what: str) -> onnx.ModelProto:
    """The model as a ModelProto that passes onnx.checker's full check (else it is our bug)."""
    proto = ir.serde.serialize_model(graph)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise InternalError(f"the {what} model fails onnx.checker: {str(e).splitlines()[0]}") from e
    return proto
