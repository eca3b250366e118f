"""The CIFAR-10 tutorial notebook's network, written here as the notebook writes it (its own
nn.Module, its own names), against our cifar10_notebook variant: its state_dict loads strictly
into resnet_torch, and its checkpoint converts to a .keras file that a process without torch runs."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import parity
import resnet_torch
from parity.files import keras_io
from parity.testing import randomize_state_dict

pytestmark = pytest.mark.usefixtures("free_keras")  # conftest


class Residual(nn.Module):
    """The notebook's residual block: ReLU after both BatchNorms, a 1x1 conv with a bias as the
    projection, a ReLU after the sum."""

    def __init__(self, c_in, c_out, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv3 = nn.Conv2d(c_in, c_out, 1, stride) if stride != 1 or c_in != c_out else None

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        if self.conv3 is not None:
            x = self.conv3(x)
        return F.relu(x + out)


class NotebookNet(nn.Module):
    """Trained at 96x96: an unpadded 7x7/2 conv, an unpadded 3x3/2 max pool, four stages of two
    blocks, a 3x3 average pool, then the classifier on the flattened map."""

    def __init__(self, classes=10):
        super().__init__()
        self.block1 = nn.Conv2d(3, 64, 7, 2)
        self.block2 = nn.Sequential(nn.MaxPool2d(3, 2), Residual(64, 64), Residual(64, 64))
        self.block3 = nn.Sequential(Residual(64, 128, 2), Residual(128, 128))
        self.block4 = nn.Sequential(Residual(128, 256, 2), Residual(256, 256))
        self.block5 = nn.Sequential(Residual(256, 512, 2), Residual(512, 512), nn.AvgPool2d(3))
        self.classifier = nn.Linear(512, classes)

    def features(self, x):
        x = self.block4(self.block3(self.block2(self.block1(x))))
        return self.block5[1](self.block5[0](x))

    def forward(self, x):
        return self.classifier(torch.flatten(self.block5[2](self.features(x)), 1))


@pytest.fixture(scope="module")
def notebook():
    net = NotebookNet()
    net.load_state_dict(randomize_state_dict(net.state_dict(), seed=11))
    return net.eval()


def test_its_state_dict_loads_strictly_and_computes_the_same(notebook):
    ours = resnet_torch.create_model("cifar10_notebook").eval()
    ours.load_state_dict(notebook.state_dict(), strict=True)
    assert list(ours.state_dict()) == list(notebook.state_dict())  # same keys, same order
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        expected = notebook(x)
        assert expected.abs().max() > 0.1
        torch.testing.assert_close(ours(x), expected, rtol=1e-5, atol=1e-5)
        # The backbone at odd, even and non-square sizes (the classifier takes 96x96 only).
        backbone = resnet_torch.create_model("cifar10_notebook", include_top=False, pooling=None).eval()
        backbone.load_state_dict({k: v for k, v in notebook.state_dict().items()
                                  if not k.startswith("classifier.")}, strict=True)
        for size in [(97, 101), (64, 64), (81, 81)]:
            x = torch.randn(2, 3, *size)
            torch.testing.assert_close(backbone(x), notebook.features(x), rtol=1e-5, atol=1e-5)
        with pytest.raises(ValueError, match=r"\(N, 3, 96, 96\)"):
            ours(torch.randn(1, 3, 97, 96))


RUN_WITHOUT_TORCH = textwrap.dedent("""
    import sys
    import numpy as np
    import keras
    import resnet_tf  # noqa: F401  (registers our layers for the .keras file)
    model = keras.saving.load_model(sys.argv[1])
    x = np.load(sys.argv[2])
    y = keras.ops.convert_to_numpy(model(x.transpose(0, 2, 3, 1), training=False))
    np.save(sys.argv[3], y)
    print("torch loaded" if "torch" in sys.modules else "no torch", model.name)
""")


def test_its_checkpoint_converts_to_a_keras_file_that_runs_without_torch(notebook, tmp_path):
    src, dst = tmp_path / "notebook.pth", tmp_path / "notebook.keras"
    torch.save(notebook.state_dict(), src)  # as the notebook saves it
    result = parity.convert_file(src, dst)
    assert result.spec.name == "cifar10_notebook" and result.inferred
    assert result.report.ok, result.report.table()
    # The file records what the weights expect: the notebook's transforms.Normalize(0.5, 0.5).
    record = keras_io.read_record(dst)["preprocessing"]
    assert (record["name"], record["mean"], record["std"], record["bgr"]) == ("half", [0.5] * 3, [0.5] * 3, False)
    x = np.random.default_rng(2).standard_normal((2, 3, 96, 96)).astype(np.float32)
    with torch.no_grad():
        expected = notebook(torch.from_numpy(x)).numpy()
    np.save(tmp_path / "x.npy", x)
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    out = subprocess.run([sys.executable, "-c", RUN_WITHOUT_TORCH, str(dst), str(tmp_path / "x.npy"),
                          str(tmp_path / "y.npy")], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[:2] == ["no", "torch"], out.stdout
    y = np.load(tmp_path / "y.npy")
    assert np.abs(y - expected).max() <= 1e-5 * max(1.0, np.abs(expected).max())
