"""The errors of reading a file: expected problems with the user's input, each one paragraph."""

from __future__ import annotations


class CheckpointError(ValueError):
    """An expected problem with an input file: printed as one paragraph, no traceback."""


class UnsafeCheckpointError(CheckpointError):
    """The file's pickle would construct something other than tensors and containers."""


def shorten(text, limit: int = 300) -> str:
    """`text` on one line, cut to `limit` characters: a library's error inside our message."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
