"""The envelope around PyTorch float64 (report.TapResult): a badly conditioned deep network
passes, broken ports fail at their block; mixed precision; what the report records."""

import json

import numpy as np
import pytest
import torch

import parity
import resnet_spec as rs
import resnet_torch
from conftest import keras_model_of, ported
from parity.core.precision import PrecisionUnavailable, probe
from parity.testing import randomize_state_dict

pytestmark = pytest.mark.usefixtures("free_keras")  # conftest

BROKEN_BLOCK = "layer3.10"


def badly_conditioned(torch_model, seed=3):
    """Weights N(0, 1/fan_in) without randomize_torch's 1/sqrt(blocks) residual scaling, BatchNorm
    scales and variances from U[0.5, 1.5], means N(0, 0.2): the residual stream grows with depth
    and PyTorch float32 itself ends 5e-2 from float64 in resnest269."""
    state = randomize_state_dict(torch_model.state_dict(), seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, tensor in state.items():
            if key.endswith("running_var"):
                tensor.uniform_(0.5, 1.5, generator=g)
    return torch_model.eval()


@pytest.fixture(scope="module")
def resnest269():
    torch_model = badly_conditioned(resnet_torch.ResNet(rs.get("resnest269")))
    keras_model = parity.torch_to_keras(torch_model, keras_model_of(torch_model.spec))
    x = np.random.default_rng(0).standard_normal((2, 3, 71, 45)).astype(np.float32)
    return torch_model, keras_model, x


def test_badly_conditioned_resnest269_is_within_the_envelope(resnest269):
    torch_model, keras_model, x = resnest269
    report = parity.compare(torch_model, keras_model, x)
    assert report.ok, report.table()
    assert report.reference == "float64" and report.precision == "float32"
    # Float32 alone is far from the fixed bound here, which is why the envelope exists.
    assert max(r.torch_dev for r in report.rows) > 1e-3
    assert max(r.max_rel for r in report.rows) > 1e-3


def corrupt_statistic(keras_model):
    bn = keras_model.get_layer(f"{BROKEN_BLOCK}.bn3")
    saved = bn.moving_mean.numpy().copy()
    changed = saved.copy()
    changed[0] += 0.1  # one channel's running mean off by half its spread
    bn.moving_mean.assign(changed)
    return lambda: bn.moving_mean.assign(saved)


def transpose_kernel(keras_model):
    conv = keras_model.get_layer(f"{BROKEN_BLOCK}.conv2.conv")
    saved = conv.kernel.numpy().copy()
    conv.kernel.assign(np.transpose(saved, (1, 0, 2, 3)))  # HWIO read as WHIO
    return lambda: conv.kernel.assign(saved)


def shift_padding(keras_model):
    pad = keras_model.get_layer(f"{BROKEN_BLOCK}.conv2.conv_pad")
    saved = pad.padding
    pad.padding = ((0, 2), (0, 2))  # same size, but both pixels at the bottom/right
    return lambda: setattr(pad, "padding", saved)


@pytest.mark.parametrize("breakage", [corrupt_statistic, transpose_kernel, shift_padding])
def test_a_broken_port_leaves_the_envelope_at_its_block(resnest269, breakage):
    torch_model, keras_model, x = resnest269
    restore = breakage(keras_model)
    try:
        report = parity.compare(torch_model, keras_model, x)
    finally:
        restore()
    assert not report.ok
    assert report.first_divergence == BROKEN_BLOCK
    names = [r.name for r in report.rows]
    assert all(r.ok for r in report.rows[: names.index(BROKEN_BLOCK)])
    broken = report.rows[names.index(BROKEN_BLOCK)]
    assert broken.keras_dev > 10 * broken.multiple * broken.torch_dev, report.table()
    assert f"first divergence at {BROKEN_BLOCK}" in report.table()


@pytest.mark.parametrize("name", ["resnet50", "resnext50_32x4d", "resnest50"])
def test_bfloat16_is_within_the_envelope(name):
    torch_model, keras_model = ported(name, seed=11, policy="mixed_bfloat16")
    x = np.random.default_rng(1).standard_normal((2, 3, 67, 61)).astype(np.float32)
    report = parity.compare(torch_model, keras_model, x, precision="bfloat16")
    assert report.ok, report.table()
    # Half precision really ran: both sides are bfloat16-far from float64, about alike.
    output = report.rows[-1]
    assert output.name == "output" and 1e-4 < output.torch_dev < 1e-1 and 1e-4 < output.keras_dev < 1e-1


def test_float16_is_within_the_envelope_where_the_cpu_computes_it():
    try:
        probe("float16")
    except PrecisionUnavailable as e:
        pytest.skip(str(e))
    torch_model, keras_model = ported("resnet20", seed=12, policy="mixed_float16")
    x = np.random.default_rng(2).standard_normal((2, 3, 33, 31)).astype(np.float32)
    report = parity.compare(torch_model, keras_model, x, precision="float16")
    assert report.ok, report.table()


def test_mixed_precision_builds_its_own_keras_model_and_needs_the_reference():
    torch_model, keras_model = ported("resnet20", seed=13)  # float32 Keras model
    x = np.random.default_rng(3).standard_normal((2, 3, 32, 32)).astype(np.float32)
    report = parity.compare(torch_model, keras_model, x, precision="bfloat16")
    assert report.ok, report.table()
    assert keras_model.dtype_policy.name == "float32"  # the caller's model is untouched
    with pytest.raises(ValueError, match="reference"):
        parity.compare(torch_model, keras_model, x, precision="bfloat16", reference=False)
    with pytest.raises(ValueError, match="precision"):
        parity.compare(torch_model, keras_model, x, precision="float8")


def test_report_records_precision_devices_and_tf32():
    torch_model, keras_model = ported("resnet20", seed=8)
    x = np.random.default_rng(4).standard_normal((3, 3, 32, 32)).astype(np.float32)
    before = torch.backends.cuda.matmul.allow_tf32
    data = json.loads(parity.compare(torch_model, keras_model, x, allow_tf32=True).to_json())
    assert torch.backends.cuda.matmul.allow_tf32 == before  # restored after the comparison
    assert data["precision"] == "float32" and data["reference"] == "float64" and data["envelope_multiple"] == 4.0
    env = data["environment"]
    assert env["tf32"]["allowed"] is True and env["tf32"]["torch_matmul"] is True
    assert env["devices"]["torch"] == "cpu" and env["devices"]["keras"]
    for row in data["rows"]:
        assert row["keras_dev"] <= row["bound"] and row["ok"] and row["torch_dev"] >= 0

    data = parity.compare(torch_model, keras_model, x, reference=False).to_dict()
    assert data["environment"]["tf32"] == {**data["environment"]["tf32"], "allowed": False, "torch_matmul": False,
                                           "torch_cudnn": False}
    assert data["reference"] is None and all(r["torch_dev"] is None for r in data["rows"])
