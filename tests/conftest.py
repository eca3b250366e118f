"""Shared fixtures. torch and torchvision are imported before anything can import TensorFlow:
importing torchvision after TensorFlow in one process crashes (segmentation fault)."""

import atexit
import gc
import os
import shutil
import subprocess
import sys
import tempfile
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import torchvision  # noqa: F401  (import order, see above)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# JAX compiles each new shape of each op it runs eagerly, Keras' weight initialisers included:
# about 20 s before a first small Keras model on JAX has run. The test process and the processes
# it starts (import orders, other backends, the CLI) share one compilation cache, set here before
# anything imports jax, so only the first of them pays. A torn entry read by a concurrent process
# is only a warning to JAX, which then compiles afresh.
_JAX_CACHE = tempfile.mkdtemp(prefix="resnet-parity-jax-cache-")
atexit.register(shutil.rmtree, _JAX_CACHE, True)
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _JAX_CACHE)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")

# The real checkpoints live in the shared folder beside the repository (never copied into it);
# RESNET_PARITY_CHECKPOINTS points elsewhere, e.g. for a clone made in a temporary directory.
SHARED_CHECKPOINTS = Path(
    os.environ.get("RESNET_PARITY_CHECKPOINTS")
    or Path(__file__).resolve().parents[1].parent / "shared" / "checkpoints"
)

# The installed console script, as a user runs it.
CLI_SCRIPT = shutil.which("resnet-parity", path=str(Path(sys.executable).parent))

# Spatial sizes every family is tested at: even, odd and non-square.
IMAGENET_SIZES = [(64, 64), (67, 67), (61, 86)]
CIFAR_SIZES = [(32, 32), (33, 33), (31, 40)]


def size_for(spec, small, large):
    """`small` for a CIFAR-scale variant (32x32 inputs), `large` for the others; the native size
    for a classifier that reads a fixed-size map (spec.fixed_input: the notebook's, which takes
    96x96 only; its backbone is tested at odd sizes)."""
    if spec.fixed_input:
        return [(spec.input_size, spec.input_size)] if isinstance(small, list) else (spec.input_size,) * 2
    return small if spec.input_size <= 32 else large


def sizes_for(spec):
    return size_for(spec, CIFAR_SIZES, IMAGENET_SIZES)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _resident_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None  # not Linux: collect every time


_collected_at = [0]
GC_GROWTH = 1 << 30  # bytes the process may grow between two full collections


def free_keras_memory() -> None:
    """Keras' global state cleared; a full garbage collection only once the process has grown by
    GC_GROWTH since the last one. A full collection walks every object, the shared models'
    included: seconds each once the cache is full, twice per test before (clear_session collects
    too), while the cycles of a test's own models only matter if they pile up."""
    import keras

    keras.backend.clear_session(free_memory=False)
    rss = _resident_bytes()
    if rss is None or rss - _collected_at[0] > GC_GROWTH:
        gc.collect()
        _collected_at[0] = _resident_bytes() or 0


@pytest.fixture
def free_keras():
    """After the test, what it built in Keras may go (free_keras_memory)."""
    yield
    free_keras_memory()


class KerasModels:
    """Built resnet_tf models by spec, kept for the whole test process: building Keras graphs is
    most of the suite's time (resnet1202: 13 s, resnest269: 6 s), and most specs are built by
    several tests. Callers assign every weight before use (porting does, strictly) and never change
    a model's structure. The oldest models go once those kept exceed `budget` parameters."""

    def __init__(self, budget: int = 1_600_000_000):
        self.budget = budget
        self.models: "OrderedDict[tuple, object]" = OrderedDict()

    def __call__(self, spec, policy: str | None = None):
        """The model of `spec`, built under the dtype `policy` (default: the global one)."""
        import keras
        import resnet_spec as rs
        import resnet_tf

        policy = policy or keras.config.dtype_policy().name
        key = (spec, keras.backend.backend(), policy)
        if key in self.models:
            self.models.move_to_end(key)
            return self.models[key]
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(policy)
        try:
            model = self.models[key] = resnet_tf.ResNet(spec)
        finally:
            keras.config.set_dtype_policy(previous)
        size = lambda k: rs.count_parameters(k[0]).params  # noqa: E731
        while len(self.models) > 1 and sum(map(size, self.models)) > self.budget:
            self.models.popitem(last=False)
        return model


keras_model_of = KerasModels()


def ported(name_or_spec, seed: int = 0, policy: str | None = None, **options):
    """(a resnet_torch model with randomised weights, in eval mode; a resnet_tf model of the same
    spec holding its weights, from keras_model_of, built under the dtype `policy` if given)."""
    import parity
    import resnet_spec as rs
    import resnet_torch
    from parity.testing import randomize_torch

    torch_model = randomize_torch(resnet_torch.ResNet(rs.resolve(name_or_spec, **options)), seed).eval()
    return torch_model, parity.torch_to_keras(torch_model, keras_model_of(torch_model.spec, policy))


def shared_checkpoint(name: str) -> Path:
    """A real checkpoint from the shared folder. Where there is no such folder the test is
    skipped, saying so; where the folder exists, a missing file is a failure."""
    if not SHARED_CHECKPOINTS.is_dir():
        pytest.skip(f"no shared checkpoints at {SHARED_CHECKPOINTS} (set RESNET_PARITY_CHECKPOINTS)")
    path = SHARED_CHECKPOINTS / name
    if not path.exists():
        pytest.fail(f"{path} is missing from the shared checkpoints")
    return path


def assert_imports_none_of(code: str, forbidden: tuple[str, ...]) -> None:
    """Run `code` in a fresh interpreter and assert it loaded none of the `forbidden` packages."""
    probe = f"{code}\nimport sys\nprint(sorted({{m.split('.')[0] for m in sys.modules}} & {set(forbidden)!r}))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]", f"{code!r} loaded {out.stdout.strip()}"


# After some import order: run both frameworks, and each LLVM-based compiler that is loaded
# (XLA for TensorFlow and JAX), where a clash of bundled LLVMs would show.
RUN_BOTH = """
import sys
import numpy as np
import resnet_torch, resnet_tf, torch, keras
with torch.no_grad():
    resnet_torch.create_model("resnet20", layers=(1, 1, 1)).eval()(torch.zeros(1, 3, 8, 8))
resnet_tf.create_model("resnet20", layers=(1, 1, 1))(np.zeros((1, 8, 8, 3), "float32"))
if "tensorflow" in sys.modules:
    import tensorflow as tf
    tf.function(lambda x: x * 2, jit_compile=True)(tf.ones(2))
if "jax" in sys.modules:
    import jax
    jax.jit(lambda x: x * 2)(1.0)
print("ran")
"""


def import_order_failures(orders, backend: str) -> list[str]:
    """Each order of imports in its own lean process (several at a time) on Keras' `backend`,
    then RUN_BOTH; the orders that did not end well, with how they ended."""
    from concurrent.futures import ThreadPoolExecutor

    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}

    def run(order):
        code = "".join(f"import {m}\n" for m in order) + RUN_BOTH
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        ok = out.returncode == 0 and out.stdout.strip().endswith("ran")
        return None if ok else f"{' '.join(order)}: exit {out.returncode}, {out.stderr.strip()[-300:]}"

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return [f for f in pool.map(run, orders) if f]
