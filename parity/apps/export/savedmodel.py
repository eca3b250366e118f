"""TensorFlow SavedModel from Keras, run by tf.saved_model.load.

`model.export(path, format="tf_saved_model")` writes the model's inference call as the
`serving_default` signature (input "input", NHWC float32; output "output_0"), the form TF
Serving and `tf.saved_model.load` take. The directory holds a TensorFlow graph and the
weights: loading it needs TensorFlow alone, neither Keras nor resnet_tf (the tests load it in
a process where neither can be imported).
"""

from __future__ import annotations

from pathlib import Path

from . import signatures

SIGNATURE = "serving_default"


def write(model, framework: str, path: Path, size, quantize: str = "none") -> None:
    model.export(str(path), format="tf_saved_model", verbose=False,
                 input_signature=[signatures.keras_input_spec(model.spec, size)])


def load(path: Path):
    """x -> the serving_default signature's output."""
    import tensorflow as tf

    serve = tf.saved_model.load(str(path)).signatures[SIGNATURE]
    (name,) = serve.structured_input_signature[1]
    (output,) = serve.structured_outputs
    return lambda x: serve(**{name: tf.constant(x)})[output].numpy()


def runtime() -> str:
    import tensorflow as tf

    return f"tensorflow {tf.__version__}"
