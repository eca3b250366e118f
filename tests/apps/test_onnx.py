"""ONNX export from both frameworks at a fixed size (--size), run in ONNX Runtime at batch sizes
other than the traced one, against PyTorch models built and randomised here (the reference), not
against parity. tests/apps/test_export.py has the dynamic sizes and the other formats."""

import subprocess

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch


import parity  # noqa: E402
import resnet_torch  # noqa: E402
from parity.testing import randomize_torch  # noqa: E402

from conftest import CLI_SCRIPT as SCRIPT  # noqa: E402
from parity.core.metrics import relative_error  # noqa: E402


pytestmark = pytest.mark.usefixtures("free_keras")  # conftest


# resnet20: option A shortcuts (strided slicing, channel padding); resnet18d: deep stem and
# avg-down shortcuts (average pooling with ceil_mode and count_include_pad=False), at odd sizes.
@pytest.mark.parametrize("framework", ["torch", "keras"])
@pytest.mark.parametrize("name, size", [("resnet20", (33, 31)), ("resnet18d", (45, 38))])
def test_onnx_from_either_framework_agrees_with_both_at_a_dynamic_batch(tmp_path, framework, name, size):
    dst = tmp_path / f"{name}.onnx"
    result = parity.export_onnx(name, dst, framework=framework, size=size, seed=3)
    assert result.report.ok, result.report.table()
    rows = {r.name for r in result.report.rows}
    assert rows == {f"vs {ref}, batch {b}, {size[0]}x{size[1]}" for ref in ("torch", "keras") for b in (1, 3)}
    assert [p.name for p in tmp_path.iterdir()] == [dst.name]

    model = onnx.load(dst)
    onnx.checker.check_model(model, full_check=True)
    batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param == "batch" and not batch_dim.HasField("dim_value")
    # --size fixes height and width: the only free axis is the batch.
    spatial = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim][1:]
    assert spatial == ([3, *size] if framework == "torch" else [*size, 3])

    # The reference: the same seeded network, built here; a batch of 5 was never traced.
    reference = randomize_torch(resnet_torch.create_model(name), seed=3).eval()
    x = np.random.default_rng(7).standard_normal((5, 3, *size)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    session = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    feed = x if framework == "torch" else np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    got = session.run(None, {session.get_inputs()[0].name: feed})[0]
    assert got.shape == expected.shape
    assert relative_error(expected, got) <= 1e-5
    assert (expected.argmax(1) == got.argmax(1)).all()


def test_cli_exports_a_keras_file_and_never_overwrites(tmp_path):
    source = randomize_torch(resnet_torch.resnet20(), seed=4).eval()
    keras_file = tmp_path / "resnet20.keras"
    parity.torch_to_keras(source).save(keras_file)
    dst = tmp_path / "resnet20.onnx"
    run = subprocess.run([SCRIPT, "export-onnx", keras_file, dst, "--framework", "keras", "--size", "32", "32"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "vs torch, batch 3" in run.stdout and "PASS" in run.stdout and "NHWC" in run.stdout

    x = np.random.default_rng(8).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = source(torch.from_numpy(x)).numpy()
    session = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": np.ascontiguousarray(x.transpose(0, 2, 3, 1))})[0]
    assert relative_error(expected, got) <= 1e-5

    before = dst.read_bytes()
    again = subprocess.run([SCRIPT, "export-onnx", "resnet20", dst], capture_output=True, text=True)
    assert again.returncode == 2 and "--force" in again.stderr and "Traceback" not in again.stderr
    assert dst.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resnet20.keras", "resnet20.onnx"]


def test_an_unknown_source_is_an_error(tmp_path):
    with pytest.raises(parity.CheckpointError, match="neither a file nor a known architecture.*resnet50"):
        parity.export_onnx("resnt50", tmp_path / "x.onnx")
    assert not list(tmp_path.iterdir())
