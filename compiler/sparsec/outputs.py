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
    current = next(iter(files))  # the output being worked on, for the message
    try:
        for current in files:
            for directory in _missing_dirs(current.parent):
                directory.mkdir()
                made.append(directory)
        for current, content in files.items():
            if current.is_dir():
                raise OutputError(f"cannot write {current}: a directory is in the way")
            staged[current] = _stage(current, content, umask)
            if current.exists():
                backups[current] = Path(f"{staged[current]}.old")
                try:
                    os.link(current, backups[current])  # a second name for the old file, to put back on failure
                except OSError:  # a file system without hard links
                    shutil.copy2(current, backups[current])
        for current, tmp in staged.items():
            os.replace(tmp, current)
            placed.append(current)
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
            raise OutputError(f"cannot write {current}: {e.strerror}") from None
        raise
    for backup in backups.values():
        backup.unlink()
