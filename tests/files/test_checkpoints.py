"""Checkpoint files: every supported naming and nesting converts and verifies, the real CIFAR
checkpoints convert with their architecture inferred, files round-trip bit for bit, and hostile
or broken inputs fail cleanly, leaving nothing behind.

References are the models that wrote the files (torchvision and timm with randomised weights,
or the pytorch_resnet_cifar10 checkpoints), never our own output.
"""

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torchvision
from safetensors.torch import save_file

import keras  # noqa: E402  (after torch, see conftest)

import parity  # noqa: E402
import resnet_spec as rs  # noqa: E402
import resnet_torch  # noqa: E402
from conftest import free_keras_memory, shared_checkpoint  # noqa: E402
from parity.files import keras_io  # noqa: E402
from parity.testing import randomize_state_dict, randomize_torch  # noqa: E402

from conftest import CLI_SCRIPT as SCRIPT  # noqa: E402
from parity.core.metrics import relative_error  # noqa: E402
CIFAR_MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
CIFAR_STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)


pytestmark = pytest.mark.usefixtures("free_keras")  # conftest


def cli(*args):
    return subprocess.run([SCRIPT, *map(str, args)], capture_output=True, text=True)


def images(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def only_files(directory):
    """Everything in a directory, hidden temporaries included."""
    return sorted(p.name for p in Path(directory).iterdir())


def with_counters(state_dict, seed):
    """Non-zero BatchNorm counters, as a trained model has (0 would hide a dropped counter)."""
    g = torch.Generator().manual_seed(seed)
    for k in state_dict:
        if k.endswith(rs.BN_COUNTER):
            state_dict[k] = torch.randint(1, 10**6, (), generator=g, dtype=torch.long)
    return state_dict


def torch_reference(model, seed):
    model.load_state_dict(with_counters(randomize_state_dict(model.state_dict(), seed), seed))
    return model.eval()


def renamed(state_dict, prefix="", renames=()):
    out = {}
    for k, v in state_dict.items():
        for old, new in renames:
            k = new + k[len(old):] if k.startswith(old) else k
        out[prefix + k] = v
    return out


# (case id, expected architecture, expected classes, build(tmp) -> (source file, reference model)).
# The reference is the model that wrote the file: torchvision, timm, or our own model whose
# state_dict was renamed to another project's convention.
def tv_raw(tmp):
    model = torch_reference(torchvision.models.resnet18(num_classes=7), seed=1)
    torch.save(model.state_dict(), tmp / "tv_resnet18.pth")
    return tmp / "tv_resnet18.pth", model


def tv_data_parallel_under_model(tmp):
    model = torch_reference(torchvision.models.resnet18(num_classes=7), seed=2)
    torch.save({"epoch": 3, "model": renamed(model.state_dict(), "module.")}, tmp / "tv_dp.pt")
    return tmp / "tv_dp.pt", model


def tv_safetensors(tmp):
    model = torch_reference(torchvision.models.resnet18(num_classes=5), seed=3)
    save_file(model.state_dict(), tmp / "tv_resnet18.safetensors")
    return tmp / "tv_resnet18.safetensors", model


def timm_resnet_d_ema(tmp):
    model = torch_reference(timm.create_model("resnet18d", pretrained=False, num_classes=6), seed=4)
    torch.save({"epoch": 9, "arch": "resnet18d", "state_dict_ema": model.state_dict()}, tmp / "model_best.pth.tar")
    return tmp / "model_best.pth.tar", model


def timm_resnest(tmp):
    # timm's resnest50d has the official ResNeSt repository's names (split attention conv2.conv,
    # bn0, fc1, bn1, fc2; deep stem conv1.0..6; avg-down shortcuts): our resnest50.
    model = torch_reference(timm.create_model("resnest50d", pretrained=False, num_classes=4), seed=5)
    torch.save({"state_dict": model.state_dict(), "optimizer": {"lr": 0.1}}, tmp / "timm_resnest50d.bin")
    return tmp / "timm_resnest50d.bin", model


def cifar10_project_layout(tmp):
    # pytorch_resnet_cifar10: {"best_prec1", "state_dict"}, DataParallel prefix, `linear` classifier.
    model = randomize_torch(resnet_torch.resnet20(), seed=6).eval()
    state = renamed(model.state_dict(), "module.", [("fc.", "linear.")])
    state = {k: v for k, v in state.items() if not k.endswith(rs.BN_COUNTER)}  # as in the real files
    torch.save({"best_prec1": 91.7, "state_dict": state}, tmp / "cifar_resnet20.th")
    return tmp / "cifar_resnet20.th", model


def preact_compiled(tmp):
    model = torch_reference(resnet_torch.preact_resnet18(num_classes=3), seed=7)
    torch.save({"module": renamed(model.state_dict(), "module._orig_mod.")}, tmp / "preact18.pth")
    return tmp / "preact18.pth", model


CASES = [
    ("torchvision-raw", "resnet18", 7, tv_raw),
    ("torchvision-dataparallel-model", "resnet18", 7, tv_data_parallel_under_model),
    ("torchvision-safetensors", "resnet18", 5, tv_safetensors),
    ("timm-resnet18d-ema", "resnet18d", 6, timm_resnet_d_ema),
    ("timm-resnest50d", "resnest50", 4, timm_resnest),
    ("pytorch_resnet_cifar10", "resnet20", 10, cifar10_project_layout),
    ("preact-compiled-dataparallel", "preact_resnet18", 3, preact_compiled),
]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Every case written, converted to .keras through the API, with the source model's
    predictions on odd, non-square inputs, for the fresh-process check."""
    tmp = tmp_path_factory.mktemp("naming")
    results = {}
    for case, arch, classes, build in CASES:
        src, reference = build(tmp)
        size = (33, 31) if arch == "resnet20" else (67, 61)
        x = images((3, 3, *size), seed=len(case))
        with torch.no_grad():
            expected = reference(torch.from_numpy(x)).numpy()
        np.savez(tmp / f"{case}.npz", x=x, expected=expected)
        result = parity.convert_file(src, tmp / f"{case}.keras")
        results[case] = (src, result, reference)
        del reference
        free_keras_memory()
    return tmp, results


@pytest.mark.parametrize("case, arch, classes", [c[:3] for c in CASES], ids=[c[0] for c in CASES])
def test_every_naming_and_nesting_converts_and_verifies(converted, case, arch, classes):
    tmp, results = converted
    src, result, _ = results[case]
    assert result.spec.name == arch and result.spec.num_classes == classes and result.inferred
    assert result.report is not None and result.report.ok, result.report.table()
    assert result.report.top1_agreement == 1.0
    assert (tmp / f"{case}.keras").is_file()
    # The API's reader gives the same answer, under our names.
    state_dict, name = parity.load_checkpoint(src)
    assert name == arch and state_dict["fc.weight"].shape[0] == classes


def test_keras_files_predict_what_the_sources_predicted_in_a_process_without_torch(converted):
    tmp, _ = converted
    code = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        import keras, resnet_tf
        from parity.core.metrics import relative_error
        out = {{}}
        for case in {[c[0] for c in CASES]!r}:
            data = np.load({str(tmp)!r} + f"/{{case}}.npz")
            model = keras.saving.load_model({str(tmp)!r} + f"/{{case}}.keras")
            got = np.asarray(model(np.transpose(data["x"], (0, 2, 3, 1)), training=False))
            ref = data["expected"]
            out[case] = [relative_error(ref, got),
                         bool((ref.argmax(1) == got.argmax(1)).all())]
        out["torch_loaded"] = "torch" in sys.modules
        print(json.dumps(out))
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out.pop("torch_loaded") is False
    for case, (err, same_top1) in out.items():
        assert err <= 1e-5 and same_top1, (case, err)


def cifar_reference(path):
    """pytorch_resnet_cifar10's checkpoint loaded by hand (independently of parity's reader)."""
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    state = {k.removeprefix("module.").replace("linear.", "fc."): v for k, v in state.items()}
    name = Path(path).name.split("-")[0]
    model = resnet_torch.create_model(name)
    model.load_state_dict(state, strict=False)  # the files keep no num_batches_tracked
    return model.eval()


def test_real_checkpoints_convert_in_one_call_with_the_architecture_inferred(tmp_path):
    sources = [shared_checkpoint("resnet20-12fca82f.th"), shared_checkpoint("resnet56-4bfd9763.th")]
    run = cli("convert", *sources, tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    for src, name in zip(sources, ("resnet20", "resnet56")):
        assert f"{src}: {name} (num_classes=10), inferred from the tensors" in run.stdout
    assert run.stdout.count("PASS") == 2 and "Traceback" not in run.stderr
    assert "2/2" in run.stderr and "[" in run.stderr  # the progress bar
    assert only_files(tmp_path) == ["resnet20-12fca82f.keras", "resnet56-4bfd9763.keras"]

    # Normalised 32x32 images, as the networks were trained on: Keras agrees with PyTorch.
    x = (np.random.default_rng(1).uniform(0, 1, (16, 3, 32, 32)).astype(np.float32) - CIFAR_MEAN) / CIFAR_STD
    for src in sources:
        with torch.no_grad():
            expected = cifar_reference(src)(torch.from_numpy(x)).numpy()
        keras_model, _ = keras_io.load(tmp_path / (src.stem + ".keras"))
        got = keras.ops.convert_to_numpy(keras_model(np.transpose(x, (0, 2, 3, 1)), training=False))
        assert relative_error(expected, got) <= 1e-5
        assert (expected.argmax(1) == got.argmax(1)).all()
        assert len(set(expected.argmax(1))) > 1  # a real classifier, not a constant


@pytest.mark.parametrize("first, middle, last", [(".pth", ".keras", ".pth"), (".safetensors", ".weights.h5", ".safetensors")])
def test_file_round_trip_reproduces_every_tensor_bit_for_bit(tmp_path, first, middle, last):
    model = torch_reference(torchvision.models.resnet18(num_classes=9), seed=8)
    source = model.state_dict()  # random weights and non-zero num_batches_tracked
    src = tmp_path / f"src{first}"
    if first == ".pth":
        torch.save(source, src)
    else:
        save_file(source, src)
    parity.convert_file(src, tmp_path / f"mid{middle}")
    parity.convert_file(tmp_path / f"mid{middle}", tmp_path / f"back{last}")
    back, name = parity.load_checkpoint(tmp_path / f"back{last}")
    assert name == "resnet18"
    assert sorted(back) == sorted(source)  # every tensor, counters included
    if last == ".pth":
        assert list(back) == list(source)  # and in torchvision's order (safetensors sorts names)
    for key, tensor in source.items():
        assert back[key].dtype == tensor.dtype, key
        assert torch.equal(back[key], tensor), key


# --- hostile and broken inputs --------------------------------------------------------------

class CreatesMarker:
    """Unpickling this runs code: it creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def test_the_hostile_file_is_real(tmp_path):
    # Control: an unsafe load of the same kind of file does run the code.
    marker = tmp_path / "control-marker"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "x": CreatesMarker(marker)}, tmp_path / "evil.pth")
    torch.load(tmp_path / "evil.pth", weights_only=False)
    assert marker.exists()


def test_a_checkpoint_whose_unpickling_runs_code_is_refused_and_the_code_never_runs(tmp_path):
    marker = tmp_path / "marker"
    state = torch_reference(torchvision.models.resnet18(), seed=9).state_dict()
    torch.save({"state_dict": state, "hook": CreatesMarker(marker)}, tmp_path / "evil.pth")
    run = cli("convert", tmp_path / "evil.pth", tmp_path / "out.keras")
    assert run.returncode == 2
    assert "refused to load" in run.stderr and "it asks for exec" in run.stderr and "Traceback" not in run.stderr
    assert not marker.exists()
    assert only_files(tmp_path) == ["evil.pth"]

    # A bare pickle (no torch zip container) through the API: refused the same way.
    with open(tmp_path / "bare.pt", "wb") as f:
        pickle.dump({"epoch": 1, "hook": CreatesMarker(marker)}, f, protocol=2)
    with pytest.raises(parity.UnsafeCheckpointError, match="refused to load.*exec"):
        parity.load_checkpoint(tmp_path / "bare.pt")
    assert not marker.exists()


@pytest.fixture(scope="module")
def resnet20_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("r20") / "resnet20.pth"
    torch.save(randomize_torch(resnet_torch.resnet20(), seed=10).state_dict(), path)
    return path


def test_a_truncated_file_fails_cleanly(tmp_path, resnet20_file):
    data = resnet20_file.read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    run = cli("convert", tmp_path / "cut.pth", tmp_path / "out.keras")
    assert run.returncode == 2, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("resnet-parity convert: error:")]
    assert len(errors) == 1 and "truncated or corrupt" in errors[0]  # one paragraph
    assert "Traceback" not in run.stderr
    assert only_files(tmp_path) == ["cut.pth"]


@pytest.mark.parametrize("suffix", [".safetensors", ".keras", ".pt"])
def test_corrupt_files_of_every_format_are_checkpoint_errors(tmp_path, resnet20_file, suffix):
    if suffix == ".safetensors":
        save_file(torch.load(resnet20_file, weights_only=True), tmp_path / "good.safetensors")
        data = (tmp_path / "good.safetensors").read_bytes()[:-100]
    elif suffix == ".keras":
        parity.convert_file(resnet20_file, tmp_path / "good.keras", verify=False)
        data = (tmp_path / "good.keras").read_bytes()[:5000]
    else:
        data = b"this is not a checkpoint" * 10
    (tmp_path / f"bad{suffix}").write_bytes(data)
    target = ".pth" if suffix == ".keras" else ".keras"
    with pytest.raises(parity.CheckpointError, match="corrupt"):
        parity.convert_file(tmp_path / f"bad{suffix}", tmp_path / f"out{target}")
    assert not (tmp_path / f"out{target}").exists()
    assert not [p for p in only_files(tmp_path) if p.startswith(".")]


def test_missing_files_directories_and_unknown_types(tmp_path, resnet20_file):
    with pytest.raises(parity.CheckpointError, match="no such file"):
        parity.convert_file(tmp_path / "absent.pth", tmp_path / "out.keras")
    with pytest.raises(parity.CheckpointError, match="is a directory"):
        parity.convert_file(tmp_path, tmp_path / "out.keras")
    with pytest.raises(parity.CheckpointError, match="unsupported file type '.onnx'"):
        parity.convert_file(resnet20_file, tmp_path / "out.onnx")
    with pytest.raises(parity.CheckpointError, match="both torch files"):
        parity.convert_file(resnet20_file, tmp_path / "out.safetensors")
    with pytest.raises(OSError, match="does not exist"):
        parity.convert_file(resnet20_file, tmp_path / "no" / "out.keras")
    assert only_files(tmp_path) == []


def test_a_wrong_arch_lists_the_differences(tmp_path, resnet20_file):
    run = cli("convert", resnet20_file, tmp_path / "out.keras", "--arch", "resnet32")
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "does not fit resnet32" in run.stderr and "missing (layer1.3.conv1.weight" in run.stderr
    assert only_files(tmp_path) == []
    # A wrong class count: the shapes side by side.
    with pytest.raises(parity.ArchitectureError, match=r"fc.weight: file \(10, 64\) vs resnet20 \(100, 64\)"):
        parity.convert_file(resnet20_file, tmp_path / "out.keras", arch="resnet20", num_classes=100)


def test_an_unknown_layout_names_the_closest_candidates(tmp_path):
    state = torch_reference(torchvision.models.resnet50(num_classes=10), seed=11).state_dict()
    state = {k: v for k, v in state.items() if not k.startswith("layer4.2.")}  # a truncated network
    torch.save(state, tmp_path / "odd.pth")
    with pytest.raises(parity.ArchitectureError) as err:
        parity.load_checkpoint(tmp_path / "odd.pth")
    message = str(err.value)
    assert "matches no known architecture" in message
    assert message.index("Closest candidates: resnet50:") > 0 and "missing (layer4.2.conv1.weight" in message


def test_an_existing_destination_is_kept_without_force(tmp_path, resnet20_file):
    dst = tmp_path / "out.keras"
    dst.write_bytes(b"precious")
    run = cli("convert", resnet20_file, dst)
    assert run.returncode == 2 and "--force" in run.stderr and "Traceback" not in run.stderr
    assert dst.read_bytes() == b"precious"
    result = parity.convert_file(resnet20_file, dst, force=True)
    assert result.report.ok and dst.read_bytes() != b"precious"
    assert only_files(tmp_path) == ["out.keras"]


def test_a_conversion_that_breaks_the_contract_writes_nothing(tmp_path, resnet20_file, monkeypatch):
    # A faulty reader of the written file (one BatchNorm's statistics swapped): the comparison
    # of the file as written with the source must catch it, and the file must not be kept.
    load = keras_io.load

    def faulty_load(path, *args, **kwargs):
        model, record = load(path, *args, **kwargs)
        bn = model.get_layer("layer2.1.bn1")
        mean = bn.moving_mean.numpy()
        bn.moving_mean.assign(bn.moving_variance.numpy())
        bn.moving_variance.assign(mean)
        return model, record

    monkeypatch.setattr(keras_io, "load", faulty_load)
    with pytest.raises(parity.VerificationError, match="diverges first at layer2.1") as err:
        parity.convert_file(resnet20_file, tmp_path / "out.keras")
    assert not err.value.report.ok and "FAIL" in err.value.report.table()
    assert only_files(tmp_path) == []


def test_weights_h5_without_our_record_needs_arch(tmp_path):
    model = parity.torch_to_keras(randomize_torch(resnet_torch.resnet20(), seed=12))
    model.save_weights(tmp_path / "foreign.weights.h5")  # as written by plain Keras
    with pytest.raises(parity.CheckpointError, match="pass --arch"):
        parity.load_checkpoint(tmp_path / "foreign.weights.h5")
    with pytest.raises(parity.CheckpointError, match="cannot load .* into resnet32"):
        parity.load_checkpoint(tmp_path / "foreign.weights.h5", arch="resnet32")
    state, name = parity.load_checkpoint(tmp_path / "foreign.weights.h5", arch="resnet20")
    assert name == "resnet20"
    expected = parity.keras_to_state_dict(model)
    assert all(torch.equal(state[k], v) for k, v in expected.items())
