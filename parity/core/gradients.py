"""Gradients of a Keras model's loss with the running backend's own autodiff.

TensorFlow: tf.GradientTape. JAX: jax.value_and_grad over the model's stateless_call, compiled,
the moving statistics it returns assigned back. PyTorch: autograd, from the variables' tensors.
Each path is what that backend's users write; the three give the same numbers.
"""

from __future__ import annotations

import weakref

from .frameworks import keras

# model -> {(loss_of, training): its compiled JAX step}, so that a training loop compiles once.
_JAX_STEPS = weakref.WeakKeyDictionary()


def value_and_grad(model, inputs, loss_of, targets=None, training: bool = True):
    """(loss, outputs, gradients): `outputs` = model(inputs, training), loss =
    loss_of(outputs, targets) (written with keras.ops), and its gradient for each of
    model.trainable_variables, in order. BatchNorm moving statistics are updated as a plain
    call would update them. Pass what changes from step to step as `targets`, not inside
    `loss_of`: on JAX the step is compiled once per model and loss_of."""
    backend = keras.backend.backend()
    trainable = model.trainable_variables
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            outputs = model(inputs, training=training)
            loss = loss_of(outputs, targets)
        return loss, outputs, tape.gradient(loss, trainable)
    if backend == "jax":
        import jax

        frozen = model.non_trainable_variables
        steps = _JAX_STEPS.setdefault(model, {})
        if (loss_of, training) not in steps:

            def loss_and_state(values, frozen_values, x, y):
                outputs, updated = model.stateless_call(values, frozen_values, x, training=training)
                return loss_of(outputs, y), (outputs, updated)

            # Compiled: JAX dispatching a ResNet op by op takes longer than compiling it.
            steps[loss_of, training] = jax.jit(jax.value_and_grad(loss_and_state, has_aux=True))
        (loss, (outputs, updated)), grads = steps[loss_of, training](
            [v.value for v in trainable], [v.value for v in frozen], inputs, targets)
        for variable, value in zip(frozen, updated):
            variable.assign(value)
        return loss, outputs, grads
    if backend == "torch":
        for variable in trainable:
            variable.value.grad = None
        outputs = model(inputs, training=training)
        loss = loss_of(outputs, targets)
        loss.backward()
        return loss, outputs, [variable.value.grad for variable in trainable]
    raise NotImplementedError(f"no gradients for the Keras backend {backend!r}")
