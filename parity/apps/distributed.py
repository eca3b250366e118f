"""Data-parallel training with the frameworks' own engines, and proof that one data-parallel step
equals one single-process step on the combined batch.

PyTorch: DistributedDataParallel averages the gradients of the replicas, so with each replica's
loss the mean over its equal share of the batch, the averaged gradient is that of the mean loss
over the combined batch. BatchNorm must normalise with the statistics of the combined batch:
`nn.SyncBatchNorm` does so, but only for CUDA (and XPU/HPU) tensors; for CPU processes
(gloo) `GlooSyncBatchNorm` below computes the same thing with autograd-aware all-reduces.
`convert_sync_batchnorm` picks the right one.

TensorFlow: tf.distribute.MirroredStrategy runs the replica function on every device and
`optimizer.apply` sums the replicas' gradients, so each replica's loss is the sum of its
per-example losses divided by the global batch size. resnet_tf's BatchNorm honours Keras'
`synchronized=True`: it all-reduces the per-channel sums and counts across replicas (two
passes, as in one process) and updates the moving statistics with the unbiased variance of the
combined batch, as PyTorch does. `synchronize_batchnorm` turns that on in a built model.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import resnet_spec as rs

from ..core.metrics import worst_relative_error
from ..core.report import EVAL_TOLERANCE
from ..core.training import LEARNING_RATE

MOMENTUM = 0.9
DP_TOLERANCE = EVAL_TOLERANCE  # relative to max(1, max |reference|), every parameter and running statistic


# ----------------------------------------------------------------------------- PyTorch


def _torch():
    from ..core.frameworks import torch

    return torch


@functools.cache
def _gloo_sync_batchnorm_class():
    torch = _torch()

    class _AllReduceSum(torch.autograd.Function):
        """Sum over processes; the gradient of every process's input is the sum of the gradients."""

        @staticmethod
        def forward(ctx, x):
            x = x.clone()
            torch.distributed.all_reduce(x)
            return x

        @staticmethod
        def backward(ctx, grad):
            grad = grad.clone()
            torch.distributed.all_reduce(grad)
            return grad

    all_reduce = _AllReduceSum.apply

    class GlooSyncBatchNorm(torch.nn.BatchNorm2d):
        """BatchNorm2d whose training statistics are those of the batch over all processes of
        the default group, for any device (gloo included); the same numbers as nn.SyncBatchNorm.
        Inference, and training outside torch.distributed, are BatchNorm2d's own."""

        def forward(self, x):
            dist = torch.distributed
            if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
                return super().forward(x)
            axes = (0, 2, 3)
            count = all_reduce(torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype))
            mean = all_reduce(x.sum(axes)) / count
            centred = x - mean.view(1, -1, 1, 1)
            var = all_reduce(centred.square().sum(axes)) / count
            with torch.no_grad():
                m = self.momentum
                self.running_mean.mul_(1 - m).add_(m * mean)
                self.running_var.mul_(1 - m).add_(m * var * count / (count - 1))  # unbiased, as PyTorch
                self.num_batches_tracked.add_(1)
            y = centred * torch.rsqrt(var + self.eps).view(1, -1, 1, 1)
            return y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)

    return GlooSyncBatchNorm


def convert_sync_batchnorm(model):
    """Every BatchNorm2d of `model` synchronised across the default process group:
    nn.SyncBatchNorm where the model is on CUDA, GlooSyncBatchNorm otherwise (CPU)."""
    torch = _torch()
    device = next(model.parameters()).device
    if device.type == "cuda":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    cls = _gloo_sync_batchnorm_class()
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if type(child) is torch.nn.BatchNorm2d:
                sync = cls(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
                sync.load_state_dict(child.state_dict())
                setattr(module, child_name, sync)
    return model


def torch_sgd_step(model, x, y, lr: float = LEARNING_RATE, momentum: float = MOMENTUM) -> float:
    """One training step: mean cross-entropy over the (local) batch, backward, SGD with momentum."""
    torch = _torch()
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
    loss.backward()
    opt.step()
    return loss.item()


def _ddp_worker(rank, world_size, rendezvous, name, state_path, data_path, out_path):
    torch = _torch()
    import resnet_torch

    torch.set_num_threads(1)
    # A file store, not tcp://: a port picked in advance can be taken before the workers bind it.
    torch.distributed.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world_size)
    try:
        model = resnet_torch.create_model(name)
        model.load_state_dict(torch.load(state_path, weights_only=True))
        ddp = torch.nn.parallel.DistributedDataParallel(convert_sync_batchnorm(model))
        data = np.load(data_path)
        share = len(data["y"]) // world_size
        part = slice(rank * share, (rank + 1) * share)
        loss = torch_sgd_step(ddp, data["x"][part], data["y"][part])
        mean_loss = torch.tensor([loss / world_size])
        torch.distributed.all_reduce(mean_loss)
        if rank == 0:
            torch.save({"state_dict": model.state_dict(), "loss": mean_loss.item()}, out_path)
    finally:
        torch.distributed.destroy_process_group()


def torch_ddp_step(name: str, state_dict, x: np.ndarray, y: np.ndarray, world_size: int = 2):
    """(state_dict, mean loss) after one DistributedDataParallel step of `world_size` CPU
    processes (gloo, meeting through a file store) on equal shares of the batch (x NCHW,
    y labels), starting from `state_dict`, with synchronised BatchNorm."""
    torch = _torch()
    if len(y) % world_size:
        raise ValueError(f"batch of {len(y)} does not split into {world_size} equal shares")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        torch.save(state_dict, tmp / "state.pt")
        np.savez(tmp / "data.npz", x=x, y=y)
        torch.multiprocessing.spawn(
            _ddp_worker, args=(world_size, tmp / "rendezvous", name, tmp / "state.pt", tmp / "data.npz", tmp / "out.pt"),
            nprocs=world_size, join=True,
        )
        out = torch.load(tmp / "out.pt", weights_only=True)
    return out["state_dict"], out["loss"]


# ----------------------------------------------------------------------------- Keras / TensorFlow


def synchronize_batchnorm(keras_model):
    """Turn on `synchronized` in every resnet_tf BatchNorm of `keras_model`, in place: inside a
    tf.distribute strategy, training then uses the global batch's statistics (the layers keep
    their variables; inference is unchanged); return the model."""
    import resnet_tf

    for layer in keras_model.layers:
        if isinstance(layer, resnet_tf.BatchNorm):
            layer.synchronized = True
    return keras_model


def keras_train_step(model, optimizer, x, y, global_batch: int):
    """The loss of one replica's share, scaled for a strategy that sums gradients: the sum of
    per-example cross-entropies over the global batch size; applies the gradients."""
    from ..core.frameworks import keras
    import tensorflow as tf

    with tf.GradientTape() as tape:
        logits = model(x, training=True)
        loss = keras.ops.sum(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)) / global_batch
    optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
    return loss


def keras_model_and_sgd(name: str, state: dict):
    """A resnet_tf model holding the state_dict `state` (numpy arrays), and a built SGD optimizer
    (LEARNING_RATE, MOMENTUM) for its trainable variables."""
    import resnet_tf

    from ..core import porting
    from ..core.frameworks import keras

    model = porting.state_dict_to_keras(state, resnet_tf.create_model(name))
    optimizer = keras.optimizers.SGD(learning_rate=LEARNING_RATE, momentum=MOMENTUM)
    optimizer.build(model.trainable_variables)
    return model, optimizer


def _worker_inputs(data_path: str):
    """(name, NHWC images, labels, state_dict) from the file a worker process is given."""
    data = dict(np.load(data_path, allow_pickle=False))
    name = str(data.pop("name"))
    x, y = np.transpose(data.pop("x"), (0, 2, 3, 1)), data.pop("y")
    return name, x, y, data


def _run_worker(function: str, name: str, state_dict, x, y, count: int, env: dict) -> dict:
    """Run `function`(data, out, count) of this module in a fresh process with `env`; return what
    it saved."""
    state = {k: np.asarray(v) for k, v in state_dict.items()}
    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "data.npz", Path(tmp) / "out.npz"
        np.savez(data, name=np.array(name), x=x, y=y, **state)
        code = f"from parity.apps.distributed import {function}; {function}({str(data)!r}, {str(out)!r}, {count})"
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env})
        if run.returncode != 0:
            raise RuntimeError(f"the {function} process failed:\n{run.stderr[-4000:]}")
        return dict(np.load(out))


def _by_label(saved: dict, labels) -> dict:
    results = {}
    for label in labels:
        prefix = f"{label}/"
        weights = {k[len(prefix):]: v for k, v in saved.items() if k.startswith(prefix) and not k.endswith("/loss")}
        results[label] = (weights, float(saved[f"{label}/loss"]))
    return results


def _saved(results: dict, label: str, model, loss) -> None:
    from ..core import porting

    results.update({f"{label}/{k}": v.numpy() for k, v in porting.keras_to_state_dict(model).items()})
    results[f"{label}/loss"] = np.array(float(loss))


def keras_worker(data_path: str, out_path: str, replicas: int) -> None:
    """Run in a fresh process: split the CPU into `replicas` logical devices (before TensorFlow
    initialises), then one MirroredStrategy step with synchronised and with per-replica
    BatchNorm, and one single-device step on the combined batch; save the weights after each."""
    from ..core.frameworks import keras  # noqa: F401  (torch before TensorFlow)

    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
    name, x, y, state = _worker_inputs(data_path)

    results = {}
    # One strategy for both runs: a second MirroredStrategy in one process reuses collective keys.
    strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(replicas)])
    share = len(y) // replicas
    shards = strategy.experimental_distribute_values_from_function(
        lambda ctx: (x[ctx.replica_id_in_sync_group * share :][:share], y[ctx.replica_id_in_sync_group * share :][:share])
    )
    for label, sync in (("mirrored", True), ("mirrored_unsynchronised", False)):
        with strategy.scope():
            model, optimizer = keras_model_and_sgd(name, state)
            if sync:
                synchronize_batchnorm(model)

        @tf.function
        def step(batch):
            losses = strategy.run(lambda xs, ys: keras_train_step(model, optimizer, xs, ys, len(y)), args=batch)
            return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

        _saved(results, label, model, step(shards))

    model, optimizer = keras_model_and_sgd(name, state)
    _saved(results, "single", model, keras_train_step(model, optimizer, x, y, len(y)))
    np.savez(out_path, **results)


def keras_mirrored_step(name: str, state_dict, x: np.ndarray, y: np.ndarray, replicas: int = 2) -> dict:
    """In a subprocess (TensorFlow's devices are fixed once it initialises): one step under
    MirroredStrategy over `replicas` logical CPU devices, with synchronised BatchNorm
    ("mirrored") and without ("mirrored_unsynchronised"), and one single-device step on the
    combined batch ("single"). Returns {label: (state_dict as numpy, loss)}."""
    if len(y) % replicas:
        raise ValueError(f"batch of {len(y)} does not split into {replicas} equal shares")
    saved = _run_worker("keras_worker", name, state_dict, x, y, replicas, {"KERAS_BACKEND": "tensorflow"})
    return _by_label(saved, ("mirrored", "mirrored_unsynchronised", "single"))


# ----------------------------------------------------------------------------- Keras / JAX


def mean_cross_entropy(logits, labels):
    """Cross-entropy averaged over the batch, as a sum over the count (Keras' ops.mean reduces
    in float32 off TensorFlow); under a data-parallel jit the batch is the global one."""
    from ..core.frameworks import keras

    losses = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    return keras.ops.sum(losses) / labels.shape[0]


def jax_worker(data_path: str, out_path: str, devices: int) -> None:
    """Run in a fresh process on Keras' JAX backend with `devices` host devices (XLA_FLAGS):
    one step under keras.distribution.DataParallel, the batch sharded over the devices and the
    variables replicated, and one step on a single device; save the weights after each.

    Nothing in the model is told about the devices: jax.jit partitions the step (GSPMD), so
    each BatchNorm's sums over the batch axis are the global batch's, all-reduced by XLA."""
    import jax

    from ..core.frameworks import keras
    from ..core.gradients import value_and_grad

    if len(jax.devices()) < devices:
        raise RuntimeError(f"{len(jax.devices())} JAX devices; set XLA_FLAGS=--xla_force_host_platform_device_count={devices}")
    name, x, y, state = _worker_inputs(data_path)

    def step(model, optimizer, xs, ys):
        loss, _, grads = value_and_grad(model, xs, mean_cross_entropy, ys)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    results = {}
    model, optimizer = keras_model_and_sgd(name, state)
    _saved(results, "single", model, step(model, optimizer, x, y))

    distribution = keras.distribution.DataParallel(devices=jax.devices()[:devices])
    with distribution.scope():
        model, optimizer = keras_model_and_sgd(name, state)
        xs = keras.distribution.distribute_tensor(x, distribution.get_data_layout(x.shape))
        ys = keras.distribution.distribute_tensor(y, distribution.get_data_layout(y.shape))
        results["data_parallel/devices"] = np.array(len(xs.sharding.device_set))
        _saved(results, "data_parallel", model, step(model, optimizer, xs, ys))
    np.savez(out_path, **results)


def keras_data_parallel_step(name: str, state_dict, x: np.ndarray, y: np.ndarray, devices: int = 2) -> dict:
    """In a subprocess on Keras' JAX backend with `devices` host devices: one step under
    keras.distribution.DataParallel ("data_parallel") and one single-device step on the whole
    batch ("single"). Returns {label: (state_dict as numpy, loss)} and, under "devices", how
    many devices the batch was split over."""
    if len(y) % devices:
        raise ValueError(f"batch of {len(y)} does not split into {devices} equal shares")
    env = {"KERAS_BACKEND": "jax", "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    saved = _run_worker("jax_worker", name, state_dict, x, y, devices, env)
    results = _by_label(saved, ("data_parallel", "single"))
    results["devices"] = int(saved.pop("data_parallel/devices"))
    return results


def max_relative_difference(reference: dict, other: dict) -> tuple[float, str]:
    """The largest relative error (metrics.relative_error) over the float tensors of two
    state_dicts, and its key; BatchNorm counters aside."""
    return worst_relative_error(reference, other, skip={k for k in reference if k.endswith(rs.BN_COUNTER)})
