"""How nodes are named in reports and matched by passes (no onnx import: errors.py uses it on devices too)."""

STANDARD_DOMAINS = ("", "ai.onnx")


def is_standard(node, op_type: str | None = None) -> bool:
    """node is in the default ONNX domain (and of op_type, if given)."""
    return node is not None and node.domain in STANDARD_DOMAINS and (op_type is None or node.op_type == op_type)


def op_label(node) -> str:
    """'Conv' for default-domain ops, 'domain.Op' (e.g. 'sparsec.FusedConv') otherwise."""
    return node.op_type if is_standard(node) else f"{node.domain}.{node.op_type}"
