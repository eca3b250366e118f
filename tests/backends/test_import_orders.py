"""No import order of the frameworks and our packages crashes the process (DESIGN.md).

triton (loaded by resnet_torch), TensorFlow's XLA and jaxlib each bundle LLVM; imported in the
wrong order they used to end in a segmentation fault. Each order runs in a fresh process that
then runs both frameworks. On TensorFlow, Keras' default backend: every pair of modules in both
orders and both full orders. On JAX and PyTorch: each of our packages before and after each
framework, and both full orders.

On Keras' PyTorch backend `import tensorflow` itself imports Keras, and so torch._dynamo and
triton, after TensorFlow's LLVM: that crashes inside TensorFlow's own import, before any module
of ours runs. There, tensorflow is imported after resnet_torch or resnet_tf, which load triton
first (`import parity` alone loads no framework, so it cannot).
"""

import itertools

import keras

from conftest import import_order_failures

BACKEND = keras.backend.backend()
MODULES = ["torch", "tensorflow", "keras", "jax", "resnet_torch", "resnet_tf", "parity"]
OURS = ["resnet_torch", "resnet_tf", "parity"]


def orders() -> list[list[str]]:
    if BACKEND == "tensorflow":
        return [list(pair) for pair in itertools.permutations(MODULES, 2)] + [MODULES, MODULES[::-1]]
    others = ["torch", "keras", "jax"]
    cases = [[a, b] for ours in OURS for other in others for a, b in ((ours, other), (other, ours))]
    full = OURS + others
    cases += [full, full[::-1]]
    if BACKEND == "torch":
        cases += [[builder, "tensorflow"] for builder in ("resnet_torch", "resnet_tf")] + [full + ["tensorflow"]]
    return cases


def test_import_orders_work_and_both_frameworks_run():
    cases = orders()
    assert len(cases) == {"tensorflow": 44, "jax": 20, "torch": 23}[BACKEND]
    failures = import_order_failures(cases, BACKEND)
    assert not failures, "\n".join(failures)
