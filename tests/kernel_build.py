"""Builds the kernel test program (tests/kernels/kernel_test.cpp) for the host or a cross target."""

from __future__ import annotations

from pathlib import Path

from sparsec.targets import cmake_build


def build_kernel_test(target: str, build_dir: Path) -> Path:
    """Path of sparsec-kernel-test built for target ('host', 'arm64', ...) with the kernels' CMake source list."""
    cmake_build(target, build_dir, ["sparsec-kernel-test"], {"SPARSEC_KERNEL_TEST": "ON"})
    return Path(build_dir) / "sparsec-kernel-test"
