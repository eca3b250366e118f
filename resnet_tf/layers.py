"""Keras layers for the plan's layer descriptors, and the layers Keras lacks.

Every weighted layer is a stock Keras layer (Conv2D, BatchNormalization, Dense, or a thin
subclass of one) configured to compute what PyTorch computes; the few numerics Keras has no
stock layer for (pools with PyTorch's padding rules, the option A shortcut, split attention)
are small custom layers written with `keras.ops` only, registered so that `.keras` files reload
without custom_objects.
"""

from __future__ import annotations

import functools

import keras
from keras import ops

import resnet_spec as rs

PACKAGE = "resnet_tf"

# torchvision's initialisation (kaiming_normal_, mode="fan_out", nonlinearity="relu").
CONV_INIT = keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")


def keras_name(plan_name: str) -> str:
    """The Keras name of a plan name on the running backend (resnet_spec.keras_name): the same
    name, except on PyTorch, which refuses dots."""
    return rs.keras_name(plan_name, keras.backend.backend())


def make(step: rs.Step) -> keras.layers.Layer:
    """The Keras layer for one step of the plan, named exactly as the plan names it. A step the
    plan marks zero_init (zero_init_residual) starts its output at zero (BatchNorm scale or
    conv kernel)."""
    zero_init = getattr(step, "zero_init", False)
    name = keras_name(step.name)
    if isinstance(step, rs.Conv):
        return Conv2D(
            step.out_channels,
            step.kernel_size,
            strides=step.stride,
            padding="valid",  # explicit symmetric padding comes from pad_for(); see there
            dilation_rate=step.dilation,
            groups=step.groups,
            use_bias=step.bias,
            kernel_initializer="zeros" if zero_init else CONV_INIT,
            bias_initializer="zeros",
            name=name,
        )
    if isinstance(step, rs.BatchNorm):
        return BatchNorm(
            epsilon=step.eps,
            momentum=1.0 - step.momentum,  # Keras keeps `momentum` of the old value, torch of the new
            gamma_initializer="zeros" if zero_init else "ones",
            name=name,
        )
    if isinstance(step, rs.ReLU):
        return keras.layers.ReLU(name=name)
    if isinstance(step, rs.Linear):
        # torch.nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
        bound = step.in_features**-0.5
        return Dense(
            step.out_features,
            kernel_initializer=keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform"),
            bias_initializer=keras.initializers.RandomUniform(-bound, bound),
            name=name,
        )
    if isinstance(step, rs.Pool):
        if step.is_identity:  # avg-down shortcut of a stride-1 block: kept so the names line up
            return keras.layers.Identity(name=name)
        return Pool2D(
            step.kind,
            step.kernel_size,
            step.stride,
            step.padding,
            ceil_mode=step.ceil_mode,
            count_include_pad=step.count_include_pad,
            zero_pad=step.zero_pad,
            name=name,
        )
    if isinstance(step, rs.ZeroPadShortcut):
        return ZeroPadShortcut(step.stride, step.pad_before, step.pad_after, name=name)
    if isinstance(step, rs.GlobalPool):
        return GlobalPool(step.kind, name=name)
    if isinstance(step, rs.Flatten):  # a 1x1 map: a reshape, whatever the channel order
        return keras.layers.Reshape((step.features,), name=name)
    if isinstance(step, rs.Dropout):
        return keras.layers.Dropout(step.rate, name=name)
    raise TypeError(f"no Keras layer for step {step!r}")


@keras.saving.register_keras_serializable(package=PACKAGE)
class Dense(keras.layers.Dense):
    """keras.layers.Dense (no activation), its product as an einsum: off TensorFlow, Keras'
    ops.matmul computes float64 inputs in float32 (its type promotion maps 64 to 32 bits),
    ops.einsum in their own dtype. The class keeps Keras' name, so saved files number these
    layers as they number stock Dense layers."""

    def call(self, inputs, training=None):
        if self.compute_dtype in ("float16", "bfloat16"):
            # Half-precision products summed in float32, as PyTorch's autocast linear does:
            # TensorFlow's CPU einsum sums float16 in float16, 4e-3 from float64 over resnet50's
            # 2048 features where PyTorch is 7e-4.
            y = ops.einsum("...i,io->...o", ops.cast(inputs, "float32"), ops.cast(self.kernel, "float32"))
            y = ops.cast(y, self.compute_dtype)
        else:
            y = ops.einsum("...i,io->...o", inputs, self.kernel)
        return y + self.bias if self.use_bias else y


@keras.saving.register_keras_serializable(package=PACKAGE)
class Conv2D(keras.layers.Conv2D):
    """keras.layers.Conv2D, except that on TensorFlow a grouped convolution's forward pass runs
    TensorFlow's own kernel.

    Keras' TensorFlow backend compiles every grouped convolution with XLA, because TensorFlow's
    CPU kernels have no gradient for one (without oneDNN). XLA's CPU grouped convolution is slow:
    resnext50_32x4d's first-stage 3x3 takes 180 ms at batch 16 through XLA, 108 ms through
    TensorFlow's kernel and 19 ms with oneDNN (TF_ENABLE_ONEDNN_OPTS=1). So the forward pass
    calls TensorFlow directly and only the gradient goes through XLA. A grouped convolution
    with a bias (a BatchNorm folded into it) stays on Keras' path: in a tf.function, TensorFlow's
    graph optimiser fuses conv, bias and ReLU into a kernel that refuses groups. The class keeps
    Keras' name, so saved files number these layers exactly as they number stock Conv2D layers.
    """

    def convolution_op(self, inputs, kernel):
        if (self.groups == 1 or self.use_bias or keras.backend.backend() != "tensorflow"
                or self.data_format != "channels_last" or self.padding != "valid"):
            return super().convolution_op(inputs, kernel)
        return _grouped_conv_tf(tuple(self.strides), tuple(self.dilation_rate))(inputs, kernel)


@functools.cache
def _grouped_conv_tf(strides: tuple, dilations: tuple):
    """A TensorFlow grouped convolution (NHWC, valid padding) whose gradient XLA computes."""
    import tensorflow as tf

    def forward(x, kernel):
        return tf.nn.convolution(x, kernel, strides=list(strides), padding="VALID", dilations=list(dilations))

    @tf.function(jit_compile=True)
    def backward(x, kernel, dy):
        with tf.GradientTape() as tape:
            tape.watch([x, kernel])
            y = forward(x, kernel)
        return tape.gradient(y, [x, kernel], output_gradients=dy)

    @tf.custom_gradient
    def conv(x, kernel):
        return forward(x, kernel), lambda dy: backward(x, kernel, dy)

    # The kernel is read outside: the gradient reaches the variable through the read.
    return lambda x, kernel: conv(x, tf.convert_to_tensor(kernel))


@keras.saving.register_keras_serializable(package=PACKAGE)
class BatchNorm(keras.layers.BatchNormalization):
    """keras.layers.BatchNormalization with PyTorch's training-mode statistics.

    In training, PyTorch normalises with the biased batch variance but updates running_var with
    the unbiased one (times n / (n - 1), n values per channel); Keras would update it with the
    biased one. The variance is also computed as mean((x - mean)^2): Keras' TensorFlow backend
    uses E[x^2] - E[x]^2, which loses digits when the mean is large against the spread.
    With `synchronized=True`, inside a tf.distribute replica context, the statistics are those
    of the global batch (sums and counts all-reduced over the replicas), as SyncBatchNorm's.
    Inference is Keras' own (moving statistics), unchanged.
    """

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or mask is not None or self.renorm:
            return super().call(inputs, training=training, mask=mask)
        # Statistics in at least float32, as Keras does (float64 stays float64).
        stats_dtype = "float64" if self.compute_dtype == "float64" else "float32"
        x = ops.cast(inputs, stats_dtype)
        axes = [i for i in range(len(x.shape)) if i != self.axis % len(x.shape)]
        n = ops.cast(ops.size(x), stats_dtype) / x.shape[self.axis]  # values per channel
        # Sums, not ops.mean: on JAX and PyTorch Keras' mean reduces in float32 even for float64
        # inputs; staged (see staged_sum). The variance in a second pass around the (global) mean.
        total = (_replica_sum() if self.synchronized else None) or (lambda value: value)
        n = total(n)
        mean = total(staged_sum(x, axes)) / n
        variance = total(staged_sum(ops.square(x - mean), axes)) / n
        unbiased = variance * n / ops.maximum(n - 1.0, 1.0)
        # From the variables' tensors: Keras on PyTorch multiplies a variable by a Python float in
        # float32 (0.9 becomes 0.899999976), a tensor in its own dtype.
        m = self.momentum
        for var, batch in ((self.moving_mean, mean), (self.moving_variance, unbiased)):
            var.assign(var.value * m + ops.cast(batch, var.dtype) * (1.0 - m))
        y = ops.batch_normalization(
            x, mean, variance, axis=self.axis, offset=self.beta, scale=self.gamma, epsilon=self.epsilon
        )
        return ops.cast(y, self.compute_dtype)


def staged_sum(x, axes):
    """The sum of `x` over `axes`, one axis at a time, last first. TensorFlow's CPU kernel adds
    the N*H*W values of a channel in long runs and loses digits as the count grows; axis by axis
    each partial sum adds at most max(N, H, W) terms. Measured on (8, 56, 56, 64) float32 maps
    of mean 3 and spread 0.5, the batch mean's and variance's relative error against float64:
    TensorFlow 1.6e-6 in one reduction, 1.8e-7 staged; JAX and PyTorch 1.8e-7 either way."""
    for axis in sorted(axes, reverse=True):
        x = ops.sum(x, axis=axis)
    return x


def _replica_sum():
    """A sum over the replicas of the current tf.distribute strategy, or None outside one (or
    with a single replica, or on another backend)."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return None
    return lambda value: ctx.all_reduce(tf.distribute.ReduceOp.SUM, value)


def pad_for(conv: rs.Conv) -> keras.layers.Layer | None:
    """PyTorch's symmetric zero padding for `conv`, as its own layer (None when there is none).

    Keras' padding="same" pads the extra row/column at the bottom/right for stride 2, which
    samples different pixels than PyTorch at even sizes; explicit padding matches at every size.
    """
    if conv.padding == 0:
        return None
    return keras.layers.ZeroPadding2D(conv.padding, name=keras_name(f"{conv.name}_pad"))


@keras.saving.register_keras_serializable(package=PACKAGE)
class Pool2D(keras.layers.Layer):
    """Max or average pooling with PyTorch's semantics (torch.nn.MaxPool2d / AvgPool2d).

    - Max pooling pads with -inf: zero padding would win over negative inputs, which the stem
      pool of a pre-activation network sees (its input is the raw conv output, no ReLU); with
      zero_pad it pads with zeros, as keras.applications' ZeroPadding2D before its pool does.
    - Average pooling divides by the window size (count_include_pad=True) or by the number of
      real pixels in the window (False), as PyTorch does.
    - ceil_mode keeps a last partial window at the bottom/right; it averages only the pixels
      inside input + padding (PyTorch never counts the extra ceil-mode area).
    """

    def __init__(
        self,
        kind: str,
        kernel_size: int,
        stride: int,
        padding: int = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        zero_pad: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if kind not in ("max", "avg"):
            raise ValueError(f"kind: got {kind!r}, expected 'max' or 'avg'")
        if 2 * padding > kernel_size:
            raise ValueError(f"padding {padding} must be at most half of kernel_size {kernel_size}")
        self.kind, self.kernel_size, self.stride, self.padding = kind, kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad, self.zero_pad = ceil_mode, count_include_pad, zero_pad

    def call(self, x):
        k, s, p = self.kernel_size, self.stride, self.padding
        # ceil_mode may need up to s - 1 extra rows/columns at the bottom/right.
        extra = s - 1 if self.ceil_mode else 0
        widths = [[0, 0], [p, p + extra], [p, p + extra], [0, 0]]
        if self.kind == "max":
            fill = 0.0 if self.zero_pad else float("-inf")
            y = ops.max_pool(ops.pad(x, widths, constant_values=fill), k, s, "valid")
        else:
            y = ops.average_pool(ops.pad(x, widths), k, s, "valid")
            if extra or (p and not self.count_include_pad):
                y = y / self._window_fraction(x, widths)
        if self.ceil_mode and p:
            height, width = ops.shape(x)[1], ops.shape(x)[2]
            extent = functools.partial(rs.output_length, kernel=k, stride=s, padding=p, ceil_mode=True,
                                       minimum=ops.minimum)
            y = y[:, : extent(height), : extent(width)]
        return y

    def _window_fraction(self, x, widths):
        """Per output pixel, the share of the k*k window that PyTorch counts as its divisor."""
        p = self.padding
        mask = ops.ones_like(x[:1, :, :, :1])
        if self.count_include_pad:  # the padding counts, the ceil-mode extra does not
            mask = ops.pad(mask, [[0, 0], [p, p], [p, p], [0, 0]], constant_values=1.0)
            widths = [[0, 0], [0, widths[1][1] - p], [0, widths[2][1] - p], [0, 0]]
        mask = ops.pad(mask, widths)
        return ops.average_pool(mask, self.kernel_size, self.stride, "valid")

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        k, s, p, ceil = self.kernel_size, self.stride, self.padding, self.ceil_mode
        extent = functools.partial(rs.output_length, kernel=k, stride=s, padding=p, ceil_mode=ceil)
        return (n, None if h is None else extent(h), None if w is None else extent(w), c)

    def get_config(self):
        return {
            **super().get_config(),
            "kind": self.kind,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding,
            "ceil_mode": self.ceil_mode,
            "count_include_pad": self.count_include_pad,
            "zero_pad": self.zero_pad,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class ZeroPadShortcut(keras.layers.Layer):
    """Option A shortcut of the CIFAR ResNets: keep every stride-th pixel (starting at the
    first, as x[:, :, ::s, ::s] in PyTorch), then pad channels with zeros on both sides.

    The zeros are concatenated rather than padded: a Pad feeding the residual sum crashes
    TensorFlow 2.21's oneDNN graph rewrite, or worse. Where a conv with a bias (a BatchNorm
    folded into it) ends the branch, TensorFlow fuses conv, bias, sum and ReLU into one node and
    then merges a Pad into it, and it may take the shortcut's Pad for the conv's own (seen as a
    segmentation fault in MklLayoutRewritePass, in about half the runs of folded resnet20).
    """

    def __init__(self, stride: int, pad_before: int, pad_after: int, **kwargs):
        super().__init__(**kwargs)
        self.stride, self.pad_before, self.pad_after = stride, pad_before, pad_after

    def call(self, x):
        s = self.stride
        if s > 1:
            x = x[:, ::s, ::s, :]
        n, h, w = ops.shape(x)[:3]
        zeros = lambda c: ops.zeros((n, h, w, c), x.dtype)  # noqa: E731
        return ops.concatenate([zeros(self.pad_before), x, zeros(self.pad_after)], axis=-1)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        sub = (lambda v: None if v is None else rs.output_length(v, 1, self.stride))
        return (n, sub(h), sub(w), c + self.pad_before + self.pad_after)

    def get_config(self):
        return {
            **super().get_config(),
            "stride": self.stride,
            "pad_before": self.pad_before,
            "pad_after": self.pad_after,
        }


def spatial_mean(x, keepdims: bool = False):
    """The mean of NHWC `x` over H and W, as a sum divided by the count: Keras' ops.mean reduces
    in float32 on JAX and PyTorch even for float64 inputs."""
    count = ops.cast(ops.shape(x)[1] * ops.shape(x)[2], x.dtype)
    return ops.sum(x, axis=(1, 2), keepdims=keepdims) / count


@keras.saving.register_keras_serializable(package=PACKAGE)
class GlobalPool(keras.layers.Layer):
    """Average or max over the whole map, to (N, C): keras.layers.GlobalAveragePooling2D and
    GlobalMaxPooling2D, with the average exact in float64 on every backend (spatial_mean)."""

    def __init__(self, kind: str = "avg", **kwargs):
        super().__init__(**kwargs)
        if kind not in ("avg", "max"):
            raise ValueError(f"kind: got {kind!r}, expected 'avg' or 'max'")
        self.kind = kind

    def call(self, x):
        return spatial_mean(x) if self.kind == "avg" else ops.max(x, axis=(1, 2))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[3])

    def get_config(self):
        return {**super().get_config(), "kind": self.kind}


def _splits(x, radix: int):
    """The radix splits of NHWC `x`, in PyTorch's channel order: split r holds channels
    [r*C, (r+1)*C) of the NCHW tensor, i.e. of the last axis here."""
    c = x.shape[-1] // radix
    return [x[..., r * c : (r + 1) * c] for r in range(radix)]


@keras.saving.register_keras_serializable(package=PACKAGE)
class RadixGap(keras.layers.Layer):
    """Sum of the radix splits, averaged over space: the input of split attention's fc1."""

    def __init__(self, radix: int, **kwargs):
        super().__init__(**kwargs)
        self.radix = radix

    def call(self, x):
        total = sum(_splits(x, self.radix)[1:], _splits(x, self.radix)[0])
        return spatial_mean(total, keepdims=True)

    def compute_output_shape(self, input_shape):
        n, _, _, c = input_shape
        return (n, 1, 1, c // self.radix)

    def get_config(self):
        return {**super().get_config(), "radix": self.radix}


@keras.saving.register_keras_serializable(package=PACKAGE)
class SplitAttention(keras.layers.Layer):
    """Weights the radix splits of `x` by attention from `logits` and sums them (ResNeSt).

    `logits` (N, 1, 1, radix * C) is fc2's output, laid out as PyTorch's
    view(N, cardinality, radix, C / cardinality): the softmax runs over the radix within each
    cardinal group (a sigmoid when radix is 1), then the weights are reordered to the
    splits' channel order (radix, C) before the weighted sum.
    """

    def __init__(self, radix: int, cardinality: int, **kwargs):
        super().__init__(**kwargs)
        self.radix, self.cardinality = radix, cardinality

    def call(self, inputs):
        x, logits = inputs
        r, g = self.radix, self.cardinality
        c = x.shape[-1] // r
        logits = ops.reshape(logits, (-1, g, r, c // g))
        attention = ops.softmax(logits, axis=2) if r > 1 else ops.sigmoid(logits)
        attention = ops.reshape(ops.transpose(attention, (0, 2, 1, 3)), (-1, 1, 1, r * c))
        weighted = [s * a for s, a in zip(_splits(x, r), _splits(attention, r))]
        return sum(weighted[1:], weighted[0])

    def compute_output_shape(self, input_shapes):
        (n, h, w, c), _ = input_shapes
        return (n, h, w, c // self.radix)

    def get_config(self):
        return {**super().get_config(), "radix": self.radix, "cardinality": self.cardinality}
