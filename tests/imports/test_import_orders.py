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

The LiteRT interpreter (ai_edge_litert, which parity.apps.export loads to check .tflite files)
bundles a TFLite runtime of its own beside TensorFlow's: on TensorFlow, it is imported before and
after TensorFlow alone, and at either end of the full order (which holds torch's and jaxlib's
native libraries too).
"""

import itertools

import pytest

import resnet_spec as rs
from conftest import import_order_failures

MODULES = ["torch", "tensorflow", "keras", "jax", "resnet_torch", "resnet_tf", "parity"]
OURS = ["resnet_torch", "resnet_tf", "parity"]
LITERT = "ai_edge_litert.interpreter"


def orders(backend: str) -> list[list[str]]:
    if backend == "tensorflow":
        cases = [list(pair) for pair in itertools.permutations(MODULES, 2)] + [MODULES, MODULES[::-1]]
        return cases + [[LITERT, "tensorflow"], ["tensorflow", LITERT], [LITERT, *MODULES], [*MODULES, LITERT]]
    others = ["torch", "keras", "jax"]
    cases = [[a, b] for ours in OURS for other in others for a, b in ((ours, other), (other, ours))]
    full = OURS + others
    cases += [full, full[::-1]]
    if backend == "torch":
        cases += [[builder, "tensorflow"] for builder in ("resnet_torch", "resnet_tf")] + [full + ["tensorflow"]]
    return cases


@pytest.mark.parametrize("backend", rs.KERAS_BACKENDS)
def test_import_orders_work_and_both_frameworks_run(backend):
    cases = orders(backend)
    assert len(cases) == {"tensorflow": 48, "jax": 20, "torch": 23}[backend]
    failures = import_order_failures(cases, backend)
    assert not failures, "\n".join(failures)
