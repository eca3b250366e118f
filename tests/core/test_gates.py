"""ReLU gates decided by rounding (parity.core.gates): each float32 run of a train step is held
to a float64 step that takes that run's gates where float64's input is within PyTorch's own
rounding of zero, and nowhere else."""

import numpy as np
import pytest
import torch

import parity
from conftest import ported
from parity.core import gates

pytestmark = pytest.mark.usefixtures("free_keras")  # conftest


def test_only_gates_within_pytorchs_rounding_are_followed():
    x64 = np.array([[-1.0, 2e-7, -2e-7, 0.5, -3e-6]])  # float64 ReLU inputs, one map
    relu = np.maximum(x64, 0)
    pytorch = [{"r": relu + np.array([[0, 1e-7, 0, 1e-7, 0]])}, {"r": relu}]  # largest deviation 1e-7
    # The run: shut at 2e-7 and open at -2e-7 (within 4 x 1e-7), open at -1 and at -3e-6 (not).
    run = {"r": np.array([[0.3, 0.0, 1e-7, 0.5, 1e-6]])}
    followed = gates.decided_by_rounding({"r": x64}, pytorch, run)
    index, open_ = followed["r"]
    assert index.tolist() == [1, 2] and open_.tolist() == [False, True]
    assert gates.count(followed) == 2
    assert gates.decided_by_rounding({"r": x64}, pytorch, {"r": relu}) == {}


def test_a_followed_relu_passes_the_gradient_exactly_where_its_gate_is_open():
    x = torch.tensor([[-1.0, 2e-7, -2e-7, 0.5]], dtype=torch.float64, requires_grad=True)
    y = gates.FollowedReLU(np.array([1, 2]), np.array([False, True]))(x)
    y.sum().backward()
    assert x.grad.tolist() == [[0.0, 0.0, 1.0, 1.0]]
    assert y.tolist() == [[0.0, 0.0, -2e-7, 0.5]]  # x times its gate


def test_a_broken_port_still_fails_the_float32_train_step_at_its_block():
    # One BatchNorm shift of a tenth of its channel's spread moves many ReLU inputs far beyond
    # rounding: their flipped gates are not followed, and the block fails forward and backward.
    torch_model, keras_model = ported("resnet18", seed=8)
    bn = keras_model.get_layer("layer2.1.bn1")
    saved = bn.beta.numpy().copy()
    shifted = saved.copy()
    shifted[0] += 0.1
    bn.beta.assign(shifted)
    try:
        x = np.random.default_rng(1).standard_normal((3, 3, 67, 61)).astype(np.float32)
        report = parity.compare(torch_model, keras_model, x, mode="train")
    finally:
        bn.beta.assign(saved)
    assert report.precision == "float32" and not report.ok
    assert report.first_divergence == "layer2.1"
    failing = {r.name for r in report.rows if not r.ok}
    assert "layer2.1.bn1.bias" in failing and "layer1.0.conv1.weight" in failing  # the gradients, upstream too
    assert report.followed_gates["keras"] < 10  # rounding's handful at most; the shift's own flips are not taken
