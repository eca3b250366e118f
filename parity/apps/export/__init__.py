"""Deployment files, each checked in its own runtime before it takes its name.

    formats     the formats (onnx, tflite, savedmodel, pt2), what each comes from, how a
                destination names one; light, for refusing a bad request early
    signatures  the traced input and the free axes (batch, height, width) of every export
    images      the check inputs: random images at untraced sizes, real images for quantized files
    report      ExportReport, and the bounds of the quantized files
    flow        export(): load, write, run in the runtime, compare, publish
    onnx, litert, savedmodel, pt2
                one module per format: write() the file, load() it back in its runtime

`parity.export` and `parity.export_onnx` are flow's export() and export_onnx().
"""
