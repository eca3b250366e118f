"""Deployment files: a randomised torchvision resnet18 and a randomised timm resnest50d (our
resnest50), each exported to every format from every framework the format comes from, checked
by the exporter in its runtime, then run again in fresh processes that load one runtime alone,
at odd sizes none of the checks used, against the torchvision and timm models themselves.

The exports are made once (module fixtures) and shared by the tests; each runtime checks all
files of its format in one fresh process, the four processes side by side.
"""

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torchvision


import parity  # noqa: E402
from conftest import CLI_SCRIPT as SCRIPT  # noqa: E402
from conftest import free_keras_memory, shared_checkpoint  # noqa: E402
from parity.apps.export import flow, formats, signatures  # noqa: E402
from parity.apps.export.report import QUANTIZATION_BOUNDS  # noqa: E402
from parity.core.metrics import relative_error  # noqa: E402
from parity.core.report import EVAL_TOLERANCE  # noqa: E402
from parity.files.atomic import OutputExistsError  # noqa: E402
from parity.testing import randomize_torch  # noqa: E402

RUNTIME_CHECK = Path(__file__).with_name("runtime_check.py")
RUNTIMES = {"onnx": "onnxruntime", "tflite": "litert", "savedmodel": "savedmodel", "pt2": "pt2"}
# (format, framework, quantize): every format from every framework it comes from.
EXPORTS = [("onnx", "torch", "none"), ("onnx", "keras", "none"), ("pt2", "torch", "none"),
           ("savedmodel", "keras", "none"), ("tflite", "keras", "none"), ("tflite", "keras", "float16"),
           ("tflite", "keras", "dynamic-int8")]
# Fresh-process inputs: odd, non-square, a batch size and sizes no check or trace used.
FRESH_INPUTS = [(1, 71, 57), (2, 57, 71)]


def references():
    """name -> (the reference model, randomised, in eval mode), built by the libraries we match."""
    resnet18 = randomize_torch(torchvision.models.resnet18(), seed=11).eval()
    resnest = randomize_torch(timm.create_model("resnest50d"), seed=12).eval()
    return {"resnet18": resnet18, "resnest50": resnest}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(name, format, framework, quantize) -> ExportResult, each file in a directory of its own,
    and name -> the reference model. The models come from the reference's checkpoint file."""
    root = tmp_path_factory.mktemp("exports")
    refs, results = references(), {}
    for name, reference in refs.items():
        checkpoint = root / f"{name}.pth"
        torch.save(reference.state_dict(), checkpoint)
        models = parity.load_models(checkpoint)
        assert models["torch"].spec.name == name  # the architecture read from the tensors
        for fmt, framework, quantize in EXPORTS:
            folder = root / f"{name}-{fmt}-{framework}-{quantize}"
            folder.mkdir()
            suffix = formats.FORMATS[fmt].suffix
            dst = str(folder / name) + (suffix or "/")  # a SavedModel by its trailing separator
            results[name, fmt, framework, quantize] = flow.export_models(models, dst, quantize=quantize,
                                                                         framework=framework)
        del models
        free_keras_memory()
    return results, refs


def run_fresh(runtime: str, jobs: list[dict], folder: Path) -> list[str]:
    """Run runtime_check.py on `jobs` in a fresh interpreter; the forbidden packages it loaded."""
    job_file = folder / f"{runtime}.json"
    job_file.write_text(json.dumps(jobs))
    out = subprocess.run([sys.executable, str(RUNTIME_CHECK), runtime, str(job_file)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def fresh(exported, tmp_path_factory):
    """key -> (the outputs each file gave in a fresh process of its runtime, what the runtime
    said of its input, the NCHW inputs), and runtime -> forbidden packages it loaded."""
    results, _ = exported
    folder = tmp_path_factory.mktemp("fresh")
    rng = np.random.default_rng(5)
    inputs = [rng.standard_normal((n, 3, h, w)).astype(np.float32) for n, h, w in FRESH_INPUTS]
    jobs = {runtime: [] for runtime in RUNTIMES.values()}
    for i, (key, result) in enumerate(results.items()):
        layout = formats.input_layout(result.framework)
        paths = []
        for j, x in enumerate(inputs):
            paths.append(str(folder / f"{i}-{j}.npy"))
            np.save(paths[-1], x if layout == "NCHW" else x.transpose(0, 2, 3, 1))
        jobs[RUNTIMES[result.format]].append({"file": str(result.dst), "inputs": paths,
                                              "outputs": str(folder / f"{i}.npz"), "key": i})
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        loaded = dict(zip(jobs, pool.map(lambda r: run_fresh(r, jobs[r], folder), jobs)))
    outputs = {}
    for i, key in enumerate(results):
        with np.load(folder / f"{i}.npz") as saved:
            outputs[key] = ([saved[f"output_{j}"] for j in range(len(inputs))], json.loads(str(saved["about"])))
    return outputs, inputs, loaded


def test_every_export_holds_its_bounds_in_its_own_runtime(exported):
    results, _ = exported
    assert len(results) == 2 * len(EXPORTS)
    for (name, fmt, framework, quantize), result in results.items():
        report = result.report
        assert report.ok, report.table()
        bound = EVAL_TOLERANCE if quantize == "none" else QUANTIZATION_BOUNDS[quantize].max_error
        assert {r.tolerance for r in report.rows} == {bound}
        cases = ["batch 1, 75x67", "batch 3, 67x75"]  # odd, non-square, neither traced
        expected = {f"vs {ref}, {case}" for ref in ("torch", "keras") for case in cases}
        if quantize != "none":
            expected.add("vs torch, 32 real images, 224x224")
            assert [a.images for a in report.agreements] == [32]
        assert {r.name for r in report.rows} == expected
        assert report.environment["runtime"].split()[0] in ("onnxruntime", "ai-edge-litert", "tensorflow", "torch")
        # Published under its own name, nothing else left beside it.
        assert result.dst.exists() and result.dst.is_dir() == (fmt == "savedmodel")
        assert [p.name for p in result.dst.parent.iterdir()] == [result.dst.name]
        assert result.free_axes == ("batch", "height", "width")


def test_fresh_processes_of_each_runtime_agree_with_torchvision_and_timm(exported, fresh):
    results, refs = exported
    outputs, inputs, loaded = fresh
    assert loaded == {runtime: [] for runtime in RUNTIMES.values()}, loaded  # each runtime alone
    expected = {}
    with torch.no_grad():
        for name, model in refs.items():
            expected[name] = [model(torch.from_numpy(x)).numpy() for x in inputs]
    for key, (got, about) in outputs.items():
        name, fmt, framework, quantize = key
        bound = EVAL_TOLERANCE if quantize == "none" else QUANTIZATION_BOUNDS[quantize].max_error
        for reference, value in zip(expected[name], got):
            assert value.shape == reference.shape, key
            assert relative_error(reference, value) <= bound, (key, relative_error(reference, value))
            if quantize == "none":
                assert (reference.argmax(1) == value.argmax(1)).all(), key
        # What each runtime sees of the input: every axis free but the channels.
        if fmt == "onnx":
            assert about["shape"] == (["batch", 3, "height", "width"] if framework == "torch"
                                      else ["batch", "height", "width", 3]), about
        elif fmt == "tflite":
            assert about == {"shape": [-1, -1, -1, 3], "dtype": "float32"}, about  # float input, even quantized
        elif fmt == "savedmodel":
            assert about == {"input": "input", "shape": [None, None, None, 3], "output": "output_0"}, about
        else:  # pt2: sizes below the range are refused by the program itself
            least = signatures.smallest_side(results[key].spec)
            assert least == 33 and str(least) in about["refusal_below_range"], about


def test_quantized_files_agree_with_pytorch_float32_on_real_images(exported):
    results, _ = exported
    for name in ("resnet18", "resnest50"):
        float32 = results[name, "tflite", "keras", "none"].dst.stat().st_size
        for quantize, bound in QUANTIZATION_BOUNDS.items():
            result = results[name, "tflite", "keras", quantize]
            (agreement,) = result.report.agreements
            assert agreement.top1 >= bound.top1 and agreement.top5 >= bound.top5, result.report.table()
            # The weights really are stored smaller: half in float16, a quarter in int8.
            ratio = result.dst.stat().st_size / float32
            assert ratio < (0.55 if quantize == "float16" else 0.3), (name, quantize, ratio)
            assert "real images" in result.report.table()


@pytest.fixture(scope="module")
def resnet20():
    """A small network's models, for the tests of publishing."""
    return parity.load_models("resnet20")


def test_a_file_that_disagrees_is_never_published(tmp_path, monkeypatch, resnet20):
    # The exporter writes a program of other weights: the check must catch it, and leave nothing.
    models = resnet20
    impostor = parity.load_models("resnet20", ("torch",), seed=1)["torch"]
    real_write = flow.WRITERS["pt2"].write
    monkeypatch.setattr(flow.WRITERS["pt2"], "write", lambda model, *args: real_write(impostor, *args))
    with pytest.raises(parity.VerificationError, match="resnet20.pt2 was not written.*vs torch, batch 1") as err:
        flow.export_models(models, tmp_path / "resnet20.pt2")
    assert not err.value.report.ok and "FAIL" in err.value.report.table()
    assert list(tmp_path.iterdir()) == []


def test_a_savedmodel_is_replaced_only_with_force(tmp_path, resnet20):
    models = resnet20
    dst = tmp_path / "resnet20"
    dst.mkdir()
    (dst / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="--force"):
        flow.export_models(models, dst, format="savedmodel")
    assert [p.name for p in tmp_path.iterdir()] == ["resnet20"] and (dst / "keep.txt").read_text() == "mine"
    result = flow.export_models(models, str(dst), format="savedmodel", force=True, size=(32, 32))
    assert result.report.ok and (dst / "saved_model.pb").is_file() and not (dst / "keep.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["resnet20"]  # the old one moved aside, then removed
    assert result.free_axes == ("batch",) and {r.name for r in result.report.rows} == {
        f"vs {ref}, batch {n}, 32x32" for ref in ("torch", "keras") for n in (1, 3)}


@pytest.mark.parametrize("dst, options, message", [
    ("model.onnx", {"format": "tiff"}, "unknown format 'tiff'; expected one of onnx, tflite, savedmodel, pt2"),
    ("model.bin", {}, "cannot tell the format from the name; expected a name ending in .onnx, .tflite, .pt2"),
    ("model", {}, "a directory name ending in '/' for a SavedModel, or --format"),
    ("model.onnx", {"format": "pt2"}, "names the onnx format but --format is pt2"),
    ("model.tflite/", {}, "a SavedModel is a directory; expected a name without .tflite"),
    ("model.onnx", {"quantize": "float16"}, "onnx has no float16 quantization; expected --quantize none"),
    ("model.tflite", {"quantize": "int4"}, "unknown quantization 'int4'"),
    ("model.pt2", {"framework": "keras"}, "pt2 files are made from torch, not keras; expected --framework torch"),
    ("model.tflite", {"framework": "torch"}, "tflite files are made from keras, not torch"),
    ("saved/", {"framework": "torch"}, "savedmodel files are made from keras, not torch"),
])
def test_requests_that_cannot_be_made_say_what_was_expected(tmp_path, dst, options, message):
    options = {"format": None, "framework": None, "quantize": "none", **options}
    with pytest.raises(formats.ExportError) as err:
        formats.check_request(f"{tmp_path}/{dst}", options["format"], options["framework"], options["quantize"],
                              force=False)
    assert message in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_format_names_and_size_limits():
    assert formats.format_of("a/b.ONNX").name == "onnx" and formats.format_of("b.pt2").name == "pt2"
    assert formats.format_of("out/resnet50/").name == "savedmodel"
    assert formats.format_of("out/resnet50", "savedmodel").name == "savedmodel"
    import resnet_spec as rs

    # torch.export's dynamic range: the last map keeps 2 pixels a side (stride 32: 33; 16: 17; CIFAR, 4: 5).
    assert signatures.smallest_side(rs.get("resnet50")) == 33
    assert signatures.smallest_side(rs.get("resnet50", output_stride=16)) == 17
    assert signatures.smallest_side(rs.get("resnet20")) == 5
    # A fixed size needs only one pixel left at the end: any positive size for resnet50.
    assert signatures.check_size(rs.get("resnet50"), (1, 3)) == (1, 3)
    with pytest.raises(formats.ExportError, match="too small for resnet50.*at least 1 a side"):
        signatures.check_size(rs.get("resnet50"), (0, 40))


def test_cli_export_refuses_bad_requests_before_loading_anything(tmp_path):
    code = ("import sys\nfrom parity.cli import main\n"
            f"status = main(['export', 'resnet20', {str(tmp_path / 'x.pt2')!r}, '--framework', 'keras'])\n"
            "print(status, sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'tensorflow', 'keras'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == "2 []", out.stdout + out.stderr
    assert "pt2 files are made from torch, not keras" in out.stderr and "Traceback" not in out.stderr


def test_cli_exports_a_checkpoint_to_a_savedmodel_directory(tmp_path):
    checkpoint = shared_checkpoint("resnet20-12fca82f.th")  # a trained network, as users have them
    dst = tmp_path / "served"
    run = subprocess.run([SCRIPT, "export", checkpoint, f"{dst}/", "--size", "32", "32"], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "resnet20: savedmodel from keras" in run.stdout and "PASS" in run.stdout
    assert "input NHWC, dynamic batch; height and width fixed at 32x32" in run.stdout
    assert (dst / "saved_model.pb").is_file() and [p.name for p in tmp_path.iterdir()] == ["served"]
    again = subprocess.run([SCRIPT, "export", checkpoint, f"{dst}/"], capture_output=True, text=True)
    assert again.returncode == 2 and "--force" in again.stderr and "Traceback" not in again.stderr
