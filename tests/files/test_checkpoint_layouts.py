"""PyTorch checkpoints as people save them: the state_dict nested beside optimizer states (PyTorch's
tutorial checkpoint, a Lightning .ckpt), keys under a prefix, fine-tuned classifier heads. Each file
is written the way that tool writes it, converted to .keras and checked against the model that
wrote it (torchvision's resnet18, every weight and statistic random) at odd, non-square sizes.
Then the files that fit nothing: the errors say what would fix them.
"""

import subprocess

import numpy as np
import pytest
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn

import keras  # noqa: E402  (after torch, see conftest)

import parity  # noqa: E402
import resnet_spec as rs  # noqa: E402
from conftest import CLI_SCRIPT  # noqa: E402
from parity.core.metrics import relative_error  # noqa: E402
from parity.core.report import EVAL_TOLERANCE  # noqa: E402
from parity.files import keras_io, loading  # noqa: E402
from parity.testing import randomize_state_dict  # noqa: E402

BOUND = EVAL_TOLERANCE  # the parity contract's eval bound, relative to max(1, max|reference|)


pytestmark = pytest.mark.usefixtures("free_keras")  # conftest


def cli(*args):
    return subprocess.run([CLI_SCRIPT, *map(str, args)], capture_output=True, text=True)


def tv_resnet18(seed, fc=None, num_classes=10):
    """torchvision's resnet18, `model.fc` replaced as fine-tuning does, with every parameter and
    BatchNorm statistic random and non-zero step counters (as after training), in eval mode."""
    model = torchvision.models.resnet18(num_classes=num_classes)
    if fc is not None:
        model.fc = fc
    state = randomize_state_dict(model.state_dict(), seed)  # in place
    g = torch.Generator().manual_seed(seed)
    for k, v in state.items():
        if k.endswith(rs.BN_COUNTER):
            v.fill_(int(torch.randint(1, 10**5, (), generator=g)))
    return model.eval()


def train_step(model, optimizer, seed):
    """One real training step, so the optimizer holds per-parameter state (momentum, moments)."""
    g = torch.Generator().manual_seed(seed)
    model.train()
    x = torch.randn(4, 3, 32, 32, generator=g)
    loss = model(x).logsumexp(1).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    model.eval()
    return loss.detach()


def images(size, seed):
    return np.random.default_rng(seed).standard_normal((2, 3, *size)).astype(np.float32)


def expected(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def keras_output(path, x):
    """The converted file's output, read the way a Keras user reads it, and parity's record."""
    model, record = keras_io.load(path)
    return keras.ops.convert_to_numpy(model(np.transpose(x, (0, 2, 3, 1)), training=False)), record


def prefixed(state_dict, prefix):
    return {prefix + k: v for k, v in state_dict.items()}


# --- files as each tool writes them -------------------------------------------------------------

def tutorial_checkpoint(tmp):
    # "Saving & loading a general checkpoint" of PyTorch's tutorials.
    model = tv_resnet18(1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    loss = train_step(model, optimizer, 1)
    path = tmp / "checkpoint.tar"
    torch.save({"epoch": 5, "model_state_dict": model.state_dict(),
                "optimizer_state_dict": optimizer.state_dict(), "loss": loss}, path)
    return path, model


def lightning_checkpoint(tmp, seed=2):
    # A LightningModule holding the network as self.model: every key starts "model.", beside
    # Lightning's own entries (optimizer and scheduler states, loops, callbacks, hyper-parameters).
    model = tv_resnet18(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10)
    train_step(model, optimizer, seed)
    scheduler.step()
    path = tmp / "epoch=3-step=120.ckpt"
    torch.save({
        "epoch": 3, "global_step": 120, "pytorch-lightning_version": "2.4.0",
        "state_dict": prefixed(model.state_dict(), "model."),
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 4, "completed": 3}}}},
        "callbacks": {"ModelCheckpoint{'monitor': 'val_loss', 'mode': 'min'}": {
            "best_model_score": torch.tensor(0.42), "best_model_path": "/runs/epoch=3-step=120.ckpt"}},
        "optimizer_states": [optimizer.state_dict()],
        "lr_schedulers": [scheduler.state_dict()],
        "hparams_name": "kwargs", "hyper_parameters": {"lr": 1e-3, "num_classes": 10},
    }, path)
    return path, model


def backbone_prefixed(tmp):
    model = tv_resnet18(3, num_classes=6)
    path = tmp / "backbone.safetensors"
    save_file(prefixed(model.state_dict(), "backbone."), path)
    return path, model


def dropout_head(tmp):
    model = tv_resnet18(4, fc=nn.Sequential(nn.Dropout(0.2), nn.Linear(512, 10)))
    path = tmp / "finetuned_dropout.pth"
    torch.save(model.state_dict(), path)
    return path, model


def mlp_head(tmp):
    model = tv_resnet18(5, fc=nn.Sequential(nn.Linear(512, 256), nn.ReLU(), nn.Dropout(0.3), nn.Linear(256, 5)))
    path = tmp / "finetuned_mlp.pth"
    torch.save({"epoch": 12, "model_state_dict": model.state_dict()}, path)
    return path, model


def sequential_of_one_linear(tmp):
    model = tv_resnet18(6, fc=nn.Sequential(nn.Linear(512, 7)))
    path = tmp / "finetuned_linear.pt"
    torch.save(model.state_dict(), path)
    return path, model


# (id, build, (height, width), the spec's head and classes, what the notes must say)
LAYOUTS = [
    ("tutorial", tutorial_checkpoint, (61, 86), ((), 10), ["state_dict nested under 'model_state_dict'"]),
    ("lightning", lightning_checkpoint, (67, 45), ((), 10),
     ["state_dict nested under 'state_dict'", "stripped the 'model.' prefix"]),
    ("backbone-prefix", backbone_prefixed, (45, 67), ((), 6), ["stripped the 'backbone.' prefix"]),
    ("dropout-linear-head", dropout_head, (75, 53), ((("dropout", 0.5),), 10),
     ["classifier head fc read as nn.Sequential(Dropout, Linear(512, 10))"]),
    ("mlp-head", mlp_head, (53, 75), ((("linear", 256), ("relu",), ("dropout", 0.5)), 5),
     ["state_dict nested under 'model_state_dict'",
      "nn.Sequential(Linear(512, 256), ReLU, Dropout, Linear(256, 5))"]),
    ("sequential-of-one-linear", sequential_of_one_linear, (61, 86), ((), 7), ["read fc.0"]),
]


@pytest.mark.parametrize("build, size, head_classes, notes", [c[1:] for c in LAYOUTS], ids=[c[0] for c in LAYOUTS])
def test_checkpoint_layouts_convert_and_agree_with_the_model_that_wrote_them(tmp_path, build, size, head_classes,
                                                                            notes):
    src, reference = build(tmp_path)
    x = images(size, seed=size[0])
    want = expected(reference, x)
    result = parity.convert_file(src, tmp_path / "out.keras")
    assert result.spec.name == "resnet18" and result.inferred
    assert (result.spec.head, result.spec.num_classes) == head_classes
    assert result.report.ok, result.report.table()
    for note in notes:
        assert any(note in n for n in result.notes), result.notes
    got, record = keras_output(tmp_path / "out.keras", x)
    assert relative_error(want, got) <= BOUND
    assert (want.argmax(1) == got.argmax(1)).all()
    assert record["notes"] == result.notes  # the file says how its source was read


def test_a_fine_tuned_head_comes_back_under_its_own_names_bit_for_bit(tmp_path):
    src, reference = mlp_head(tmp_path)
    parity.convert_file(src, tmp_path / "mid.keras")
    back = tmp_path / "back.pth"
    result = parity.convert_file(tmp_path / "mid.keras", back)
    assert result.report.ok, result.report.table()
    source = reference.state_dict()
    restored = torch.load(back, weights_only=True)
    assert list(restored) == list(source)  # fc.0.*, fc.3.*: torchvision's names and order
    for k, v in source.items():
        assert restored[k].dtype == v.dtype and torch.equal(restored[k], v), k


# --- where several entries could be the weights, and explicit choices ----------------------------

@pytest.fixture(scope="module")
def student_teacher(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("distill")
    student, teacher = tv_resnet18(8), tv_resnet18(9)
    path = tmp / "distill.pth"
    torch.save({"epoch": 30, "student": student.state_dict(), "teacher": teacher.state_dict()}, path)
    return path, student, teacher


def test_several_candidate_mappings_are_listed_and_key_picks_one(tmp_path, student_teacher):
    path, student, teacher = student_teacher
    with pytest.raises(parity.CheckpointError) as err:
        parity.load_checkpoint(path)
    message = str(err.value)
    assert "several mappings of tensors" in message and "'student' (" in message and "'teacher' (" in message
    assert "--key" in message

    state, name = parity.load_checkpoint(path, key="student")
    assert name == "resnet18"
    assert all(torch.equal(state[k], v) for k, v in student.state_dict().items())

    run = cli("convert", path, tmp_path / "teacher.keras", "--key", "teacher")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith(f"{path}: resnet18 (num_classes=10), inferred from the tensors; "
                                 "state_dict nested under 'teacher'")
    assert "PASS" in run.stdout
    x = images((63, 47), seed=3)
    got, _ = keras_output(tmp_path / "teacher.keras", x)
    assert relative_error(expected(teacher, x), got) <= BOUND
    assert relative_error(expected(student, x), got) > 1e-2  # and not the student


def test_the_command_line_lists_the_candidates_without_a_traceback(tmp_path, student_teacher):
    path, _, _ = student_teacher
    run = cli("convert", path, tmp_path / "out.keras")
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "'student'" in run.stderr and "'teacher'" in run.stderr and "--key" in run.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_known_entry_wins_over_a_deeper_one_and_a_path_picks_the_other(tmp_path):
    plain, ema = tv_resnet18(10), tv_resnet18(11)
    path = tmp_path / "ema.pth"
    torch.save({"model": plain.state_dict(), "ema": {"decay": 0.999, "model": ema.state_dict()}}, path)
    state, _, notes = loading.read_torch_checkpoint(path)
    assert torch.equal(state["fc.weight"], plain.fc.weight)
    assert "state_dict nested under 'model' (other entries hold tensors too: 'ema/model'" in notes[0]
    state, _ = parity.load_checkpoint(path, key="ema/model")
    assert torch.equal(state["fc.weight"], ema.fc.weight)
    with pytest.raises(parity.CheckpointError, match="no entry 'ema/weights'; entries holding tensors: 'model'"):
        parity.load_checkpoint(path, key="ema/weights")


def test_a_prefix_beside_other_modules_is_hinted_and_prefix_takes_it(tmp_path):
    # A LightningModule with self.backbone (its fc replaced by nn.Identity) and its own head.
    reference = tv_resnet18(12, fc=nn.Identity())
    head = nn.Linear(512, 10)
    state = {**prefixed(reference.state_dict(), "backbone."), **prefixed(head.state_dict(), "head.")}
    path = tmp_path / "two_modules.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(parity.ArchitectureError) as err:
        parity.load_checkpoint(path)
    assert "matches no known architecture" in str(err.value)
    assert "sit under 'backbone.': if the network is there, --prefix backbone. takes it" in str(err.value)

    result = parity.convert_file(path, tmp_path / "backbone.keras", prefix="backbone")  # the dot is optional
    assert result.spec.name == "resnet18" and not result.spec.include_top
    took = f"took the {len(reference.state_dict())} tensors under 'backbone.' (--prefix), leaving out 2 others"
    assert any(f"{took} (head.weight, head.bias)" in n for n in result.notes), result.notes
    x = images((57, 66), seed=12)
    got, _ = keras_output(tmp_path / "backbone.keras", x)  # pooled features, as the Identity fc gives
    assert got.shape == (2, 512) and relative_error(expected(reference, x), got) <= BOUND

    roots = rf"backbone\. \({len(reference.state_dict())}\), head\. \(2\)"
    with pytest.raises(parity.CheckpointError, match=r"no key starts with the prefix 'encoder\.'.*" + roots):
        parity.load_checkpoint(path, prefix="encoder.")
    # An empty prefix keeps the names as they are: the prefix is not stripped, and the hint says so.
    with pytest.raises(parity.ArchitectureError, match=r"--prefix model\. takes it"):
        parity.load_checkpoint(lightning_checkpoint(tmp_path)[0], prefix="")


# --- files that still fit no variant: the error says what would help -----------------------------

def test_a_head_it_cannot_read_is_named(tmp_path):
    model = tv_resnet18(13, fc=nn.Sequential(nn.Linear(512, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Linear(128, 10)))
    torch.save(model.state_dict(), tmp_path / "bn_head.pth")
    with pytest.raises(parity.ArchitectureError) as err:
        parity.load_checkpoint(tmp_path / "bn_head.pth")
    message = str(err.value)
    assert "cannot read its classifier head fc: fc.1 holds" in message and "running_mean" in message
    assert "which is no Linear layer" in message and "Readable heads: fc as one nn.Linear" in message


def test_a_head_under_another_name_is_hinted(tmp_path):
    model = tv_resnet18(14)
    state = {k.replace("fc.", "classifier.", 1): v for k, v in model.state_dict().items()}
    torch.save(state, tmp_path / "classifier.pth")
    with pytest.raises(parity.ArchitectureError, match="under 'classifier' .*rename it 'fc'"):
        parity.load_checkpoint(tmp_path / "classifier.pth")


def test_an_optimizer_state_is_not_a_model(tmp_path):
    model = tv_resnet18(15)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    train_step(model, optimizer, 15)
    torch.save({"epoch": 1, "optimizer_state_dict": optimizer.state_dict()}, tmp_path / "optimizer_only.pt")
    with pytest.raises(parity.CheckpointError, match="holds no state_dict.*optimizer states aside.*--key"):
        parity.load_checkpoint(tmp_path / "optimizer_only.pt")
