"""A short libFuzzer run of the artifact loader + executor under ASan/UBSan, seeded with real artifacts."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import sparsec
from conftest import single_op_model

ROOT = Path(__file__).resolve().parent.parent
FUZZ_SECONDS = 45
SEEDS = Path(__file__).resolve().parent / "fuzz" / "seeds"  # findings of earlier runs (crash-*, ...) go here by hand


def runtime_sources() -> list[str]:
    """The host build's sources: runtime plus CMakeLists' SPARSEC_KERNEL_DIRS for a non-ARM, non-wasm target."""
    return sorted(str(p) for pattern in ("runtime/src/*.cpp", "kernels_arm/ref/*.cpp", "kernels_arm/portable/*.cpp",
                                         "kernels_arm/dispatch/*.cpp")
                  for p in ROOT.glob(pattern))


def seed_corpus(directory: Path, rng) -> None:
    """Valid artifacts of several op kinds: the fuzzer mutates from real structure."""
    models = [
        single_op_model("Conv", [("x", [1, 3, 6, 6])], None, [("w", rng.standard_normal((4, 3, 3, 3)).astype(np.float32))],
                        {"pads": [1, 1, 1, 1], "group": 1}),
        single_op_model("MatMul", [("a", [2, 3, 4])], None, [("b", rng.standard_normal((4, 5)).astype(np.float32))]),
        single_op_model("Softmax", [("x", [2, 7])]),
        single_op_model("MaxPool", [("x", [1, 2, 5, 5])], None, (), {"kernel_shape": [3, 3], "ceil_mode": 1, "strides": [2, 2]}),
        single_op_model("Transpose", [("x", [2, 3, 4])], None, (), {"perm": [2, 0, 1]}),
    ]
    for i, model in enumerate(models):
        sparsec.compile(model, output=directory / f"seed{i}.spx")
    # Own generator, and names sorted after seed*: the other seeds' corruption cases stay as they were.
    for i, model in enumerate(sparse_models(np.random.default_rng(1))):
        sparsec.compile(model, output=directory / f"sparse{i}.spx")
    for report in directory.glob("*.report.json"):
        report.unlink()
    (directory / "seed_v2_records.spx").write_bytes(artifact_with_every_record(rng))


def sparse_models(rng) -> list:
    """Weights with zeros, so the seeds hold Spmm ops and packed tensors: blocked 4x1 (1x1 conv), 1x1 blocks
    through im2col (3x3 conv) and 2:4 (MatMul)."""
    pointwise = rng.standard_normal((8, 6, 1, 1)).astype(np.float32)
    pointwise[:4, 1:5] = 0
    pointwise[4:, ::2] = 0
    window = rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * (rng.random((4, 3, 3, 3)) < 0.2)
    two_four = rng.standard_normal((8, 5)).astype(np.float32)
    two_four[1::4] = two_four[2::4] = 0
    return [single_op_model("Conv", [("x", [1, 6, 4, 5])], None, [("w", pointwise)]),
            single_op_model("Conv", [("x", [1, 3, 6, 6])], None, [("w", window)], {"pads": [1, 1, 1, 1]}),
            single_op_model("MatMul", [("a", [3, 8])], None, [("b", two_four)])]


def artifact_with_every_record(rng) -> bytes:
    """A Conv whose bias lives in the param region, with a sparse-format record and a quantized tensor: the
    format v2 fields the loader validates."""
    from sparsec.artifact import format as spx
    from sparsec.contract.schema import Storage
    from sparsec.frontend import load_model
    from sparsec.lower import lower_model, plan_memory

    model = single_op_model("Conv", [("x", [1, 2, 5, 5])], None,
                            [("w", rng.standard_normal((4, 2, 1, 1)).astype(np.float32)),
                             ("b", rng.standard_normal(4).astype(np.float32))])
    g = lower_model(load_model(model))
    arena = plan_memory(g)["arena_bytes"]
    by_name = {t.name: t for t in g.tensors}
    by_name["b"].storage = Storage.PARAM
    by_name["w"].sparse = spx.SparseInfo(1, (4, 1), (4, 2), 8)
    quantized = spx.TensorEntry("q", np.dtype(np.int8), (4,), data=np.arange(4, dtype=np.int8),
                                quant=spx.QuantParams(np.full(4, 0.5), np.zeros(4), axis=0))
    return spx.serialize("x86_64", [*g.tensors, quantized], g.ops, g.inputs, g.outputs, arena)


@pytest.fixture(scope="module")
def fuzz_binary(tmp_path_factory) -> Path:
    """The loader + executor harness built with libFuzzer, ASan and UBSan (UBSan findings abort)."""
    clang = shutil.which("clang++")
    assert clang, "clang++ with libFuzzer is needed (.ci/run installs clang and libclang-rt-dev)"
    binary = tmp_path_factory.mktemp("fuzz") / "fuzz_loader"
    subprocess.run([clang, "-std=c++17", "-O1", "-g", "-fsanitize=fuzzer,address,undefined",
                    "-fno-sanitize-recover=undefined", f"-I{ROOT / 'runtime/include'}", f"-I{ROOT / 'runtime/src'}",
                    f"-I{ROOT / 'kernels_arm/include'}", str(ROOT / "tests/fuzz/fuzz_loader.cpp"), *runtime_sources(),
                    "-o", str(binary)], check=True)
    return binary


# A hostile header may ask for a huge arena: the loader must get null and return an error, so allocations
# fail normally instead of tripping libFuzzer's malloc limit (real memory stays capped by RSS).
SANITIZER_ENV = {**os.environ, "ASAN_OPTIONS": "allocator_may_return_null=1"}


def test_corrupted_artifacts_under_sanitizers(fuzz_binary, tmp_path, rng):
    """The corruption test's mutations (truncations, bit flips, every header field at boundary values) replayed
    once each through the ASan+UBSan harness, which re-seals size and checksum so all of them reach the parser."""
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    seed_corpus(seeds, rng)
    cases = tmp_path / "cases"
    cases.mkdir()
    count = 0
    for seed in sorted(seeds.iterdir()):
        data = seed.read_bytes()
        for trial in range(300):
            bad = bytearray(data)
            if trial < 12:  # each 8-byte header word from 32 on at 0, all ones and the top bit
                pos = 32 + 8 * (trial // 3)
                bad[pos:pos + 8] = [b"\0" * 8, b"\xff" * 8, b"\0" * 7 + b"\x80"][trial % 3]
            elif trial % 3 == 0:
                bad = bad[: rng.integers(0, len(bad))]
            else:
                for _ in range(rng.integers(1, 4)):
                    bad[int(rng.integers(8, len(bad)))] ^= 1 << int(rng.integers(0, 8))
            (cases / f"{seed.stem}-{trial}").write_bytes(bytes(bad))
            count += 1
    proc = subprocess.run([str(fuzz_binary), "-runs=0", f"-artifact_prefix={tmp_path}/", str(cases)],
                          capture_output=True, text=True, timeout=600, env=SANITIZER_ENV, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "INITED" in proc.stderr and count >= 1800


def test_loader_survives_fuzzing(fuzz_binary, tmp_path, rng):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    seed_corpus(corpus, rng)
    for seed in SEEDS.iterdir():  # earlier findings, kept as reproducers
        shutil.copy(seed, corpus)
    findings = tmp_path / "findings"
    findings.mkdir()
    proc = subprocess.run([str(fuzz_binary), str(corpus), f"-artifact_prefix={findings}/",
                           f"-max_total_time={FUZZ_SECONDS}", "-max_len=65536", "-rss_limit_mb=2048",
                           "-malloc_limit_mb=4194304", "-seed=1"],
                          capture_output=True, text=True, timeout=FUZZ_SECONDS + 120, env=SANITIZER_ENV)
    report = [line for line in proc.stderr.splitlines() if not line.startswith("#")]  # drop progress lines
    assert proc.returncode == 0, "\n".join(report[-80:]) + f"\nreproducers: {sorted(findings.iterdir())}"
    assert "Done" in proc.stderr
