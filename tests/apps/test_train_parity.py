"""train-parity: the same network trained in both frameworks on the same digit batches."""

import numpy as np
import torch
from sklearn.datasets import load_digits

from parity import cli  # noqa: E402
from parity.apps import train_parity as tp  # noqa: E402


def test_digits_are_the_real_data_set_upsampled():
    data = tp.digits(seed=0)
    raw = load_digits()
    assert sorted(np.concatenate([data.index_train, data.index_test])) == list(range(len(raw.target)))
    assert np.array_equal(data.y_test, raw.target[data.index_test]) and set(data.y_test) == set(range(10))
    # Reference: PyTorch's bilinear upsampling of the 8x8 originals, standardised with the
    # training images' mean and spread; grey repeated into three channels.
    up = torch.nn.functional.interpolate(torch.from_numpy(raw.images / 16.0)[:, None], size=(32, 32),
                                         mode="bilinear", align_corners=False).numpy()
    mean, std = up[data.index_train].mean(), up[data.index_train].std()
    for x, index in ((data.x_train, data.index_train), (data.x_test, data.index_test)):
        assert x.shape == (len(index), 3, 32, 32) and x.dtype == np.float32
        np.testing.assert_allclose(x, np.repeat((up[index] - mean) / std, 3, axis=1), rtol=0, atol=1e-5)


def test_batches_cover_each_epoch_once():
    idx = list(tp.batch_indices(100, 30, steps=6, seed=0))
    assert all(len(i) == 30 for i in idx)
    first, second = np.concatenate(idx[:3]), np.concatenate(idx[3:])
    assert len(set(first)) == 90 and len(set(second)) == 90 and not np.array_equal(first, second)


def test_resnet20_trains_the_same_in_both_frameworks(tmp_path, capsys):
    plot = tmp_path / "losses.png"
    argv = ["resnet20", "--steps", "20", "--batch", "8", "--plot", str(plot)]
    assert cli.main(["train-parity", *argv]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.split() and line.split()[0].isdigit()]
    assert [int(r[0]) for r in rows] == list(range(1, 21))
    torch_losses, keras_losses = (np.array([float(r[i]) for r in rows]) for i in (1, 2))
    assert np.all(np.abs(torch_losses - keras_losses) <= tp.LOSS_TOLERANCE * torch_losses)
    assert "PASS" in out and "held-out digits accuracy" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Never over an existing plot without --force; the check comes before any training.
    assert cli.main(["train-parity", *argv]) == 2
    assert "--force" in capsys.readouterr().err
