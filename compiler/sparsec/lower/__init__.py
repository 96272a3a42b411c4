"""Lowering: pick a runtime op and its algorithm per node, pack constants, plan the activation arena."""

from sparsec.lower.lower import SUPPORTED_OPS, LoweredGraph, lower_model
from sparsec.lower.memory import plan_memory

__all__ = ["SUPPORTED_OPS", "LoweredGraph", "lower_model", "plan_memory"]
