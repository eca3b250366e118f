"""Writing files safely: atomically, and never over an existing file unless asked to.

Every output goes to a temporary file in the destination's own directory (so the final rename
stays on one file system and is atomic), then takes its name. Readers never see a partial
file, and a failure at any point, a crash of the writer included, leaves at most a hidden
`.NAME.*.tmp...` file, never a file under the destination's name.

Outputs that are directories (a TensorFlow SavedModel) are written the same way: into a
temporary directory beside the destination, which then takes its name by one rename.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

# Compound suffixes that writers (Keras above all) recognise only as a whole.
COMPOUND_SUFFIXES = (".weights.h5",)


class OutputExistsError(FileExistsError):
    def __init__(self, path: Path):
        super().__init__(f"{path} already exists; pass --force to overwrite it")


class OutputPathError(OSError):
    """The destination cannot be written: its directory is missing, or it is a directory."""


def full_suffix(path: str | os.PathLike) -> str:
    """The suffix a writer keys on: ".weights.h5" rather than ".h5", else the last suffix."""
    name = Path(path).name
    return next((s for s in COMPOUND_SUFFIXES if name.endswith(s)), Path(path).suffix)


def check_destination(path: str | os.PathLike, force: bool = False, directory: bool = False) -> Path:
    """Fail early, before any work, if `path` cannot or must not be written (as a file, or as
    a directory where `directory`)."""
    path = Path(path)
    if path.is_dir() and not directory:
        raise OutputPathError(f"{path} is a directory; expected a file name")
    if path.exists() and not force:
        raise OutputExistsError(path)
    if not path.parent.is_dir():
        raise OutputPathError(f"cannot write {path}: directory {path.parent} does not exist")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`, with the same (full) suffix so that writers like
    keras' `model.save` accept it; when the block succeeds, the file takes `path`'s name.

    If the block raises, the temporary file is removed and `path` is untouched. Without
    `force`, a file that appeared at `path` in the meantime is not overwritten either (the
    final step links rather than replaces where the file system allows it)."""
    path = check_destination(path, force)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{full_suffix(path)}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # writers create the file themselves (some refuse an existing one)
    try:
        yield tmp
        if not tmp.is_file():
            raise OutputPathError(f"nothing was written for {path}")
        _publish(tmp, path, force)
    finally:
        tmp.unlink(missing_ok=True)


def _publish(tmp: Path, path: Path, force: bool) -> None:
    if force:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # atomic, and fails rather than overwrite
    except FileExistsError:
        raise OutputExistsError(path) from None
    except OSError:  # no hard links here: check, then rename (a small window, but no partial file)
        if path.exists():
            raise OutputExistsError(path) from None
        os.replace(tmp, path)


def write_atomic(path: str | os.PathLike, data: bytes, force: bool = False) -> Path:
    """Write `data` to `path` through a temporary file in the same directory, then rename, so
    readers never see a partial file and a failure leaves nothing behind."""
    with atomic_path(path, force) as tmp:
        tmp.write_bytes(data)
    return Path(path)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a path for a new directory beside `path` (not yet created: writers such as
    tf.saved_model.save make it themselves); when the block succeeds, it takes `path`'s name
    by one rename.

    If the block raises, the temporary directory is removed and `path` is untouched. Without
    `force` an existing `path` is never replaced. With `force`, the old output is first moved
    aside, then removed once the new one is in place (restored if the rename fails)."""
    path = check_destination(path, force, directory=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp.rmdir()
    try:
        yield tmp
        if not tmp.is_dir():
            raise OutputPathError(f"nothing was written for {path}")
        _publish_directory(tmp, path, force)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _publish_directory(tmp: Path, path: Path, force: bool) -> None:
    if not (path.exists() or path.is_symlink()):
        # rename() would replace an empty directory that appeared since the check above; a
        # non-empty one or a file makes it fail, and nothing is lost either way.
        os.rename(tmp, path)
        return
    if not force:
        raise OutputExistsError(path)
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
    aside = old / path.name
    os.rename(path, aside)
    try:
        os.rename(tmp, path)
    except OSError:
        os.rename(aside, path)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)  # the old output, or nothing once restored
