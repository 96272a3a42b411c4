"""On-device fine-tuning end to end: the last layers of a small CNN learn five new digit classes.

    python examples/finetune.py [--out build/finetune] [--steps 150]

A small CNN pretrained in PyTorch on the digits 0-4 gets a new task: all 10 digits, rendered from a 3x5 bitmap
font at random offsets with noise (the project generates the data, nothing is downloaded). sparsec compiles one
training step that updates only the biases and the last two layers
(sparse backprop: the frozen early layers get no weight gradients), the runtime trains it, and the script shows a
progress bar, the loss going down, held-out accuracy before/after, and a plot of the loss (matplotlib, if
installed). The tuned model is exported as ONNX and checked with onnxruntime.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import sparsec
from sparsec.train.spec import TrainOptions

FONT = ["111101101101111", "010110010010111", "111001111100111", "111001111001111", "101101111001001",
        "111100111001111", "111100111101111", "111001001001001", "111101111101111", "111101111001111"]
SIZE, BATCH = 16, 16


def digits(count: int, rng: np.random.Generator, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """count noisy 16x16 digit images (glyphs scaled x2, random offset) as [N, 1, 16, 16] and their labels."""
    labels = rng.integers(0, classes, count)
    images = rng.normal(0, 0.3, (count, 1, SIZE, SIZE)).astype(np.float32)
    for image, label in zip(images, labels):
        glyph = np.array([int(c) for c in FONT[label]], np.float32).reshape(5, 3).repeat(2, 0).repeat(2, 1)
        top, left = rng.integers(0, SIZE - 10 + 1), rng.integers(0, SIZE - 6 + 1)
        image[0, top:top + 10, left:left + 6] += glyph
    return images, labels.astype(np.int64)


def export_pretrained(path: Path) -> None:
    """A small CNN pretrained (in PyTorch, on the host) to read the digits 0-4 only; exported to ONNX."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(32, 32, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(32 * 4 * 4, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.003)
    rng = np.random.default_rng(1)
    for _ in range(150):
        images, labels = digits(64, rng, classes=5)
        loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(images)), torch.from_numpy(labels))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    torch.onnx.export(model, (torch.zeros(BATCH, 1, SIZE, SIZE),), str(path), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["logits"], training=torch.onnx.TrainingMode.PRESERVE)


def accuracy(session, images, labels) -> float:
    correct = 0
    for i in range(0, len(images), BATCH):
        logits = session.run(None, {"input": images[i:i + BATCH]})[0]
        correct += int((logits.argmax(1) == labels[i:i + BATCH]).sum())
    return correct / len(images)


def progress(step: int, total: int, loss: float) -> None:
    done = int(30 * step / total)
    print(f"\r[{'#' * done}{'.' * (30 - done)}] step {step}/{total} loss {loss:.4f}", end="", file=sys.stderr,
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="build/finetune")
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    export_pretrained(out / "backbone.onnx")
    options = TrainOptions("cross_entropy", "adamw:lr=0.003", ("bias:all", "weight:last=2"))
    result = sparsec.compile(out / "backbone.onnx", output=out, train=options, progress=False)
    t = result.report["training"]
    print(f"training step: {t['updated_values']:,} of the model's values train, peak memory {t['peak_step_bytes']:,} "
          f"bytes, saved activations {t['saved_activation_bytes']:,} bytes")
    trainer = sparsec.load_trainer(result.path)
    rng = np.random.default_rng(0)
    test_images, test_labels = digits(BATCH * 16, rng)
    before = accuracy(sparsec.compile(out / "backbone.onnx", output=out / "before", progress=False) and
                      sparsec.load(out / "before" / "backbone.spx"), test_images, test_labels)
    losses = []
    for step in range(1, args.steps + 1):
        images, labels = digits(BATCH, rng)
        losses.append(trainer.step({"input": images}, labels))
        progress(step, args.steps, float(np.mean(losses[-10:])))
    print(file=sys.stderr)
    trainer.save_state(out / "finetune.spxstate")
    tuned = trainer.export(out / "finetuned.onnx")
    after = accuracy(trainer.inference_session(), test_images, test_labels)
    first, last = float(np.mean(losses[:10])), float(np.mean(losses[-10:]))
    print(f"loss {first:.3f} -> {last:.3f} (mean of the first / last 10 steps); held-out accuracy {before:.0%} -> "
          f"{after:.0%}; tuned model: {tuned}")
    try:
        import onnxruntime as ort

        feed = {"input": test_images[:BATCH]}
        reference = ort.InferenceSession(str(tuned)).run(None, feed)[0]
        ours = trainer.inference_session().run(None, feed)[0]
        print(f"onnxruntime on the tuned model: max |difference| {np.abs(reference - ours).max():.2e}")
    except ImportError:
        pass
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        plt.figure(figsize=(6, 3.5))
        plt.plot(losses, alpha=0.4, label="step loss")
        plt.plot(np.convolve(losses, np.ones(10) / 10, mode="valid"), label="mean of 10")
        plt.xlabel("step")
        plt.ylabel("cross-entropy")
        plt.title("sparsec on-device fine-tuning (bias:all + last 2 layers)")
        plt.legend()
        plt.tight_layout()
        plt.savefig(out / "loss.png", dpi=100)
        print(f"plot: {out / 'loss.png'}")
    except ImportError:
        print("(matplotlib not installed: no plot)")
    if not last < 0.7 * first:
        raise SystemExit(f"the loss did not go down enough: {first:.3f} -> {last:.3f}")


if __name__ == "__main__":
    main()
