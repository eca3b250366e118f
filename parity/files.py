"""Writing files safely: atomically, and never over an existing file unless asked to."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


class OutputExistsError(FileExistsError):
    def __init__(self, path: Path):
        super().__init__(f"{path} already exists; pass --force to overwrite it")


def write_atomic(path: str | os.PathLike, data: bytes, force: bool = False) -> Path:
    """Write `data` to `path` through a temporary file in the same directory, then rename, so
    readers never see a partial file and a failure leaves nothing behind."""
    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
