"""The command line as a user runs it: a subprocess of the installed console script."""

import json
import math
import os
import subprocess
import sys

import pytest

import resnet_spec as rs
from conftest import assert_imports_none_of

from conftest import CLI_SCRIPT as SCRIPT  # noqa: E402


def run(*args):
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True)


def test_list_prints_every_variant_with_its_published_count():
    out = run("list")
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line.split() for line in out.stdout.splitlines()[2:]}
    assert list(rows) == rs.names()
    assert rows["resnet50"][5] == "25,557,032"
    assert rows["resnest50"][1] == "resnest"
    # keras.applications' own count_params() of ResNet50 and ResNet152V2 (BatchNorm statistics included)
    assert rows["keras_resnet50"][6] == "25,636,712" and rows["keras_resnet50"][4] == "caffe"
    assert rows["keras_resnet152v2"][6] == "60,380,648" and rows["keras_resnet152v2"][4] == "tf"
    assert rows["cifar10_notebook"][1:5] == ["notebook", "basic", "96", "half"]


def test_list_by_family_and_bad_family():
    out = run("list", "--family", "cifar")
    assert [line.split()[0] for line in out.stdout.splitlines()[2:]] == rs.names("cifar")
    bad = run("list", "--family", "transformers")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr and "Traceback" not in bad.stderr


def test_list_needs_neither_framework():
    assert_imports_none_of("from parity.cli import main; main(['list'])", ("torch", "tensorflow", "keras"))


def test_cli_check_writes_json_and_never_overwrites(tmp_path):
    out = tmp_path / "report.json"
    run = subprocess.run([SCRIPT, "check", "resnet20", "preact_resnet18", "--json", str(out)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stderr == "", run.stderr  # quiet: no TensorFlow start-up notes
    assert "2 of 2 variants within the parity contract" in run.stdout
    reports = json.loads(out.read_text())
    assert [r["model"] for r in reports] == ["resnet20", "preact_resnet18"] and all(r["ok"] for r in reports)

    again = subprocess.run([SCRIPT, "check", "resnet20", "--json", str(out)], capture_output=True, text=True)
    assert again.returncode == 2 and "--force" in again.stderr
    assert json.loads(out.read_text()) == reports  # untouched
    assert not [p for p in tmp_path.iterdir() if p.name != "report.json"]  # no temporary left


def test_cli_check_rejects_unknown_names_before_building_anything():
    run = subprocess.run([SCRIPT, "check", "resnet18", "resnt50"], capture_output=True, text=True)
    assert run.returncode == 2
    assert "unknown architecture 'resnt50'" in run.stderr and "resnet50" in run.stderr
    assert "Traceback" not in run.stderr and "resnet18 (eval mode)" not in run.stdout


NATIVE_NOTES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796187747.029913    3682 port.cc:153] oneDNN custom operations are on.",
    "I0000 00:00:1796187750.022126    3682 cudart_stub.cc:31] Could not find cuda drivers on your machine.",
    "E0000 00:00:1796187752.285024    3682 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error",
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow.",
]


def test_native_start_up_notes_are_filtered_and_everything_else_kept():
    # A child writes TensorFlow-like notes straight to file descriptor 2, a Python warning and an
    # absl error that is not about a missing GPU; only the notes disappear, in order otherwise.
    code = (
        "import os, warnings\n"
        "from parity.cli.quiet import filtered_stderr\n"
        f"notes = {NATIVE_NOTES!r}\n"
        "with filtered_stderr():\n"
        "    for line in notes:\n"
        "        os.write(2, (line + '\\n').encode())\n"
        "    warnings.warn('a warning that matters')\n"
        "    os.write(2, b'E0000 00:00:17.1 9 file.cc:1] disk full\\n')\n"
        "    os.write(2, b'last line without a newline')\n"
        "print('stdout untouched')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "stdout untouched\n"
    lines = out.stderr.splitlines()
    assert not any(note in out.stderr for note in NATIVE_NOTES), out.stderr
    assert "a warning that matters" in lines[0]
    assert lines[-2:] == ["E0000 00:00:17.1 9 file.cc:1] disk full", "last line without a newline"]


@pytest.mark.parametrize("backend", rs.KERAS_BACKENDS)
def test_check_command_runs_the_suite_on_the_backend_asked_for(backend, tmp_path):
    out = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    run = subprocess.run([SCRIPT, "check", "resnet20", "--backend", backend, "--json", str(out)],
                         capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"on Keras' {backend} backend" in run.stdout
    (report,) = json.loads(out.read_text())
    assert report["ok"] and report["environment"]["backend"] == backend
    assert {"torch", "keras"} <= set(report["environment"]["versions"])
    assert math.isfinite(report["rows"][-1]["max_rel"])


def test_check_in_train_mode_runs_a_float32_step_in_its_envelope(tmp_path):
    out = tmp_path / "report.json"
    run = subprocess.run([SCRIPT, "check", "resnet18", "--mode", "train", "--batch", "3", "--json", str(out)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "train mode, float32, envelope 4x PyTorch's deviation from float64" in run.stdout
    (report,) = json.loads(out.read_text())
    assert (report["mode"], report["precision"], report["reference"]) == ("train", "float32", "float64")
    assert set(report["followed_gates"]) == {"torch", "torch_native", "keras"}
    assert {row["kind"] for row in report["rows"]} >= {"gradient", "parameter", "buffer"}

    refused = subprocess.run([SCRIPT, "check", "resnet18", "--mode", "train", "--precision", "bfloat16"],
                             capture_output=True, text=True)
    assert refused.returncode == 2 and "float32 or float64" in refused.stderr and "Traceback" not in refused.stderr


def test_check_in_bfloat16_records_precision_devices_and_tf32(tmp_path):
    out = tmp_path / "report.json"
    run = subprocess.run([SCRIPT, "check", "resnet20", "--precision", "bfloat16", "--allow-tf32", "--json", str(out)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "torch-f64" in run.stdout and "TF32 on" in run.stdout
    (report,) = json.loads(out.read_text())
    assert report["precision"] == "bfloat16" and report["reference"] == "float64" and report["envelope_multiple"] == 4.0
    assert report["environment"]["tf32"]["allowed"] is True and report["environment"]["devices"]["torch"] == "cpu"
    assert all(row["keras_dev"] <= row["bound"] for row in report["rows"])

    refused = subprocess.run([SCRIPT, "check", "resnet20", "--precision", "bfloat16", "--no-reference"],
                             capture_output=True, text=True)
    assert refused.returncode == 2 and "--no-reference" in refused.stderr and "Traceback" not in refused.stderr
