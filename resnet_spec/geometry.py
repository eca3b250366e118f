"""Output sizes of convolutions and pools, by PyTorch's rules: the one formula every part uses
(the spec's cost model, the plan's size check, the Keras layers' shapes)."""

from __future__ import annotations

from .steps import Conv, GlobalPool, Pool, SplitAttention, ZeroPadShortcut


def output_length(n, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1,
                  ceil_mode: bool = False, minimum=min):
    """Output length along one axis of input length `n` (an int, or a backend integer tensor
    with `minimum` that backend's elementwise minimum).

    Floor mode: floor((n + 2p - d(k - 1) - 1) / s) + 1. Ceil mode rounds up, but PyTorch drops
    a last window that would start in the right padding; as the padding is at most half the
    kernel, that is the same as never exceeding ceil((n + p) / s) windows.
    """
    span = n + 2 * padding - dilation * (kernel - 1) - 1
    if not ceil_mode:
        return span // stride + 1
    return minimum(-(-span // stride) + 1, -(-(n + padding) // stride))


def output_size(step, size: tuple[int, int]) -> tuple[int, int]:
    """Spatial size (H, W) after one plan step."""
    if isinstance(step, Conv):
        return tuple(output_length(n, step.kernel_size, step.stride, step.padding, step.dilation) for n in size)
    if isinstance(step, Pool):
        return tuple(output_length(n, step.kernel_size, step.stride, step.padding, ceil_mode=step.ceil_mode)
                     for n in size)
    if isinstance(step, ZeroPadShortcut):
        return tuple(output_length(n, 1, step.stride) for n in size)
    if isinstance(step, SplitAttention):
        return sequence_output_size(step.splits, size)
    if isinstance(step, GlobalPool):
        return (1, 1)
    return size


def sequence_output_size(steps, size: tuple[int, int]) -> tuple[int, int]:
    for step in steps:
        size = output_size(step, size)
    return size
