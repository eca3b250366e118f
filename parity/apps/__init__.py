"""parity's third floor: what people do with the two frameworks side by side.

preprocess and labels (one image pipeline for both, class names), predict, train_parity (both
frameworks trained on the same batches), distributed (one data-parallel step in each engine),
onnx_export. Imports the core and files floors, never the command line.
"""
