"""Keras-side names: the plan's names (PyTorch's), except where a Keras backend refuses them.

Keras on PyTorch registers every variable as a torch parameter named "<layer>/<variable>", and
torch refuses "." in parameter names; there the dots become "_". Plan names never contain "_"
next to a dot-separated part that could collide (tests build every variant on every backend).
"""

from __future__ import annotations

KERAS_BACKENDS = ("tensorflow", "jax", "torch")


def keras_name(name: str, backend: str) -> str:
    """The Keras layer name for the plan name `name` on the Keras `backend`."""
    if backend not in KERAS_BACKENDS:
        raise ValueError(f"backend: got {backend!r}, expected one of {KERAS_BACKENDS}")
    return name.replace(".", "_") if backend == "torch" else name
