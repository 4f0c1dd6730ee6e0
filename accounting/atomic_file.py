"""Replacing a file atomically: a reader (another worker or process sharing the folder) sees the old file or the
new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import tempfile


def write_atomically(path: str, data: bytes) -> None:
    """Replace the file at ``path`` with ``data``: a temporary file in the same folder (created if missing),
    flushed to disk, renamed over ``path``, then the folder synced where the filesystem allows (raises
    ``OSError``)."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    # the rename itself durable, where the filesystem lets a folder be synced
    with contextlib.suppress(OSError):
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
