"""One data-parallel step with 2 CPU workers equals one single-process step on the combined batch:
PyTorch DistributedDataParallel (gloo, synchronised BatchNorm), TensorFlow's MirroredStrategy
over 2 logical CPU devices, and keras.distribution.DataParallel on JAX over 2 host devices."""

import copy

import numpy as np
import pytest
import torch

import resnet_torch
from parity.apps import distributed
from parity.testing import randomize_torch

# Odd, non-square images; 3 per worker.
BATCH, SIZE = 6, (33, 31)


@pytest.fixture(scope="module")
def start():
    model = randomize_torch(resnet_torch.create_model("resnet20"), seed=11)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((BATCH, 3, *SIZE)).astype(np.float32)
    y = rng.integers(0, 10, BATCH)
    return model, x, y


def single_step(model, x, y):
    """The reference: plain BatchNorm, one process, the whole batch."""
    reference = copy.deepcopy(model)
    loss = distributed.torch_sgd_step(reference, x, y)
    return {k: v.numpy() for k, v in reference.state_dict().items()}, loss


def test_ddp_step_with_sync_batchnorm_equals_the_combined_batch_step(start):
    model, x, y = start
    reference, reference_loss = single_step(model, x, y)
    state, loss = distributed.torch_ddp_step("resnet20", model.state_dict(), x, y, world_size=2)
    assert loss == pytest.approx(reference_loss, rel=1e-6)
    error, where = distributed.max_relative_difference(reference, {k: v.numpy() for k, v in state.items()})
    assert error <= distributed.DP_TOLERANCE, f"{where}: {error:.2e}"
    # The step did something the comparison can see: weights and statistics moved.
    moved, _ = distributed.max_relative_difference(reference, {k: v.numpy() for k, v in model.state_dict().items()})
    assert moved > 100 * distributed.DP_TOLERANCE


def test_gloo_sync_batchnorm_is_plain_batchnorm_outside_distributed(start):
    model, x, _ = start
    converted = distributed.convert_sync_batchnorm(copy.deepcopy(model))
    assert not any(type(m) is torch.nn.BatchNorm2d for m in converted.modules())
    assert converted.state_dict().keys() == model.state_dict().keys()
    with torch.no_grad():
        for mode in ("train", "eval"):
            a, b = copy.deepcopy(model), copy.deepcopy(converted)
            getattr(a, mode)(), getattr(b, mode)()
            torch.testing.assert_close(b(torch.from_numpy(x)), a(torch.from_numpy(x)), rtol=0, atol=1e-6)


def test_mirrored_strategy_step_equals_the_combined_batch_step(start):
    model, x, y = start
    results = distributed.keras_mirrored_step("resnet20", model.state_dict(), x, y, replicas=2)
    single, single_loss = results["single"]
    mirrored, mirrored_loss = results["mirrored"]
    assert mirrored_loss == pytest.approx(single_loss, rel=1e-6)
    error, where = distributed.max_relative_difference(single, mirrored)
    assert error <= distributed.DP_TOLERANCE, f"{where}: {error:.2e}"
    # Without synchronised BatchNorm each replica normalises with its own 3 images: not equal.
    unsync, _ = results["mirrored_unsynchronised"]
    assert distributed.max_relative_difference(single, unsync)[0] > 100 * distributed.DP_TOLERANCE
    # And the Keras single-device step is PyTorch's (float32 train-mode parity).
    torch_reference, torch_loss = single_step(model, x, y)
    assert single_loss == pytest.approx(torch_loss, rel=1e-5)
    error, where = distributed.max_relative_difference(torch_reference, single)
    assert error <= 1e-5, f"{where}: {error:.2e}"


def test_jax_data_parallel_step_equals_the_combined_batch_step(start):
    model, x, y = start
    results = distributed.keras_data_parallel_step("resnet20", model.state_dict(), x, y, devices=2)
    assert results["devices"] == 2  # the batch really was split over two devices
    single, single_loss = results["single"]
    parallel, parallel_loss = results["data_parallel"]
    assert parallel_loss == pytest.approx(single_loss, rel=1e-6)
    error, where = distributed.max_relative_difference(single, parallel)
    assert error <= distributed.DP_TOLERANCE, f"{where}: {error:.2e}"
    # Equal to the combined-batch step, so BatchNorm normalised with the global batch's statistics
    # (per-device ones miss it by far more: see the unsynchronised MirroredStrategy step). And the
    # JAX single-device step is PyTorch's.
    torch_reference, torch_loss = single_step(model, x, y)
    assert single_loss == pytest.approx(torch_loss, rel=1e-5)
    error, where = distributed.max_relative_difference(torch_reference, parallel)
    assert error <= 1e-5, f"{where}: {error:.2e}"
