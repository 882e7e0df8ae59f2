"""The one atomic writer for every output: write a temporary file beside the target, then rename.

An existing output is never replaced by a partial or failed one, and a reader never sees a
half-written file. The temporary file is created like ``open(path, "w")`` creates a file
(mode ``0o666`` minus the umask), so the output gets the permissions any plain write would give
(``tempfile.mkstemp`` would make it ``0600``, unreadable to other users, web servers, containers).
"""
from __future__ import annotations

import os
import secrets
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_write", "write_bytes_atomic", "write_text_atomic"]


@contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path`` (same suffix, so writers that pick a format by
    extension work); on success rename it to ``path``, on failure delete it.

    The result has the mode a plain ``open(path, "w")`` gives, even when the writer replaced the
    temporary file with one of its own (safetensors writes ``0600`` files)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"output {path} is a directory; expected a file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for open()
        except FileExistsError:
            continue
        os.close(fd)
        break
    mode = stat.S_IMODE(tmp.stat().st_mode)  # 0o666 minus the umask
    try:
        yield tmp
        if stat.S_IMODE(tmp.stat().st_mode) != mode:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    with atomic_write(path) as tmp:
        tmp.write_text(text)
    return Path(path)
