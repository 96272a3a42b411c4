"""Runtime builds for deployment targets (arm64, wasm32) with a registry-installable cross toolchain, cached."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sparsec.contract.schema import OP_FAMILIES, family_define
from sparsec.errors import RuntimeBuildError, ToolchainError


@dataclass(frozen=True)
class TargetRuntime:
    """What a target ships next to the .spx: files built by CMake targets, plus source files as they are."""

    cmake_targets: tuple[str, ...]
    built_files: tuple[str, ...]  # in the build directory
    source_files: tuple[str, ...]  # relative to the source root

    @property
    def files(self) -> tuple[str, ...]:
        return (*self.built_files, *(Path(p).name for p in self.source_files))


RUNTIMES = {
    "arm64": TargetRuntime(("sparsec_rt", "sparsec-run"), ("libsparsec_rt.a", "sparsec-run"),
                           ("runtime/include/sparsec_rt.h",)),
    "wasm32": TargetRuntime(("sparsec_rt_wasm",), ("sparsec_rt.wasm",), ("runtime/wasm/sparsec.js",)),
}
CROSS_TARGETS = tuple(RUNTIMES)

# zig target triple and flags per sparsec target (zig emits debug info unless told -g0).
# NEON is baseline on aarch64, so the generic CPU has it; wasm32 needs SIMD128 asked for.
# The runtime neither throws nor uses RTTI (it allocates with malloc, see runtime/src/array.h), so the
# static arm64 runner links no unwinder, personality or demangling terminate handler (365 KB -> 145 KB).
_NO_EXCEPTIONS = ["-fno-exceptions", "-fno-rtti"]
_ZIG_TARGETS = {
    "arm64": ("aarch64-linux-musl", ["-mcpu=generic", *_NO_EXCEPTIONS, "-g0"]),
    "wasm32": ("wasm32-wasi", ["-msimd128", *_NO_EXCEPTIONS, "-g0"]),
}
# CMake cache entries that make a cross build; executables are linked static and stripped.
# wasm32 compiles the non-kernel runtime for size (-Oz: 114 KB instead of 143 KB); kernels stay -O3.
_CMAKE_SYSTEMS = {
    "arm64": {"CMAKE_SYSTEM_NAME": "Linux", "CMAKE_SYSTEM_PROCESSOR": "aarch64", "CMAKE_EXE_LINKER_FLAGS": "-static -s"},
    "wasm32": {"CMAKE_SYSTEM_NAME": "Generic", "CMAKE_SYSTEM_PROCESSOR": "wasm32", "CMAKE_EXE_LINKER_FLAGS": "-s",
               "SPARSEC_RUNTIME_OPT": "-Oz"},
}
_GNU_COMPILERS = {"arm64": "aarch64-linux-gnu-g++"}
_INSTALL_HINT = "pip install ziglang (or: pip install 'sparsec[cross]')"

Notify = Callable[[str], None]


@dataclass
class Toolchain:
    """A C++ compiler for one target, as CMake cache entries."""

    name: str  # part of the cache key: another compiler means another build
    cmake_options: dict[str, str] = field(default_factory=dict)


def _zig_binary() -> Path | None:
    """The zig executable of the PyPI `ziglang` package, if installed."""
    spec = importlib.util.find_spec("ziglang")
    if spec is None or not spec.submodule_search_locations:
        return None
    binary = Path(next(iter(spec.submodule_search_locations))) / "zig"
    return binary if binary.exists() else None


def _write_script(path: Path, command: list[str]) -> str:
    """A one-line exec wrapper: CMake wants a single executable per tool, zig needs a subcommand."""
    path.write_text(f'#!/bin/sh\nexec {shlex.join(command)} "$@"\n')
    path.chmod(0o755)
    return str(path)


def _zig_version(zig: Path) -> str:
    return subprocess.run([str(zig), "version"], capture_output=True, text=True, check=True).stdout.strip()


def find_toolchain(target: str, wrapper_dir: Path | None = None) -> Toolchain:
    """ziglang from PyPI first, else Debian's cross g++; wrapper scripts go into wrapper_dir if given."""
    zig = _zig_binary()
    if zig is not None and target in _ZIG_TARGETS:
        triple, flags = _ZIG_TARGETS[target]
        toolchain = Toolchain(f"zig{_zig_version(zig)}")
        if wrapper_dir is not None:
            wrapper_dir.mkdir(parents=True, exist_ok=True)
            toolchain.cmake_options = {
                "CMAKE_CXX_COMPILER": _write_script(wrapper_dir / "c++", [str(zig), "c++", "-target", triple, *flags]),
                "CMAKE_AR": _write_script(wrapper_dir / "ar", [str(zig), "ar"]),
                "CMAKE_RANLIB": _write_script(wrapper_dir / "ranlib", [str(zig), "ranlib"]),
            }
        return toolchain
    gnu = shutil.which(_GNU_COMPILERS.get(target, ""))
    if gnu:
        # CMake finds the matching aarch64-linux-gnu-ar/ranlib from the compiler's prefix.
        return Toolchain(Path(gnu).name, {"CMAKE_CXX_COMPILER": gnu})
    raise ToolchainError(f"no C++ cross compiler for target {target}: {_INSTALL_HINT}")


def _tool(module: str, attribute: str, name: str) -> str:
    """cmake/ninja from their PyPI packages (on PATH or not), else from PATH."""
    try:
        found = Path(getattr(__import__(module), attribute)) / name
        if found.exists():
            return str(found)
    except ImportError:
        pass
    path = shutil.which(name)
    if path is None:
        raise ToolchainError(f"{name} not found: pip install {name} (or: pip install 'sparsec[cross]')")
    return path


def source_root() -> Path:
    """The C++ sources: the checkout this package lives in (editable install), else the copy in the wheel."""
    package = Path(__file__).resolve().parent
    for root in (package.parents[1], package / "_src"):
        if (root / "CMakeLists.txt").exists() and (root / "runtime" / "src").is_dir():
            return root
    raise RuntimeBuildError(f"runtime sources not found next to {package}; reinstall sparsec")


def sources_hash(root: Path) -> str:
    """Hash of everything that goes into a runtime build: CMakeLists.txt, runtime/, kernels_arm/ and these flags."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    files = [root / "CMakeLists.txt", *(p for d in ("runtime", "kernels_arm") for p in (root / d).rglob("*"))]
    for path in sorted(p for p in files if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def cmake_build(target: str, build_dir: Path, cmake_targets: list[str], options: dict[str, str] | None = None,
                notify: Notify | None = None) -> Path:
    """Configures and builds cmake_targets of the source tree for target ('host' or a cross target)."""
    build_dir = Path(build_dir)
    root = source_root()
    cache = {"CMAKE_BUILD_TYPE": "Release", "SPARSEC_PYTHON": "OFF", "CMAKE_MAKE_PROGRAM": _tool("ninja", "BIN_DIR", "ninja")}
    if target != "host":
        toolchain = find_toolchain(target, build_dir / "toolchain")
        cache.update(SPARSEC_NATIVE="OFF", **_CMAKE_SYSTEMS[target], **toolchain.cmake_options)
    cache.update(options or {})
    cmake = _tool("cmake", "CMAKE_BIN_DIR", "cmake")
    configure = [cmake, "-S", str(root), "-B", str(build_dir), "-G", "Ninja", *(f"-D{k}={v}" for k, v in cache.items())]
    _run_logged(configure, f"configuring the {target} build", notify)
    _run_logged([cmake, "--build", str(build_dir), "--target", *cmake_targets], f"building for {target}", notify)
    return build_dir


def _run_logged(command: list[str], what: str, notify: Notify | None) -> None:
    """Runs command, reporting ninja's [n/total] steps; on failure raises with the log's tail."""
    if notify:
        notify(what)
    tail: deque[str] = deque(maxlen=40)
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        for line in process.stdout:
            tail.append(line.rstrip())
            step = re.match(r"\[(\d+)/(\d+)\]", line)
            if notify and step:
                notify(f"{what} [{step[1]}/{step[2]}]")
    if process.returncode != 0:
        raise RuntimeBuildError(f"{what} failed (exit {process.returncode}):\n" + "\n".join(tail))


def cache_root() -> Path:
    return Path(os.environ.get("SPARSEC_RUNTIME_CACHE") or Path.home() / ".cache" / "sparsec" / "runtime")


def runtime_dir(target: str, notify: Notify | None = None, families=None) -> Path:
    """Directory holding target's runtime files, built once per target, version, toolchain, source hash and set of
    optional op families (None: all; else only these besides the core, see schema.OP_FAMILIES)."""
    from sparsec import __version__

    if target not in RUNTIMES:
        raise ToolchainError(f"no runtime build for target {target}; cross targets: {', '.join(CROSS_TARGETS)}")
    root = source_root()
    left_out = [] if families is None else [f for f in OP_FAMILIES if f not in set(families)]
    ops = "all" if not left_out else "+".join(f for f in OP_FAMILIES if f not in left_out) or "core"
    key = f"{target}-{__version__}-{find_toolchain(target).name}-{sources_hash(root)[:16]}-{ops}"
    final = cache_root() / key
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{key}."))
    try:
        runtime = RUNTIMES[target]
        defines = ";".join(f"{family_define(f)}=0" for f in left_out)
        build = cmake_build(target, work / "build", list(runtime.cmake_targets), {"SPARSEC_OP_DEFINES": defines},
                            notify)
        staged = work / "out"
        staged.mkdir()
        for name in runtime.built_files:
            shutil.copy2(build / name, staged)
        for relative in runtime.source_files:
            shutil.copy2(root / relative, staged)
        try:
            os.rename(staged, final)  # atomic: readers see a complete directory or none
        except OSError:
            if not final.is_dir():  # not a concurrent build that finished first
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final
