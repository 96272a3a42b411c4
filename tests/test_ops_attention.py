"""Transformer ops (Attention, RMSNormalization, RotaryEmbedding, LinearAttention, CausalConvWithState, SwiGLU, Swish,
TensorScatter) against onnxruntime where it implements them, else against onnx's ReferenceEvaluator; refusals; a
BERT-style block exported by PyTorch with the Attention op, on the host, arm64 (qemu) and wasm32 (Node)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

import sparsec
from conftest import max_rel_error, run_onnxruntime, target_outputs_error
from sparsec.errors import SparsecError

TOLERANCE = 1e-4  # max|sparsec - reference| / max|reference| per output
ORT, REF = "onnxruntime", "reference"
DTYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.bool_): TensorProto.BOOL,
          np.dtype(np.int64): TensorProto.INT64}


def node_model(op: str, feed: dict, inputs: list[str], outputs: list[str], opset: int, shapes=None,
               **attrs) -> onnx.ModelProto:
    """One node; inputs named in feed are graph inputs ("" = absent); output shapes given or from onnx's reference."""
    node = helper.make_node(op, inputs, outputs, name=f"{op}_0", **attrs)
    graph_inputs = [helper.make_tensor_value_info(n, DTYPES[v.dtype], v.shape) for n, v in feed.items()]

    def model(shapes):
        graph_outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape)
                         for n, shape in zip([n for n in outputs if n], shapes)]
        graph = helper.make_graph([node], "g", graph_inputs, graph_outputs)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])

    if shapes is None:
        shapes = [y.shape for y in ReferenceEvaluator(model([None] * len(outputs))).run(None, feed)]
    return model(shapes)


def reference_outputs(model: onnx.ModelProto, feed: dict, engine: str) -> list[np.ndarray]:
    if engine == ORT:
        return run_onnxruntime(model, feed)
    return ReferenceEvaluator(model).run(None, feed)


def check(model: onnx.ModelProto, feed: dict, tmp_path, engine: str) -> None:
    result = sparsec.compile(model, output=tmp_path / "model.spx")
    ours = sparsec.load(result.path).run(None, feed)
    expected = reference_outputs(model, feed, engine)
    assert len(ours) == len(expected)
    for a, e in zip(ours, expected):
        assert a.shape == e.shape
        assert np.array_equal(np.isnan(a), np.isnan(e)) and np.array_equal(np.isinf(a), np.isinf(e))
        finite = np.isfinite(e)
        assert max_rel_error(a[finite], e[finite]) < TOLERANCE


def refusal(model: onnx.ModelProto, tmp_path) -> str:
    with pytest.raises(SparsecError) as info:
        sparsec.compile(model, output=tmp_path / "model.spx")
    return str(info.value)


def randn(rng, *shape) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


# ---- Attention ---------------------------------------------------------------------------------------------

def qkv(rng, rank: int, b=2, hq=4, hkv=4, sq=5, skv=6, d=8, dv=8) -> dict:
    if rank == 4:
        return {"Q": randn(rng, b, hq, sq, d), "K": randn(rng, b, hkv, skv, d), "V": randn(rng, b, hkv, skv, dv)}
    return {"Q": randn(rng, b, sq, hq * d), "K": randn(rng, b, skv, hkv * d), "V": randn(rng, b, skv, hkv * dv)}


def heads(rank: int, hq=4, hkv=4) -> dict:
    return {"q_num_heads": hq, "kv_num_heads": hkv} if rank == 3 else {}


@pytest.mark.parametrize("rank", [3, 4])
@pytest.mark.parametrize("attrs", [{}, {"is_causal": 1}, {"scale": 0.3}, {"softcap": 2.0},
                                   {"is_causal": 1, "softcap": 1.5, "scale": 0.5}])
def test_attention(rank, attrs, rng, tmp_path):
    feed = qkv(rng, rank, dv=5)
    check(node_model("Attention", feed, ["Q", "K", "V"], ["Y"], 23, **heads(rank), **attrs), feed, tmp_path, ORT)


@pytest.mark.parametrize("rank", [3, 4])
def test_attention_gqa(rank, rng, tmp_path):
    feed = qkv(rng, rank, hq=6, hkv=2)
    check(node_model("Attention", feed, ["Q", "K", "V"], ["Y"], 23, is_causal=1, **heads(rank, 6, 2)), feed,
          tmp_path, ORT)


@pytest.mark.parametrize("mask_shape", [(5, 6), (4, 5, 6), (2, 1, 5, 6), (1, 4, 5, 6), (5, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.bool_])
@pytest.mark.parametrize("causal", [0, 1])
def test_attention_masks(mask_shape, dtype, causal, rng, tmp_path):
    """Float (additive, with -inf) and bool masks of every rank; a mask narrower than the keys masks the rest."""
    feed = qkv(rng, 4)
    if dtype == np.bool_:
        feed["attn_mask"] = rng.random(mask_shape) < 0.7
    else:
        feed["attn_mask"] = np.where(rng.random(mask_shape) < 0.2, -np.inf, randn(rng, *mask_shape)).astype(np.float32)
    model = node_model("Attention", feed, ["Q", "K", "V", "attn_mask"], ["Y"], 23, is_causal=causal)
    check(model, feed, tmp_path, REF)


def test_attention_fully_masked_rows_are_zero(rng, tmp_path):
    """A row whose every key is masked (bool False or -inf) gives Y = 0, also with softcap."""
    feed = qkv(rng, 4)
    mask = np.zeros((5, 6), np.float32)
    mask[1] = -np.inf
    mask[3, :4] = -np.inf
    feed["attn_mask"] = mask
    model = node_model("Attention", feed, ["Q", "K", "V", "attn_mask"], ["Y"], 23, softcap=0.5)
    check(model, feed, tmp_path, REF)
    y = sparsec.load(tmp_path / "model.spx").run(None, feed)[0]
    assert np.all(y[:, :, 1] == 0) and np.all(np.abs(y[:, :, 3]) > 0)


@pytest.mark.parametrize("rank", [3, 4])
@pytest.mark.parametrize("causal", [0, 1])
def test_attention_kv_cache(rank, causal, rng, tmp_path):
    """past_key/past_value are concatenated; present_key/present_value are outputs; causal is bottom-right."""
    feed = qkv(rng, rank, hq=4, hkv=2, sq=3, skv=3, dv=5)
    feed["past_key"], feed["past_value"] = randn(rng, 2, 2, 4, 8), randn(rng, 2, 2, 4, 5)
    feed["attn_mask"] = rng.random((3, 7)) < 0.8
    model = node_model("Attention", feed, ["Q", "K", "V", "attn_mask", "past_key", "past_value"],
                       ["Y", "present_key", "present_value"], 23, is_causal=causal, **heads(rank, 4, 2))
    check(model, feed, tmp_path, REF)


def test_attention_present_without_past(rng, tmp_path):
    feed = qkv(rng, 3)
    model = node_model("Attention", feed, ["Q", "K", "V"], ["Y", "present_key", "present_value"], 23, **heads(3))
    check(model, feed, tmp_path, ORT)


@pytest.mark.parametrize("mode, softcap", [(0, 0.0), (1, 0.0), (1, 2.0), (2, 0.0), (2, 2.0), (3, 0.0), (3, 2.0)])
@pytest.mark.parametrize("engine", [ORT, REF])
def test_attention_qk_matmul_output(mode, softcap, engine, rng, tmp_path):
    feed = qkv(rng, 4)
    feed["attn_mask"] = np.where(rng.random((5, 6)) < 0.3, -np.inf, 0).astype(np.float32)
    model = node_model("Attention", feed, ["Q", "K", "V", "attn_mask"], ["Y", "", "", "qk"], 23,
                       qk_matmul_output_mode=mode, softcap=softcap)
    check(model, feed, tmp_path, engine)


def test_attention_raw_scores_with_softcap_are_refused(rng, tmp_path):
    """Mode 0 with softcap: onnxruntime (and the spec) give raw scores, onnx's reference softcapped ones."""
    feed = qkv(rng, 4)
    model = node_model("Attention", feed, ["Q", "K", "V"], ["Y", "", "", "qk"], 23, softcap=2.0)
    ort, ref = reference_outputs(model, feed, ORT)[1], reference_outputs(model, feed, REF)[1]
    assert not np.allclose(ort, ref)
    assert "qk_matmul_output_mode 0 with softcap" in refusal(model, tmp_path)


@pytest.mark.parametrize("causal", [0, 1])
@pytest.mark.parametrize("lengths", [[5, 7], [-(2 ** 62), 2 ** 62]])
def test_attention_nonpad_kv_seqlen(causal, lengths, rng, tmp_path):
    """opset 24's external cache: keys at or past nonpad_kv_seqlen[b] are masked; causal is aligned to it."""
    feed = qkv(rng, 4, sq=2, skv=7)
    feed["nonpad_kv_seqlen"] = np.array(lengths, np.int64)
    model = node_model("Attention", feed, ["Q", "K", "V", "", "", "", "nonpad_kv_seqlen"], ["Y"], 24,
                       is_causal=causal)
    check(model, feed, tmp_path, REF)


@pytest.mark.parametrize("window", [{"left_window_size": 2, "is_causal": 1}, {"left_window_size": 1,
                                                                             "right_window_size": 2}])
def test_attention_sliding_window(window, rng, tmp_path):
    feed = qkv(rng, 3, hq=4, hkv=1)
    check(node_model("Attention", feed, ["Q", "K", "V"], ["Y"], 25, **heads(3, 4, 1), **window), feed, tmp_path, REF)


def test_attention_double_softmax_precision(rng, tmp_path):
    feed = qkv(rng, 4)
    model = node_model("Attention", feed, ["Q", "K", "V"], ["Y"], 23, softmax_precision=TensorProto.DOUBLE)
    check(model, feed, tmp_path, REF)


@pytest.mark.parametrize("attrs, mask, reason", [
    ({"softmax_precision": TensorProto.FLOAT16}, False, "softmax_precision FLOAT16 is below float32"),
    ({"q_num_heads": 3, "kv_num_heads": 2}, False, "q heads (3) must be a multiple of kv heads (2)"),
    ({"q_num_heads": 3, "kv_num_heads": 3}, True, "attn_mask [4, 6] does not broadcast to [B, q_heads, Sq, total_kv] "
                                                  "[2, 3, 5, 6]"),
])
def test_attention_refusals_name_node_and_reason(attrs, mask, reason, rng, tmp_path):
    feed = {"Q": randn(rng, 2, 5, 24), "K": randn(rng, 2, 6, 24), "V": randn(rng, 2, 6, 24)}
    if attrs.get("kv_num_heads") == 2:
        feed["K"], feed["V"] = randn(rng, 2, 6, 16), randn(rng, 2, 6, 16)
    if mask:
        feed["attn_mask"] = np.zeros((4, 6), np.float32)
    attrs = {"q_num_heads": 3, "kv_num_heads": 3, **attrs}
    message = refusal(node_model("Attention", feed, list(feed), ["Y"], 23, shapes=[(2, 5, 24)], **attrs), tmp_path)
    assert "Attention_0" in message and "(Attention)" in message and reason in message, message


# ---- the other transformer ops ------------------------------------------------------------------------------

@pytest.mark.parametrize("shape, axis, scale_shape", [((2, 3, 8), -1, (8,)), ((2, 3, 4, 5), 1, (3, 4, 5)),
                                                      ((2, 3, 4, 5), 2, (1, 5)), ((4, 6), 0, (4, 6))])
@pytest.mark.parametrize("scale_const", [True, False])
def test_rms_normalization(shape, axis, scale_shape, scale_const, rng, tmp_path):
    feed = {"X": randn(rng, *shape)}
    scale = randn(rng, *scale_shape)
    if scale_const:
        node = helper.make_node("RMSNormalization", ["X", "S"], ["Y"], name="RMSNormalization_0", axis=axis,
                                epsilon=1e-3)
        graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, shape)],
                                  [helper.make_tensor_value_info("Y", TensorProto.FLOAT, shape)],
                                  [onnx.numpy_helper.from_array(scale, "S")])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])
    else:
        feed["S"] = scale
        model = node_model("RMSNormalization", feed, ["X", "S"], ["Y"], 23, axis=axis, epsilon=1e-3)
    check(model, feed, tmp_path, ORT)


@pytest.mark.parametrize("rank", [3, 4])
@pytest.mark.parametrize("attrs", [{}, {"interleaved": 1}, {"rotary_embedding_dim": 4},
                                   {"rotary_embedding_dim": 4, "interleaved": 1}])
@pytest.mark.parametrize("positions", [True, False])
def test_rotary_embedding(rank, attrs, positions, rng, tmp_path):
    b, s, h, d = 2, 3, 2, 8
    half = attrs.get("rotary_embedding_dim", d) // 2
    feed = {"X": randn(rng, b, s, h * d) if rank == 3 else randn(rng, b, h, s, d)}
    if positions:
        feed["cos"], feed["sin"] = randn(rng, 10, half), randn(rng, 10, half)
        feed["pos"] = rng.integers(0, 10, (b, s)).astype(np.int64)
    else:
        feed["cos"], feed["sin"] = randn(rng, b, s, half), randn(rng, b, s, half)
    extra = {"num_heads": h} if rank == 3 else {}
    model = node_model("RotaryEmbedding", feed, list(feed), ["Y"], 23, **attrs, **extra)
    check(model, feed, tmp_path, ORT)


@pytest.mark.parametrize("rule, heads_", [("linear", (2, 2)), ("gated", (4, 2)), ("delta", (2, 2)),
                                          ("gated_delta", (4, 1))])
@pytest.mark.parametrize("past", [False, True])
@pytest.mark.parametrize("per_key", [False, True])
def test_linear_attention(rule, heads_, past, per_key, rng, tmp_path):
    hq, hkv = heads_
    b, t, dk, dv = 2, 5, 4, 3
    feed = {"q": randn(rng, b, t, hq * dk), "k": randn(rng, b, t, hkv * dk) * 0.5, "v": randn(rng, b, t, hkv * dv)}
    names = ["q", "k", "v", ""]
    if past:
        feed["past"], names[3] = randn(rng, b, hkv, dk, dv), "past"
    if "gated" in rule:
        feed["decay"] = -rng.random((b, t, hkv * dk if per_key else hkv)).astype(np.float32)
        names.append("decay")
    elif "delta" in rule:
        names.append("")
    if "delta" in rule:
        feed["beta"] = rng.random((b, t, 1 if per_key else hkv)).astype(np.float32)
        names.append("beta")
    while names[-1] == "":
        names.pop()
    model = node_model("LinearAttention", feed, names, ["y", "state"], 27, q_num_heads=hq, kv_num_heads=hkv,
                       update_rule=rule)
    check(model, feed, tmp_path, REF)


@pytest.mark.parametrize("kernel", [1, 3, 4])
@pytest.mark.parametrize("past, bias, activation", [(False, False, "none"), (True, True, "silu"),
                                                    (True, False, "swish")])
def test_causal_conv_with_state(kernel, past, bias, activation, rng, tmp_path):
    b, c, length = 2, 3, 5
    feed = {"x": randn(rng, b, c, length), "w": randn(rng, c, 1, kernel)}
    names = ["x", "w", "", ""]
    if bias:
        feed["bias"], names[2] = randn(rng, c), "bias"
    if past:
        feed["past"], names[3] = randn(rng, b, c, kernel - 1), "past"
    while names[-1] == "":
        names.pop()
    model = node_model("CausalConvWithState", feed, names, ["y", "state"], 27, activation=activation)
    check(model, feed, tmp_path, REF)


@pytest.mark.parametrize("alpha", [1.0, 1.702])
def test_swiglu_and_swish(alpha, rng, tmp_path):
    feed = {"a": randn(rng, 2, 3, 4) * 3, "b": randn(rng, 2, 3, 4)}
    check(node_model("SwiGLU", feed, ["a", "b"], ["y"], 28, alpha=alpha), feed, tmp_path / "swiglu", REF)
    one = {"a": feed["a"]}
    check(node_model("Swish", one, ["a"], ["y"], 24, alpha=alpha), one, tmp_path / "swish", ORT)


@pytest.mark.parametrize("mode, indices", [("linear", [0, 3]), ("circular", [5, -2]), ("linear", [-3, 1]),
                                           ("circular", [2 ** 62 + 1, -(2 ** 62)])])
def test_tensor_scatter(mode, indices, rng, tmp_path):
    feed = {"cache": randn(rng, 2, 3, 6, 4), "update": randn(rng, 2, 3, 2, 4),
            "idx": np.array(indices, np.int64)}
    check(node_model("TensorScatter", feed, ["cache", "update", "idx"], ["y"], 24, mode=mode), feed, tmp_path, REF)


def test_tensor_scatter_index_past_the_cache_fails_at_run_time(rng, tmp_path):
    feed = {"cache": randn(rng, 2, 6, 4), "update": randn(rng, 2, 2, 4), "idx": np.array([0, 5], np.int64)}
    model = node_model("TensorScatter", feed, ["cache", "update", "idx"], ["y"], 24, shapes=[(2, 6, 4)])
    session = sparsec.load(sparsec.compile(model, output=tmp_path / "model.spx").path)
    with pytest.raises(Exception, match="write index 5 \\+ 1 is outside the cache length 6"):
        session.run(None, feed)


# ---- a BERT-style block exported by PyTorch with the Attention op ------------------------------------------

def bert_block(path) -> tuple[onnx.ModelProto, dict]:
    torch = pytest.importorskip("torch")
    nn, F = torch.nn, torch.nn.functional

    class Block(nn.Module):
        def __init__(self, embed=32, n_heads=4):
            super().__init__()
            self.n_heads = n_heads
            self.qkv, self.out = nn.Linear(embed, 3 * embed), nn.Linear(embed, embed)
            self.ff1, self.ff2 = nn.Linear(embed, 4 * embed), nn.Linear(4 * embed, embed)
            self.ln1, self.ln2 = nn.LayerNorm(embed), nn.LayerNorm(embed)

        def forward(self, x, mask):
            batch, seq, embed = x.shape
            q, k, v = (t.reshape(batch, seq, self.n_heads, -1).transpose(1, 2)
                       for t in self.qkv(x).split(embed, dim=-1))
            keys = mask[:, None, None, :].expand(batch, 1, seq, seq)  # onnxruntime wants the query dim spelled out
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=keys).transpose(1, 2).reshape(batch, seq, embed)
            x = self.ln1(x + self.out(a))
            return self.ln2(x + self.ff2(F.gelu(self.ff1(x))))

    torch.manual_seed(0)
    x, mask = torch.randn(2, 8, 32), torch.ones(2, 8, dtype=torch.bool)
    mask[1, 5:] = False
    model = torch.onnx.export(Block().eval(), (x, mask), dynamo=True, opset_version=23, verbose=False).model_proto
    assert "Attention" in {n.op_type for n in model.graph.node}
    onnx.save(model, path)
    return model, {"x": x.numpy(), "mask": mask.numpy()}


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    path = tmp_path_factory.mktemp("bert") / "block.onnx"
    model, feed = bert_block(path)
    return path, feed, run_onnxruntime(model, feed)


def test_bert_block_on_host(bert, tmp_path):
    path, feed, ref = bert
    ours = sparsec.load(sparsec.compile(path, output=tmp_path / "model.spx").path).run(None, feed)
    assert max_rel_error(ours[0], ref[0]) < TOLERANCE


@pytest.mark.parametrize("target", ["arm64", "wasm32"])
def test_bert_block_on_target(target, bert, tmp_path):
    path, feed, ref = bert
    assert target_outputs_error(path, feed, ref, target, tmp_path)[0] < TOLERANCE
