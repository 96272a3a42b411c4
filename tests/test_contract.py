"""The op contract: one schema, generated C++/C/JS that cannot drift, format v2 validated at load, run-time dtypes."""

from __future__ import annotations

import dataclasses
import json
import shutil
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import sparsec
from conftest import compile_and_compare, run_onnxruntime, single_op_model
from sparsec import _rt
from sparsec.artifact import format as spx
from sparsec.cli import main
from sparsec.contract import codegen, schema
from sparsec.contract.schema import Storage

ROOT = Path(__file__).resolve().parent.parent


def test_generated_files_are_current():
    assert codegen.stale(ROOT) == [], "run: python -m sparsec.contract.codegen"


def test_editing_one_side_alone_fails(tmp_path, monkeypatch):
    """A schema edit without regenerating, or a hand edit of a generated file, is caught."""
    tree = tmp_path / "tree"
    for path in codegen.outputs(ROOT):
        target = tree / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    assert codegen.stale(tree) == []
    header = tree / "runtime/src/contract.h"
    header.write_text(header.read_text().replace("kConv = 1", "kConv = 99"))
    assert codegen.stale(tree) == [header]
    header.write_text(codegen.runtime_header())
    conv = schema.OP_BY_NAME["Conv"]
    widened = dataclasses.replace(conv, iattrs=(*conv.iattrs, schema.Attr("extra")))
    monkeypatch.setattr(schema, "OPS", tuple(widened if op is conv else op for op in schema.OPS))
    assert set(codegen.stale(tree)) == {header, tree / "runtime/src/op_attrs.h"}


def test_built_runtime_matches_the_schema():
    assert _rt.opcode_names() == {op.code: op.name for op in schema.OPS}


def test_attributes_are_packed_by_name_and_checked():
    conv = schema.OP_BY_NAME["Conv"]
    attrs = {"algorithm": schema.ConvAlgo.IM2COL, "group": 1, "strides": [2, 2], "pads": [1, 0, 1, 0],
             "dilations": [1, 1], "activation": schema.Activation.RELU}
    ints, floats = conv.pack(attrs, rank=4)
    assert conv.unpack(ints, floats, 4)["pads"] == [1, 0, 1, 0]
    with pytest.raises(ValueError, match="'strides' takes 2"):
        conv.pack({**attrs, "strides": [1]}, 4)
    with pytest.raises(ValueError, match="unknown attribute"):
        conv.pack({**attrs, "stride": 1}, 4)
    with pytest.raises(ValueError, match="outside"):
        conv.pack({**attrs, "group": 0}, 4)


def _compile(tmp_path, model, name="m.spx"):
    return sparsec.compile(model, output=tmp_path / name).path


def _reseal(data: bytearray) -> bytes:
    data[24:28] = struct.pack("<I", zlib.crc32(bytes(data[32:])))
    return bytes(data)


def test_version_one_artifact_says_rebuild(tmp_path):
    data = bytearray(_compile(tmp_path, single_op_model("Relu", [("x", [2, 2])])).read_bytes())
    data[8:12] = struct.pack("<I", 1)
    with pytest.raises(sparsec.ArtifactError, match=r"version 1 is older .* rebuild it with sparsec >= 0\.2\.0"):
        sparsec.load(_reseal(data))
    data[8:12] = struct.pack("<I", 3)
    with pytest.raises(sparsec.ArtifactError, match="version 3 is newer .* update"):
        sparsec.load(_reseal(data))


def test_unknown_feature_flags_and_reserved_fields(tmp_path):
    data = bytearray(_compile(tmp_path, single_op_model("Relu", [("x", [2, 2])])).read_bytes())
    flagged = bytearray(data)
    flagged[28:32] = struct.pack("<I", 64)
    with pytest.raises(sparsec.ArtifactError, match="needs features this runtime lacks"):
        sparsec.load(_reseal(flagged))
    reserved = bytearray(data)
    reserved[80] = 1
    with pytest.raises(sparsec.ArtifactError, match="reserved header fields"):
        sparsec.load(_reseal(reserved))


def _lowered_conv(rng):
    """A lowered Conv (weights, bias) ready for serialize: tensors, ops, inputs, outputs, arena size."""
    from sparsec.frontend import load_model
    from sparsec.lower import lower_model, plan_memory

    model = single_op_model("Conv", [("x", [1, 2, 5, 5])], None,
                            [("w", rng.standard_normal((3, 2, 3, 3)).astype(np.float32)),
                             ("b", rng.standard_normal(3).astype(np.float32))], {"pads": [1, 1, 1, 1]})
    g = lower_model(load_model(model))
    memory = plan_memory(g)
    return model, g, memory["arena_bytes"]


def test_param_region_is_mutable_and_saved(rng):
    """Storage PARAM: initial values from the file, read and written as one region; the file stays as it was."""
    model, g, arena = _lowered_conv(rng)
    bias = next(t for t in g.tensors if t.name == "b")
    bias.storage = Storage.PARAM
    data = spx.serialize("x86_64", g.tensors, g.ops, g.inputs, g.outputs, arena)
    parsed = spx.parse(data)
    assert parsed.features & schema.Feature.PARAMS and parsed.param_size == 12
    session = sparsec.load(data)
    x = {"x": rng.standard_normal((1, 2, 5, 5)).astype(np.float32)}
    np.testing.assert_allclose(session.run(None, x)[0], run_onnxruntime(model, x)[0], rtol=1e-5, atol=1e-6)
    params = session._session.read_params()
    assert np.frombuffer(params[:12], np.float32).tolist() == bias.data.tolist()
    shifted = (bias.data + 1).astype(np.float32).tobytes()
    before = session.run(None, x)[0]
    session._session.write_params(shifted)
    np.testing.assert_allclose(session.run(None, x)[0], before + 1, rtol=1e-5, atol=1e-5)
    with pytest.raises(_rt.StatusError, match="param region has 12 bytes"):
        session._session.write_params(b"\0" * 8)
    assert sparsec.load(data).run(None, x)[0].tolist() == before.tolist()  # a new session starts from the file


def test_quant_and_sparse_records_are_validated(rng):
    model, g, arena = _lowered_conv(rng)
    weight = next(t for t in g.tensors if t.name == "w")
    weight.sparse = spx.SparseInfo(1, (4, 1), (3, 18), 20)
    extra = spx.TensorEntry("q", np.dtype(np.int8), (3,), data=np.array([1, -2, 3], np.int8),
                            quant=spx.QuantParams(np.array([0.5, 0.25, 2.0]), np.array([0, 1, -1]), axis=0))
    tensors = [*g.tensors, extra]
    data = spx.serialize("x86_64", tensors, g.ops, g.inputs, g.outputs, arena)
    parsed = spx.parse(data)
    assert parsed.features == schema.Feature.QUANT | schema.Feature.SPARSE
    assert parsed.tensors[-1].quant.scale.tolist() == [0.5, 0.25, 2.0]
    sparsec.load(data)  # valid records load
    bad_block = dataclasses.replace(weight.sparse, block=(3, 1))
    weight.sparse = bad_block
    with pytest.raises(sparsec.ArtifactError, match="invalid sparse-format metadata"):
        sparsec.load(spx.serialize("x86_64", tensors, g.ops, g.inputs, g.outputs, arena))
    weight.sparse = None
    extra.quant = spx.QuantParams(np.array([0.5, -1.0, 2.0]), np.array([0, 1, -1]), axis=0)
    with pytest.raises(sparsec.ArtifactError, match="scale or zero point out of range"):
        sparsec.load(spx.serialize("x86_64", tensors, g.ops, g.inputs, g.outputs, arena))
    extra.quant = spx.QuantParams(np.array([0.5, 1.0]), np.array([0, 1]), axis=0)
    with pytest.raises(sparsec.ArtifactError, match="invalid quantization parameters"):
        sparsec.load(spx.serialize("x86_64", tensors, g.ops, g.inputs, g.outputs, arena))


def test_overlapping_live_buffers_are_rejected(rng):
    """A plan that puts an op's output over its input (not an in-place op) or two live tensors on the same bytes."""
    from sparsec.frontend import load_model
    from sparsec.lower import lower_model, plan_memory

    nodes = [helper.make_node("Exp", ["x"], ["e"]), helper.make_node("Concat", ["e", "x"], ["y"], axis=0)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, 4])])
    g = lower_model(load_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])))
    arena = plan_memory(g)["arena_bytes"]
    sparsec.load(spx.serialize("x86_64", g.tensors, g.ops, g.inputs, g.outputs, arena))
    exp_out = g.ops[0].outputs[0]
    g.tensors[exp_out].offset = g.tensors[g.inputs[0]].offset  # Exp's output over x, which Concat still reads
    with pytest.raises(sparsec.ArtifactError, match="overlap in the arena while both are live"):
        sparsec.load(spx.serialize("x86_64", g.tensors, g.ops, g.inputs, g.outputs, arena))


def test_in_place_ops_share_their_dying_input(rng):
    """Reshape's Copy and an element-wise op write over their input when they are its last reader: one buffer."""
    from sparsec.frontend import load_model
    from sparsec.lower import lower_model, plan_memory

    w = rng.standard_normal((6, 8)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Reshape", ["m", "shape"], ["r"]),
             helper.make_node("Exp", ["r"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 16])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([2, 16]), "shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    g = lower_model(load_model(model))
    memory = plan_memory(g)
    m, r, y = (next(t for t in g.tensors if t.name == name) for name in "mry")
    assert m.offset == r.offset == y.offset
    assert memory["naive_bytes"] > memory["arena_bytes"]
    session = sparsec.load(spx.serialize("x86_64", g.tensors, g.ops, g.inputs, g.outputs, memory["arena_bytes"]))
    x = {"x": rng.standard_normal((4, 6)).astype(np.float32)}
    np.testing.assert_allclose(session.run(None, x)[0], run_onnxruntime(model, x)[0], rtol=1e-5)
    # An input's buffer is never written over: a second run on the inputs set once gives the same result.
    g = lower_model(load_model(helper.make_model(helper.make_graph(
        [helper.make_node("Exp", ["x"], ["y"])], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])]), opset_imports=[helper.make_opsetid("", 17)])))
    plan_memory(g)
    assert g.tensors[g.inputs[0]].offset != g.tensors[g.outputs[0]].offset


def test_scratch_far_beyond_an_ops_tensors_is_refused(rng):
    """A libFuzzer find: a 320-byte artifact whose Softmax asked for 16 GiB of scratch made the session allocate it."""
    model, g, arena = _lowered_conv(rng)
    sparsec.load(spx.serialize("x86_64", g.tensors, g.ops, g.inputs, g.outputs, arena))
    g.ops[0].scratch_bytes = 1 << 34
    with pytest.raises(sparsec.ArtifactError, match="scratch of 17179869184 bytes is far beyond"):
        sparsec.load(spx.serialize("x86_64", g.tensors, g.ops, g.inputs, g.outputs, arena))


def test_int64_index_output_matches_onnxruntime(tmp_path, rng):
    """ArgMax's int64 output and int64 shape arithmetic flow through the runtime exactly."""
    nodes = [helper.make_node("ArgMax", ["x"], ["i"], axis=1, keepdims=0, name="argmax"),
             helper.make_node("Mul", ["i", "k"], ["scaled"], name="int_mul"),
             helper.make_node("Sub", ["scaled", "k"], ["y"], name="int_sub")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 10])],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, [3])],
                              [onnx.numpy_helper.from_array(np.array([7], np.int64), "k")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = {"x": rng.standard_normal((3, 10)).astype(np.float32)}
    result = sparsec.compile(model, output=tmp_path / "argmax.spx")
    ours = sparsec.load(result.path).run(None, x)[0]
    assert ours.dtype == np.int64 and ours.tolist() == run_onnxruntime(model, x)[0].tolist()


@pytest.mark.parametrize("to", [TensorProto.BOOL, TensorProto.INT32, TensorProto.UINT8, TensorProto.INT64])
def test_cast_matches_onnxruntime(to, tmp_path):
    model = single_op_model("Cast", [("x", [8])], None, (), {"to": to}, dtypes={"y": to})
    x = {"x": np.array([16, 0, -1, 0.5, 36, -0.25, 200, 3], np.float32)}
    if to == TensorProto.UINT8:
        x["x"] = np.abs(x["x"])  # negative float -> uint8 is undefined in C++ and differs between engines
    ours = sparsec.load(sparsec.compile(model, output=tmp_path / "c.spx").path).run(None, x)[0]
    ref = run_onnxruntime(model, x)[0]
    assert ours.dtype == ref.dtype and ours.tolist() == ref.tolist()


def test_bool_inputs_and_outputs_are_bool(tmp_path):
    model = single_op_model("Cast", [("x", [4])], None, (), {"to": TensorProto.FLOAT},
                            dtypes={"x": TensorProto.BOOL, "y": TensorProto.FLOAT})
    session = sparsec.load(sparsec.compile(model, output=tmp_path / "b.spx").path)
    assert session.get_inputs()[0].dtype == np.bool_
    assert session.run(None, {"x": np.array([True, False, True, True])})[0].tolist() == [1, 0, 1, 1]


def test_unread_outputs_of_partial_rules_are_refused(tmp_path, monkeypatch):
    """A rule that computes only Y of LayerNormalization (as rules_nn.layer_norm alone does) while the graph reads
    Mean: the lowering refuses the node."""
    from sparsec.lower import lower, rules_nn

    monkeypatch.setitem(lower.RULES, "LayerNormalization", rules_nn.layer_norm)
    node = helper.make_node("LayerNormalization", ["x", "s"], ["y", "mean"], axis=-1, name="ln")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4]),
                               helper.make_tensor_value_info("mean", TensorProto.FLOAT, [2, 1])],
                              [onnx.numpy_helper.from_array(np.ones(4, np.float32), "s")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(sparsec.UnsupportedOpError, match=r"node 'ln' \(LayerNormalization\): output 1 'mean'"):
        sparsec.compile(model, output=tmp_path / "ln.spx")


def test_unsupported_graph_dtype_is_a_user_error(tmp_path, capsys):
    model = single_op_model("Relu", [("x", [4])], None, (), dtypes={"x": TensorProto.DOUBLE, "y": TensorProto.DOUBLE})
    path = tmp_path / "double.onnx"
    onnx.save(model, path)
    assert main(["compile", str(path), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "graph input 'x'" in err and "DOUBLE" in err and "internal" not in err


def test_unnamed_nodes_are_named_by_index_and_output(tmp_path):
    node = helper.make_node("TopKNotAnOp", ["x"], ["out_y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("out_y", TensorProto.FLOAT, [4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    from sparsec.lower import lower_model
    import onnx_ir as ir

    with pytest.raises(sparsec.UnsupportedOpError, match=r"node '#0:out_y' \(TopKNotAnOp\)"):
        lower_model(ir.serde.deserialize_model(model))


def test_inspect_artifact_names_node_kernel_and_bytes(tmp_path, capsys, rng):
    """`sparsec inspect model.spx`: per op the ONNX node, algorithm, kernel variant on the target, bytes."""
    w1 = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    dw = rng.standard_normal((8, 1, 3, 3)).astype(np.float32)
    pw = rng.standard_normal((4, 8, 1, 1)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1], name="stem"),
             helper.make_node("Conv", ["a", "dw"], ["b"], pads=[1, 1, 1, 1], group=8, name="depthwise"),
             helper.make_node("Conv", ["b", "pw"], ["y"], name="pointwise")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 16, 16])],
                              [onnx.numpy_helper.from_array(a, n) for n, a in (("w1", w1), ("dw", dw), ("pw", pw))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = {"x": rng.standard_normal((1, 3, 16, 16)).astype(np.float32)}
    assert compile_and_compare(model, x, tmp_path) < 1e-5
    assert main(["inspect", str(tmp_path / "model.spx"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {r["node"]: r for r in report["ops"]}
    assert (rows["stem"]["algorithm"], rows["stem"]["kernel"]) == ("IM2COL", "f32_conv2d_im2col__portable")
    assert rows["stem"]["scratch_bytes"] == 3 * 3 * 3 * 16 * 16 * 4 and report["scratch_bytes"] == rows["stem"]["scratch_bytes"]
    assert (rows["depthwise"]["algorithm"], rows["depthwise"]["kernel"]) == ("DEPTHWISE_3X3", "f32_dwconv2d__portable")
    assert (rows["pointwise"]["algorithm"], rows["pointwise"]["kernel"]) == ("GEMM_1X1", "f32_gemm__portable")
    assert rows["pointwise"]["weight_bytes"] == pw.nbytes and rows["pointwise"]["onnx_op"] == "Conv"
    assert report["constant_bytes"] >= w1.nbytes + dw.nbytes + pw.nbytes
    assert schema.KERNEL_BY_JOB["f32_dwconv2d_3x3"].variant("arm64") == "f32_dwconv2d_3x3_u4__neon"
    assert schema.KERNEL_BY_JOB["f32_dwconv2d_3x3"].variant("wasm32") == "f32_dwconv2d_3x3_u4__wasmsimd"
    assert main(["inspect", str(tmp_path / "model.spx")]) == 0
    assert "f32_conv2d_im2col__portable" in capsys.readouterr().out


def test_one_session_is_safe_from_many_threads(tmp_path, rng):
    """4 threads x 50 runs on one session and on separate sessions: every output equals the single-threaded one."""
    model = single_op_model("Conv", [("x", [1, 8, 24, 24])], None,
                            [("w", rng.standard_normal((16, 8, 3, 3)).astype(np.float32))], {"pads": [1, 1, 1, 1]})
    path = _compile(tmp_path, model)
    shared = sparsec.load(path)
    feeds = [{"x": rng.standard_normal((1, 8, 24, 24)).astype(np.float32)} for _ in range(4)]
    expected = [shared.run(None, f)[0] for f in feeds]
    wrong = []

    def worker(k: int, session) -> None:
        for _ in range(50):
            if not np.array_equal(session.run(None, feeds[k])[0], expected[k]):
                wrong.append(k)

    for sessions in ([shared] * 4, [sparsec.load(path) for _ in range(4)]):
        threads = [threading.Thread(target=worker, args=(k, sessions[k])) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert wrong == []


def test_two_rule_modules_claim_one_op_only_as_a_declared_override():
    from types import SimpleNamespace

    from sparsec.lower.lower import layered_rules

    def first(b, node): pass

    def second(b, node): pass

    family = SimpleNamespace(__name__="rules_family", RULES={"Relu": first})
    other = SimpleNamespace(__name__="rules_other", RULES={"Relu": second})
    with pytest.raises(ImportError, match="rules_other and an earlier rules module both lower Relu"):
        layered_rules(family, other)
    other.OVERRIDES = ("Relu",)
    assert layered_rules(family, other)["Relu"] is second


def test_schema_names_each_enum_once():
    """A dict literal keeps the last of two equal keys silently: two op families must not both define an enum."""
    import ast

    from sparsec.contract import schema

    tree = ast.parse(Path(schema.__file__).read_text())
    enums = next(node.value for node in ast.walk(tree) if isinstance(node, ast.AnnAssign)
                 and getattr(node.target, "id", None) == "ENUMS")
    names = [key.value for key in enums.keys]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


def test_runtime_messages_use_only_conversions_format_message_knows():
    """runtime/src/message.cpp formats the runtime's messages without printf: every conversion in a string literal
    of the runtime must be one it implements (the compiler checks the argument types, not this)."""
    import re

    known = re.compile(r"%(%|(l|ll|z)?[diux]|s|c)")
    literal = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
    bad = []
    for path in sorted((ROOT / "runtime" / "src").glob("*.[ch]*")):
        for text in literal.findall(path.read_text()):
            for match in re.finditer(r"%[^%]?", text):
                if not known.match(text, match.start()) and not text[match.start() - 1:match.start()] == "%":
                    bad.append(f"{path.name}: {text!r}")
    assert not bad, bad
