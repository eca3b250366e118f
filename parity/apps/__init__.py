"""parity's third floor: what people do with the two frameworks side by side.

preprocess and labels (one image pipeline for both, class names), predict, train_parity (both
frameworks trained on the same batches), distributed (one data-parallel step in each engine),
export (ONNX, LiteRT, SavedModel and torch.export files, each checked in its own runtime).
Imports the core and files floors, never the command line.
"""
