"""The options that say how to read a PyTorch checkpoint, the same for every command that takes
one (convert, export, predict); the one loader (parity.files.loading) takes them all."""

from __future__ import annotations


def add_reading_arguments(p) -> None:
    """--key and --prefix: where in the file the weights are, and under which names."""
    p.add_argument("--key", metavar="KEY", help="the checkpoint entry holding the weights where several could be "
                   "(e.g. state_dict_ema; a nested one as a path, ema/model)")
    p.add_argument("--prefix", metavar="PREFIX", help="take the tensors whose names start with PREFIX (e.g. "
                   "backbone.), stripped; '' keeps the names as they are (default: strip a prefix every key shares)")
