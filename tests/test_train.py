"""On-device fine-tuning: compiled training steps against PyTorch autograd and torch.optim on the same ONNX graph
(tests/torch_onnx.py runs the ONNX model with torch ops), the sparse-backprop structure, and the state files."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import sparsec
from sparsec.artifact.format import op_spec, parse
from sparsec.contract.schema import Storage
from sparsec.errors import InputError, UnsupportedOpError
from sparsec.train.spec import TrainOptions, parse_optimizer
from sparsec.train.trainer import StateError

torch = pytest.importorskip("torch")
import torch_onnx  # noqa: E402  (tests/ is on sys.path)

F = torch.nn.functional
LOSSES = {"cross_entropy": F.cross_entropy, "mse": F.mse_loss, "bce_with_logits": F.binary_cross_entropy_with_logits,
          "l1": F.l1_loss}
STEPS = 5


# ---- models ----------------------------------------------------------------------------------------------

class SmallCNN(torch.nn.Module):
    """Conv+BN+ReLU, depthwise conv + ReLU6, max pool, global average, Linear: a MobileNet-like head."""

    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.c2 = torch.nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8)
        self.c3 = torch.nn.Conv2d(8, 12, 1)
        self.fc = torch.nn.Linear(12, 5)

    def forward(self, x):
        x = torch.relu(self.bn(self.c1(x)))
        x = F.relu6(self.c2(x))
        x = F.max_pool2d(F.hardswish(self.c3(x)), 2)
        return self.fc(x.mean((2, 3)))


class SmallMLP(torch.nn.Module):
    """Linear layers (Gemm), GELU, Sigmoid, LayerNorm, SiLU."""

    def __init__(self):
        super().__init__()
        self.l1, self.l2, self.l3 = torch.nn.Linear(10, 16), torch.nn.Linear(16, 16), torch.nn.Linear(16, 4)
        self.norm = torch.nn.LayerNorm(16)

    def forward(self, x):
        x = F.gelu(self.l1(x))
        x = self.norm(torch.sigmoid(self.l2(x)) * x)
        return self.l3(F.silu(x))


def _randomise(model) -> None:
    """Non-trivial BatchNorm/LayerNorm statistics and affine parameters (fresh ones are 0/1)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)


def export(module, shape, path) -> str:
    torch.manual_seed(0)
    model = module()
    _randomise(model)
    model.eval()
    torch.onnx.export(model, (torch.randn(*shape),), str(path), dynamo=False, opset_version=17, input_names=["input"],
                      output_names=["output"], training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    return str(path)


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    return export(SmallCNN, (4, 3, 12, 12), tmp_path_factory.mktemp("cnn") / "cnn.onnx")


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    return export(SmallMLP, (6, 10), tmp_path_factory.mktemp("mlp") / "mlp.onnx")


# ---- the reference ---------------------------------------------------------------------------------------

def batches(shape, loss, classes, steps=STEPS, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        x = rng.standard_normal(shape).astype(np.float32)
        if loss == "cross_entropy":
            y = rng.integers(0, classes, shape[0]).astype(np.int64)
        elif loss == "bce_with_logits":
            y = rng.integers(0, 2, (shape[0], classes)).astype(np.float32)
        else:
            y = rng.standard_normal((shape[0], classes)).astype(np.float32)
        out.append((x, y))
    return out


def torch_training(path, params, data, loss, optimizer):
    """PyTorch autograd + torch.optim on the ONNX graph, updating exactly params (sparsec's resolved spec)."""
    model = onnx.load(path)
    initial = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in model.graph.initializer}
    leaves = {}
    for p in params:
        full = initial[p["name"]]
        value = full if p["indices"] is None else full.index_select(p["axis"], torch.tensor(p["indices"]))
        leaves[p["name"]] = value.clone().requires_grad_(True)
    options = {k: v for k, v in optimizer.params.items() if k not in ("beta1", "beta2")}
    if optimizer.kind == "sgd":
        opt = torch.optim.SGD(list(leaves.values()), **options)
    else:
        opt = torch.optim.AdamW(list(leaves.values()), betas=(optimizer.params["beta1"], optimizer.params["beta2"]),
                                **options)
    losses, grads = [], []

    def whole(p):
        leaf = leaves[p["name"]]
        if p["indices"] is None:
            return leaf
        return initial[p["name"]].index_copy(p["axis"], torch.tensor(p["indices"]), leaf)

    for x, y in data:
        out = torch_onnx.run(model, {"input": x}, {p["name"]: whole(p) for p in params})[0]
        value = LOSSES[loss](out, torch.from_numpy(y))
        opt.zero_grad()
        value.backward()
        losses.append(float(value))
        grads.append({n: leaf.grad.detach().clone().numpy() for n, leaf in leaves.items()})
        opt.step()
    final = {p["name"]: whole(p).detach().numpy() for p in params}
    return losses, grads, final


def train_and_compare(path, tmp_path, update, loss="cross_entropy", optimizer="sgd:lr=0.05,momentum=0.9,weight_decay=0.01",
                      classes=5, shape=(4, 3, 12, 12)):
    """Trains STEPS steps in sparsec and in PyTorch; checks loss, gradients, parameters and frozen bits."""
    options = TrainOptions(loss, optimizer, tuple(update))
    result = sparsec.compile(path, output=tmp_path / "build", train=options, progress=False)
    trainer = sparsec.load_trainer(result.path)
    data = batches(shape, loss, classes)
    losses, grads, final = torch_training(path, trainer.meta["params"], data, loss, parse_optimizer(optimizer))
    for step, (x, y) in enumerate(data):
        got = trainer.step({"input": x}, y)
        assert got == pytest.approx(losses[step], rel=1e-4, abs=1e-5), f"loss of step {step}"
        for name, g in trainer.gradients().items():
            ref = grads[step][name]
            assert g.shape == ref.shape, name
            assert np.abs(g - ref).max() <= 1e-3 * max(np.abs(ref).max(), 1e-6), f"gradient of {name}, step {step}"
    params = trainer.parameters()
    for name, ref in final.items():
        np.testing.assert_allclose(params[name], ref, rtol=1e-4, atol=1e-5 * max(1.0, np.abs(ref).max()), err_msg=name)
    exported = tmp_path / "tuned.onnx"
    trainer.export(exported)
    _check_frozen(path, exported, trainer.meta["params"])
    return trainer, result


def _check_frozen(original, exported, params):
    """Frozen initializers (and the frozen channels of partially updated ones) are bit-identical after training."""
    before = {i.name: i for i in onnx.load(original).graph.initializer}
    after = {i.name: i for i in onnx.load(str(exported)).graph.initializer}
    assert before.keys() == after.keys()
    updated = {p["name"]: p for p in params}
    for name, init in before.items():
        if name not in updated:
            assert numpy_helper.to_array(after[name]).tobytes() == numpy_helper.to_array(init).tobytes(), name
        elif updated[name]["indices"] is not None:
            p = updated[name]
            frozen = [c for c in range(init.dims[p["axis"]]) if c not in p["indices"]]
            a, b = numpy_helper.to_array(init), numpy_helper.to_array(after[name])
            assert np.take(a, frozen, p["axis"]).tobytes() == np.take(b, frozen, p["axis"]).tobytes(), name


# ---- gradient and update parity --------------------------------------------------------------------------

@pytest.mark.parametrize("update", [["bias:all"], ["weight:last=2"], ["weight:last=3:channels=0.25", "bias:all"]],
                         ids=["bias", "last2", "channels"])
def test_cnn_matches_pytorch(cnn, tmp_path, update):
    train_and_compare(cnn, tmp_path, update)


@pytest.mark.parametrize("update", [["bias:all"], ["weight:last=2"], ["weight:last=2:channels=0.5"]],
                         ids=["bias", "last2", "channels"])
def test_mlp_matches_pytorch(mlp, tmp_path, update):
    train_and_compare(mlp, tmp_path, update, classes=4, shape=(6, 10))


@pytest.mark.parametrize("loss", ["mse", "bce_with_logits", "l1"])
def test_losses_match_pytorch(mlp, tmp_path, loss):
    train_and_compare(mlp, tmp_path, ["bias:all", "weight:last=1"], loss=loss, classes=4, shape=(6, 10))


def test_adamw_matches_pytorch(cnn, tmp_path):
    train_and_compare(cnn, tmp_path, ["bias:all", "weight:last=2:channels=0.5"],
                      optimizer="adamw:lr=0.01,weight_decay=0.05")


def test_whole_model_matches_pytorch(cnn, tmp_path):
    """Every parameter trains (BatchNorm scale too): every gradient rule of the CNN runs."""
    train_and_compare(cnn, tmp_path, ["*"], optimizer="sgd:lr=0.01")
