"""Every fast kernel variant against its scalar reference (tests/kernels/kernel_test.cpp), on the host."""

from __future__ import annotations

import subprocess

from kernel_build import build_kernel_test


def test_kernels_match_reference_on_host(tmp_path):
    result = subprocess.run([build_kernel_test("host", tmp_path / "build")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 failed" in result.stdout
    assert "kernel isa: portable" in result.stdout  # the dispatch picked this target's variants
