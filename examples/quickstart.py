"""End to end on a built-in example model: build a small CNN (ONNX), compile it, run it, check it.

    python examples/quickstart.py [--out build/example]

The model (Conv-BN-ReLU blocks, a residual Add, depthwise conv, pooling, Gemm, Softmax) is made
with onnx.helper from a fixed seed, so no download and no PyTorch is needed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import sparsec


def build_example_model(seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    inits = []

    def param(name, *shape, positive=False):
        data = rng.uniform(0.5, 1.5, shape) if positive else rng.standard_normal(shape) * 0.3
        inits.append(numpy_helper.from_array(data.astype(np.float32), name))
        return name

    def conv_bn_relu(x, name, cin, cout, k, stride=1, group=1):
        w = param(f"{name}.w", cout, cin // group, k, k)
        bn = [param(f"{name}.bn.{p}", cout, positive=p in ("scale", "var")) for p in ("scale", "bias", "mean", "var")]
        return [
            helper.make_node("Conv", [x, w], [f"{name}.c"], name=f"{name}.conv", pads=[k // 2] * 4,
                             strides=[stride, stride], group=group),
            helper.make_node("BatchNormalization", [f"{name}.c", *bn], [f"{name}.bn"], name=f"{name}.bn"),
            helper.make_node("Relu", [f"{name}.bn"], [f"{name}.out"], name=f"{name}.relu"),
        ]

    nodes = conv_bn_relu("image", "stem", 3, 16, 3, stride=2)
    nodes += conv_bn_relu("stem.out", "dw", 16, 16, 3, group=16)
    nodes += conv_bn_relu("dw.out", "pw", 16, 16, 1)
    nodes += [
        helper.make_node("Add", ["pw.out", "stem.out"], ["res"], name="residual"),
        helper.make_node("MaxPool", ["res"], ["pool"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["pool"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", param("fc.w", 10, 16), param("fc.b", 10)], ["logits"], name="fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(nodes, "quickstart_cnn",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 64, 64])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="build/example", help="where the model, artifact and report go")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / "quickstart_cnn.onnx"
    onnx.save(build_example_model(), model_path)

    result = sparsec.compile(model_path, target="host", output=out)
    report = result.report
    print(f"compiled {model_path} -> {result.path} ({report['artifact_bytes']:,} bytes, {report['runtime_ops']} runtime ops)")
    for row in report["passes"]:
        print(f"  {row['pass']:<18} nodes {row['nodes_before']:>3} -> {row['nodes_after']:<3} {row['changes'] or ''}")
    print(f"  activation memory {report['peak_activation_bytes']:,} B planned vs {report['naive_activation_bytes']:,} B naive")

    image = np.random.default_rng(1).standard_normal((1, 3, 64, 64)).astype(np.float32)
    session = sparsec.load(result.path)
    probs = session.run(None, {"image": image})[0]
    print(f"sparsec output: top class {int(probs.argmax())}, p={float(probs.max()):.4f}")
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime not installed: skipped the reference check")
        return
    reference = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"]).run(None, {"image": image})[0]
    error = float(np.max(np.abs(probs - reference)) / np.max(np.abs(reference)))
    print(f"onnxruntime reference: max relative error {error:.2e}")
    if error > 1e-4:
        raise SystemExit("mismatch against onnxruntime")


if __name__ == "__main__":
    main()
