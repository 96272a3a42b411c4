"""Writing a command's output files: all together or none, each whole, with the usual file mode. Needs no onnx."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from sparsec.errors import OutputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _missing_dirs(directory: Path) -> list[Path]:
    """directory and its ancestors that do not exist yet, outermost first; refuses a file in the way."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    if not directory.is_dir():
        raise OutputError(f"cannot write into {missing[-1] if missing else directory}: {directory} is a file, "
                          "not a directory")
    return missing[::-1]


def _stage(path: Path, content: bytes | Path, umask: int) -> Path:
    """A temporary beside path holding content (bytes, or a file to copy), with the usual file mode."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    executable = isinstance(content, Path) and os.access(content, os.X_OK)
    try:
        os.fchmod(fd, (0o777 if executable else 0o666) & ~umask)  # mkstemp's 0600 would hide files from web servers
        with os.fdopen(fd, "wb") as f:
            if isinstance(content, Path):
                with open(content, "rb") as source:
                    shutil.copyfileobj(source, f)
            else:
                f.write(content)
    except BaseException:
        os.unlink(tmp)
        raise
    return Path(tmp)


def write_outputs(files: dict[Path, bytes | Path]) -> None:
    """All of a command's output files appear together or none does, each whole: every file is first written to a
    temporary beside it, then all are renamed into place. On any failure the temporaries (and directories made
    for them) are removed and files that were there before are as they were."""
    umask = _umask()
    made, staged, backups, placed = [], {}, {}, []
    try:
        for path in files:
            for directory in _missing_dirs(path.parent):
                directory.mkdir()
                made.append(directory)
        for path, content in files.items():
            if path.is_dir():
                raise OutputError(f"cannot write {path}: a directory is in the way")
            staged[path] = _stage(path, content, umask)
            if path.exists():
                backups[path] = Path(f"{staged[path]}.old")
                try:
                    os.link(path, backups[path])  # a second name for the old file, to put back on failure
                except OSError:  # a file system without hard links
                    shutil.copy2(path, backups[path])
        for path, tmp in staged.items():
            os.replace(tmp, path)
            placed.append(path)
    except BaseException as e:
        for path in placed:
            if path in backups:
                os.replace(backups[path], path)
            else:
                path.unlink()
        for tmp in [*staged.values(), *backups.values()]:
            tmp.unlink(missing_ok=True)
        for directory in reversed(made):
            directory.rmdir()
        if isinstance(e, OSError):
            raise OutputError(f"cannot write {e.filename or next(iter(files))}: {e.strerror}") from None
        raise
    for backup in backups.values():
        backup.unlink()
