"""The test zoo: torchvision models plus a small BERT-style encoder and a Llama-style block, exported to ONNX.

Every model is built with random weights from a fixed seed (no downloads), so an export is
reproducible. torch/torchvision are imported lazily: importing this module needs only numpy.
"""

from __future__ import annotations

import functools
import os
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    import torch

# Bump whenever a builder or the export settings change, so stale cache entries are ignored.
ZOO_VERSION = "3"
OPSET = 17

BERT_VOCAB = 1000
BERT_SEQ = 32
LLAMA_SEQ = 32


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name
    high: int | None = None  # exclusive upper bound for integer inputs (e.g. vocab size)


@dataclass(frozen=True)
class ZooModel:
    name: str
    inputs: tuple[InputSpec, ...]
    build: Callable[[], torch.nn.Module]  # seeded by the caller; returns a fresh model


def _build_torchvision(arch: str, **kwargs):
    import torchvision

    return torchvision.models.get_model(arch, weights=None, **kwargs)


def _build_bert_encoder(
    vocab: int = BERT_VOCAB, seq: int = BERT_SEQ, hidden: int = 128, heads: int = 4, ffn: int = 512, layers: int = 2
):
    import torch
    from torch import nn

    class SelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.heads, self.head_dim = heads, hidden // heads
            self.scale = self.head_dim**-0.5
            self.q, self.k, self.v = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
            self.out = nn.Linear(hidden, hidden)

        def split_heads(self, x):  # [B, T, C] -> [B, heads, T, head_dim]
            b, t, _ = x.shape
            return x.reshape(b, t, self.heads, self.head_dim).transpose(1, 2)

        def forward(self, x):
            b, t, c = x.shape
            q, k, v = self.split_heads(self.q(x)), self.split_heads(self.k(x)), self.split_heads(self.v(x))
            probs = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * self.scale, dim=-1)
            context = torch.matmul(probs, v).transpose(1, 2).reshape(b, t, c)
            return self.out(context)

    class EncoderLayer(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention, self.attention_norm = SelfAttention(), nn.LayerNorm(hidden)
            self.ffn = nn.Sequential(nn.Linear(hidden, ffn), nn.GELU(), nn.Linear(ffn, hidden))
            self.ffn_norm = nn.LayerNorm(hidden)

        def forward(self, x):  # post-LN, as in the original BERT
            x = self.attention_norm(x + self.attention(x))
            return self.ffn_norm(x + self.ffn(x))

    class BertEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.token = nn.Embedding(vocab, hidden)
            self.position = nn.Embedding(seq, hidden)
            self.embedding_norm = nn.LayerNorm(hidden)
            self.layers = nn.Sequential(*(EncoderLayer() for _ in range(layers)))

        def forward(self, input_ids):
            x = self.token(input_ids) + self.position.weight[: input_ids.shape[1]]
            return self.layers(self.embedding_norm(x))

    return BertEncoder()


def _build_llama_block(seq: int = LLAMA_SEQ, hidden: int = 128, heads: int = 4, kv_heads: int = 2, ffn: int = 344):
    """One Llama decoder layer: RMSNorm, rotary grouped-query attention (causal), SwiGLU MLP."""
    import torch
    from torch import nn

    head_dim = hidden // heads

    class RMSNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(hidden))

        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight

    def rotate_half(x):
        half = x.shape[-1] // 2
        return torch.cat((-x[..., half:], x[..., :half]), dim=-1)

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.q_proj = nn.Linear(hidden, heads * head_dim, bias=False)
            self.k_proj = nn.Linear(hidden, kv_heads * head_dim, bias=False)
            self.v_proj = nn.Linear(hidden, kv_heads * head_dim, bias=False)
            self.o_proj = nn.Linear(heads * head_dim, hidden, bias=False)
            freqs = 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))
            angles = torch.outer(torch.arange(seq).float(), freqs)
            angles = torch.cat((angles, angles), dim=-1)
            self.register_buffer("cos", angles.cos(), persistent=False)
            self.register_buffer("sin", angles.sin(), persistent=False)
            self.register_buffer("mask", torch.full((seq, seq), float("-inf")).triu(1), persistent=False)

        def split_heads(self, x, n):  # [B, T, n*D] -> [B, n, T, D]
            b, t, _ = x.shape
            return x.reshape(b, t, n, head_dim).transpose(1, 2)

        def forward(self, x):
            b, t, _ = x.shape
            q = self.split_heads(self.q_proj(x), heads)
            k = self.split_heads(self.k_proj(x), kv_heads)
            v = self.split_heads(self.v_proj(x), kv_heads)
            q = q * self.cos + rotate_half(q) * self.sin
            k = k * self.cos + rotate_half(k) * self.sin
            repeat = heads // kv_heads  # grouped-query attention: each K/V head serves `repeat` query heads
            k = k[:, :, None].expand(b, kv_heads, repeat, t, head_dim).reshape(b, heads, t, head_dim)
            v = v[:, :, None].expand(b, kv_heads, repeat, t, head_dim).reshape(b, heads, t, head_dim)
            scores = torch.matmul(q, k.transpose(-2, -1)) * head_dim**-0.5 + self.mask
            context = torch.matmul(torch.softmax(scores, dim=-1), v)
            return self.o_proj(context.transpose(1, 2).reshape(b, t, heads * head_dim))

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.gate_proj = nn.Linear(hidden, ffn, bias=False)
            self.up_proj = nn.Linear(hidden, ffn, bias=False)
            self.down_proj = nn.Linear(ffn, hidden, bias=False)

        def forward(self, x):
            return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))

    class LlamaBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.input_norm, self.attention = RMSNorm(), Attention()
            self.post_attention_norm, self.mlp = RMSNorm(), MLP()

        def forward(self, x):
            x = x + self.attention(self.input_norm(x))
            return x + self.mlp(self.post_attention_norm(x))

    return LlamaBlock()


_IMAGE = (InputSpec("input", (1, 3, 224, 224), "float32"),)


def _torchvision_model(arch: str, **kwargs) -> ZooModel:
    return ZooModel(arch, _IMAGE, functools.partial(_build_torchvision, arch, **kwargs))


ZOO: dict[str, ZooModel] = {
    m.name: m
    for m in [
        _torchvision_model("resnet18"),
        _torchvision_model("resnet50"),
        _torchvision_model("resnext50_32x4d"),
        _torchvision_model("vgg11_bn"),
        _torchvision_model("mobilenet_v2"),
        _torchvision_model("mobilenet_v3_small"),
        _torchvision_model("efficientnet_b0"),
        _torchvision_model("squeezenet1_1"),
        _torchvision_model("shufflenet_v2_x1_0"),
        _torchvision_model("densenet121"),
        _torchvision_model("googlenet", aux_logits=False, init_weights=True),
        _torchvision_model("regnet_y_400mf"),
        _torchvision_model("convnext_tiny"),
        _torchvision_model("vit_b_16"),
        _torchvision_model("swin_t"),
        ZooModel(
            "bert_encoder",
            (InputSpec("input_ids", (1, BERT_SEQ), "int64", high=BERT_VOCAB),),
            _build_bert_encoder,
        ),
        ZooModel("llama_block", (InputSpec("hidden_states", (1, LLAMA_SEQ, 128), "float32"),), _build_llama_block),
    ]
}

SLOW: set[str] = {"vit_b_16", "resnet50", "resnext50_32x4d", "vgg11_bn", "densenet121", "convnext_tiny", "swin_t"}


def _randomise_constant_tensors(model) -> None:
    """Fresh models are full of constant tensors: BatchNorm/LayerNorm identity affine and running
    stats, zero biases, ViT's zero head (its output would be all zeros), ConvNeXt's 1e-6 layer scale.
    A compiler that drops, swaps or mis-folds them would still match the reference, so randomise them:
    zeros (shifts, means) ~ N(0, 0.1), other constants (scales, variances) ~ U(0.5, 1.5)."""
    import torch
    from torch.nn.modules.batchnorm import _BatchNorm

    running_stats = [t for m in model.modules() if isinstance(m, _BatchNorm) for t in (m.running_mean, m.running_var)]
    with torch.no_grad():
        for t in [*model.parameters(), *running_stats]:
            if bool((t == t.flatten()[0]).all()):
                if t.flatten()[0] == 0:
                    t.normal_(0.0, 0.1)
                else:
                    t.uniform_(0.5, 1.5)


def export(name: str, path) -> Path:
    """Build zoo model `name` (seeded, eval mode) and export it to ONNX at `path`."""
    import torch

    spec = ZOO[name]
    torch.manual_seed(0)
    model = spec.build()
    _randomise_constant_tensors(model)
    model.eval()
    args = tuple(torch.from_numpy(a) for a in example_inputs(name).values())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated but deliberate here; vit_b_16's shape asserts raise
        # TracerWarnings that are harmless because every shape is static.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # PRESERVE + constant folding warns that training-mode parameters could change; the model is in eval mode.
        warnings.filterwarnings("ignore", message=".*constant folding mutates model parameters")
        torch.onnx.export(
            model,
            args,
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=[i.name for i in spec.inputs],
            output_names=["output"],
            do_constant_folding=True,
            # Keep BatchNorm nodes (eval semantics) so sparsec's own BN folding is what gets tested.
            training=torch.onnx.TrainingMode.PRESERVE,
        )
    return path


def default_cache_dir() -> Path:
    return Path(os.environ.get("SPARSEC_ZOO_CACHE") or Path.home() / ".cache" / "sparsec" / "zoo")


def cached(name: str, cache_dir=None) -> Path:
    """Path of zoo model `name`, exporting it on first use."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache_dir / f"{name}-v{ZOO_VERSION}.onnx"
    if path.exists():
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Export to a unique temp file and rename: concurrent or aborted runs never expose a partial file.
    tmp = cache_dir / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        export(name, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def example_inputs(name: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic inputs for zoo model `name`: N(0,1) floats, uniform ints in [0, high)."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for spec in ZOO[name].inputs:
        if spec.high is not None:
            inputs[spec.name] = rng.integers(0, spec.high, size=spec.shape, dtype=spec.dtype)
        else:
            inputs[spec.name] = rng.standard_normal(spec.shape, dtype=spec.dtype)
    return inputs
